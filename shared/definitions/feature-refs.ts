// Feature references resolved against the definitions, for the online server and point-in-time
// retrieval alike: `view:feature` (or a bare `feature` of a default view) to its view and feature,
// a feature service to its references, and one rule for a feature asked for twice and for two
// features that would have one output name. Each caller words the refusals (an HTTP 400 naming the
// body field, a CLI error naming the flag) through its FeatureRefRefusals.
import { type Definitions, type FeatureDef, fullFeatureName, type ViewDef } from './schema.ts';

/** The reference being refused and where it came from (built only when refusing). */
export interface RefusedRef {
  ref: string;
  /** Its position in the list of references. */
  at: number;
  /** The list is a feature service's, not the caller's own. */
  fromService: boolean;
  definitions: Definitions;
}

/** What a caller says for each refusal. */
export interface FeatureRefRefusals {
  /** Names no view (`feature` where no default view applies), or has an empty part (`:f`, `v:`). */
  malformed(r: RefusedRef): Error;
  unknownView(r: RefusedRef, view: string): Error;
  unknownFeature(r: RefusedRef, view: ViewDef, feature: string): Error;
  /** The feature of `r.ref` was asked for before (maybe written another way: `f` and `v:f`). */
  twice(r: RefusedRef, def: FeatureDef): Error;
  /** `def` would have the output name `name` of the feature `other` asked for before it. */
  clash(r: RefusedRef, def: FeatureDef, other: FeatureDef, name: string): Error;
  unknownService(name: string, definitions: Definitions): Error;
}

export interface ResolveOptions {
  /** The view of a reference without `view:`; none: such a reference is malformed. */
  defaultView?: string | undefined;
  /** Output names `view__feature` (Feast's full_feature_names) rather than `feature`. */
  fullFeatureNames: boolean;
  /** The references are a feature service's (for the refusals' wording). */
  fromService: boolean;
}

/** The references of a feature service, in its declared order; an unknown one is refused. */
export function featureServiceRefs(
  definitions: Definitions,
  name: string,
  refuse: FeatureRefRefusals,
): readonly string[] {
  const refs = definitions.featureServices.get(name);
  if (!refs) throw refuse.unknownService(name, definitions);
  return refs;
}

/**
 * Resolves each reference in order and hands it to `each` (its view, the feature's position in
 * the view, its output name, the reference's position); refuses the first that is malformed,
 * unknown, asked for twice or clashing with an earlier one's output name. Allocates nothing per
 * reference beyond the names it cuts, so the server can run it on every request.
 */
export function resolveFeatureRefs(
  definitions: Definitions,
  refs: readonly string[],
  options: ResolveOptions,
  refuse: FeatureRefRefusals,
  each: (view: ViewDef, index: number, name: string, at: number) => void,
): void {
  const views = viewsByName(definitions);
  const refused = (at: number): RefusedRef => ({
    ref: refs[at]!,
    at,
    fromService: options.fromService,
    definitions,
  });
  const byName = new Map<string, FeatureDef>();
  for (let at = 0; at < refs.length; at++) {
    const ref = refs[at]!;
    const colon = ref.indexOf(':');
    let viewName: string | undefined;
    let featureName: string;
    if (colon < 0) {
      viewName = options.defaultView;
      featureName = ref;
    } else {
      viewName = ref.slice(0, colon);
      featureName = ref.slice(colon + 1);
    }
    if (viewName === undefined || viewName === '' || featureName === '') throw refuse.malformed(refused(at));
    const view = views.get(viewName);
    if (!view) throw refuse.unknownView(refused(at), viewName);
    const index = view.features.findIndex((f) => f.name === featureName);
    if (index < 0) throw refuse.unknownFeature(refused(at), view, featureName);
    const def = view.features[index]!;
    const name = options.fullFeatureNames ? fullFeatureName(view.name, def.name) : def.name;
    const other = byName.get(name);
    if (other === def) throw refuse.twice(refused(at), def);
    if (other !== undefined) throw refuse.clash(refused(at), def, other, name);
    byName.set(name, def);
    each(view, index, name, at);
  }
}

/** The views by name, built once per loaded definitions (the server resolves on every request). */
const viewMaps = new WeakMap<Definitions, Map<string, ViewDef>>();

function viewsByName(definitions: Definitions): Map<string, ViewDef> {
  let views = viewMaps.get(definitions);
  if (!views) {
    views = new Map(definitions.views.map((v) => [v.name, v]));
    viewMaps.set(definitions, views);
  }
  return views;
}
