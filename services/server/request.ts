// Validates a Feast-shaped /get-online-features body against the loaded definitions and resolves it
// into what the lookup needs: the requested features grouped by view, and canonical entity keys.
// Every refusal names the field, so a client can fix its request without reading our code.

import { toInt64BigInt } from '../../shared/codecs/int64.ts';
// describe, not JSON.stringify, in messages: a client's deeply nested value overflowed the stack there.
import { describe, parseTimestamp } from '../../shared/codecs/timestamp.ts';
import { unpairedSurrogate } from '../../shared/codecs/validate.ts';
import {
  type FeatureRefRefusals,
  featureServiceRefs,
  type RefusedRef,
  resolveFeatureRefs,
} from '../../shared/definitions/feature-refs.ts';
import type { Definitions, FeatureDef, ViewDef } from '../../shared/definitions/schema.ts';
import { TesseraError } from '../../shared/errors.ts';
import { featureColumnType } from '../../shared/offline/feature-columns.ts';
import { listItemType } from '../../shared/offline/parquet.ts';

/** The request body's fields, checked by `checkBody`. */
interface Body {
  features?: string[];
  feature_service?: string;
  entities: Record<string, unknown[]>;
  full_feature_names?: boolean;
  /** Tessera extension, for debugging: read as of this time (ISO 8601 or epoch ms) instead of now. */
  as_of?: string | number;
  /** Sent by Feast's SDK; accepted and ignored (no feature view versions here). */
  include_feature_view_version_metadata?: boolean;
}

const ALLOWED = new Set([
  'features',
  'feature_service',
  'entities',
  'full_feature_names',
  'as_of',
  'include_feature_view_version_metadata',
]);

export interface RequestedFeature {
  def: FeatureDef;
  /** Position of the feature in its view's plan (what the engine returns). */
  index: number;
  /** Name in the response: `feature` or `view__feature` with full_feature_names. */
  outputName: string;
  /** How its numbers are written (the items', for last_n): as Feast types them. */
  numbers: NumberFormat;
}

/**
 * `double`: whole numbers with a `.0`, as Feast's server writes a Float64 (Feast's SDK types a
 * value by its JSON: `50` would come back as an int, and a list mixing `50` and `1.5` is refused).
 * `int64`: ids beyond 2^53 (exact decimal strings in the engine) as bare integers, as Feast writes
 * an Int64. `plain`: as JSON.stringify.
 */
export type NumberFormat = 'double' | 'int64' | 'plain';

function numberFormat(def: FeatureDef, view: ViewDef): NumberFormat {
  const column = featureColumnType(def, view.source);
  const type = listItemType(column) ?? column;
  return type === 'double' ? 'double' : type === 'int64' ? 'int64' : 'plain';
}

export interface ViewRequest {
  view: ViewDef;
  /** Shared between requests asking for the same features: read only. */
  features: readonly RequestedFeature[];
  /** Canonical entity key per entity row (the Redis key part). */
  keys: string[];
}

export interface EntityColumn {
  name: string;
  type: 'int64' | 'string';
  /** Canonical key per entity row (int64: decimal digits; string: the value). */
  keys: string[];
}

export interface OnlineRequest {
  /**
   * Entity columns in request order, echoed back as Feast types them: an int64 column's keys as
   * bare integers (a decimal string `"7"` comes back as 7, an id beyond 2^53 exact), a string
   * column's values as sent.
   */
  entityColumns: EntityColumn[];
  rows: number;
  /** Features in request order; each points into `views`. Shared between requests: read only. */
  order: readonly { view: number; feature: number }[];
  /** The features' output names in request order, as JSON array items without the brackets. */
  featureNamesJson: string;
  views: ViewRequest[];
  /** Read time, epoch ms; undefined = now. */
  asOf: number | undefined;
}

/** Throws INVALID_ARGUMENT naming the field; the server answers 400 with the message. */
export function parseOnlineRequest(
  body: unknown,
  definitions: Definitions,
  maxEntities: number,
): OnlineRequest {
  const input = checkBody(body);
  const refs = requestedRefs(input.features, input.feature_service, definitions);
  const resolved = resolvedFeatures(
    definitions,
    refs,
    input.full_feature_names ?? false,
    input.feature_service !== undefined,
  );
  // Per request: only the keys. The views' features and the order are shared with every request
  // that asked for the same features (resolvedFeatures), and read only.
  const views: ViewRequest[] = resolved.views.map((v) => ({ view: v.view, features: v.features, keys: [] }));

  // As Feast's server: a column no requested view is keyed by is echoed when it is a declared join
  // key, and ignored otherwise (a typo in the needed column is still refused: it is then missing).
  const keyTypes = joinKeyTypes(definitions);
  const given = Object.entries(input.entities).filter(([name]) => keyTypes.has(name));
  if (given.length === 0)
    throw invalid(
      `entities: give the requested views' entity columns, e.g. {"${views[0]!.view.entity.joinKey}": [1001]}`,
      'entities',
    );
  const rows = given[0]![1].length;
  for (const [name, values] of given) {
    if (values.length !== rows)
      throw invalid(
        `entities.${name}: has ${values.length} values but entities.${given[0]![0]} has ${rows}; every entity column needs one value per row`,
        `entities.${name}`,
      );
  }
  if (rows === 0) throw invalid('entities: give at least one entity row', 'entities');
  if (rows > maxEntities)
    throw invalid(
      `entities: ${rows} entity rows is over the limit of ${maxEntities} per request (TESSERA_SERVER_MAX_ENTITIES); split the request`,
      'entities',
    );

  // Every column is checked (an echoed one too: only keys of the entity's type, once any JSON,
  // nested arrays included) and keyed once.
  const entityColumns: EntityColumn[] = given.map(([name, values]) => {
    const type = columnType(name, views, keyTypes, definitions);
    return {
      name,
      type,
      keys: values.map((value, i) => canonicalKey(value, type, name, i)),
    };
  });
  for (const request of views) {
    const { joinKey } = request.view.entity;
    const column = entityColumns.find((c) => c.name === joinKey);
    if (!column)
      throw invalid(
        `entities: view ${request.view.name} is keyed by ${joinKey}, which the request does not give`,
        'entities',
      );
    request.keys = column.keys;
  }

  return {
    entityColumns,
    rows,
    order: resolved.order,
    featureNamesJson: resolved.namesJson,
    views,
    asOf: parseAsOf(input.as_of),
  };
}

/** A request's features resolved: what every request asking for the same features shares. */
interface ResolvedFeatures {
  views: readonly { view: ViewDef; features: readonly RequestedFeature[] }[];
  order: readonly { view: number; feature: number }[];
  /** The output names in request order as JSON array items, without the brackets. */
  namesJson: string;
}

interface ResolvedEntry {
  refs: readonly string[];
  fullNames: boolean;
  fromService: boolean;
  resolved: ResolvedFeatures;
}

/**
 * The last resolutions per loaded definitions, most recent first. Clients ask for the same few
 * feature lists over and over: resolving one per request (names cut, a map of output names, an
 * object per feature) was a twelfth of what a single lookup allocated, and allocation is what
 * sets the young-generation collections that make the latency tail (docs/benchmarks.md).
 * Compared item by item, so a hit allocates nothing.
 */
const resolutions = new WeakMap<Definitions, ResolvedEntry[]>();
const RESOLUTIONS_KEPT = 32;

function resolvedFeatures(
  definitions: Definitions,
  refs: readonly string[],
  fullNames: boolean,
  fromService: boolean,
): ResolvedFeatures {
  let entries = resolutions.get(definitions);
  if (entries === undefined) {
    entries = [];
    resolutions.set(definitions, entries);
  }
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.fullNames !== fullNames || entry.fromService !== fromService || !sameRefs(entry.refs, refs))
      continue;
    if (i > 0) {
      entries.splice(i, 1);
      entries.unshift(entry);
    }
    return entry.resolved;
  }
  const resolved = resolveFeatures(definitions, refs, fullNames, fromService);
  // A copy of the references: the caller's array is the request body's.
  entries.unshift({ refs: [...refs], fullNames, fromService, resolved });
  if (entries.length > RESOLUTIONS_KEPT) entries.pop();
  return resolved;
}

function sameRefs(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Resolves the references (refusing as REFUSALS says), grouped by view in order of first use. */
function resolveFeatures(
  definitions: Definitions,
  refs: readonly string[],
  fullNames: boolean,
  fromService: boolean,
): ResolvedFeatures {
  const views: { view: ViewDef; features: RequestedFeature[] }[] = [];
  const viewIndex = new Map<string, number>();
  const order: { view: number; feature: number }[] = [];
  const names: string[] = [];
  resolveFeatureRefs(
    definitions,
    refs,
    { fullFeatureNames: fullNames, fromService },
    REFUSALS,
    (view, index, outputName) => {
      let v = viewIndex.get(view.name);
      if (v === undefined) {
        v = views.length;
        viewIndex.set(view.name, v);
        views.push({ view, features: [] });
      }
      const viewRequest = views[v]!;
      order.push({ view: v, feature: viewRequest.features.length });
      const def = view.features[index]!;
      viewRequest.features.push({ def, index, outputName, numbers: numberFormat(def, view) });
      names.push(outputName);
    },
  );
  return { views, order, namesJson: JSON.stringify(names).slice(1, -1) };
}

/**
 * Each declared join key's type, built once per loaded definitions; null for a key two entities
 * declare with different types (user_id int64 and user_id string), which the requested views decide.
 */
const keyTypeMaps = new WeakMap<Definitions, Map<string, 'int64' | 'string' | null>>();

function joinKeyTypes(definitions: Definitions): Map<string, 'int64' | 'string' | null> {
  let types = keyTypeMaps.get(definitions);
  if (types === undefined) {
    types = new Map();
    for (const e of definitions.entities) {
      const known = types.get(e.joinKey);
      types.set(e.joinKey, known === undefined || known === e.keyType ? e.keyType : null);
    }
    keyTypeMaps.set(definitions, types);
  }
  return types;
}

/**
 * The type a request's entity column is read as: its join key's, or for a key declared with two
 * types, the type of the requested views keyed by it (a request for views of both is refused, as
 * no column can hold both; an echoed column of such a key is read as its first entity's type).
 * Before, the last entity declared won, so a view's keys were refused or read in another form.
 */
function columnType(
  name: string,
  views: readonly ViewRequest[],
  keyTypes: Map<string, 'int64' | 'string' | null>,
  definitions: Definitions,
): 'int64' | 'string' {
  const declared = keyTypes.get(name);
  if (declared) return declared;
  let chosen: ViewRequest | undefined;
  for (const request of views) {
    const { entity } = request.view;
    if (entity.joinKey !== name) continue;
    if (chosen !== undefined && chosen.view.entity.keyType !== entity.keyType)
      throw invalid(
        `entities.${name}: views ${chosen.view.name} and ${request.view.name} are both keyed by ${name}, as ${chosen.view.entity.keyType} and as ${entity.keyType}; ask for them in separate requests`,
        `entities.${name}`,
      );
    chosen ??= request;
  }
  return chosen?.view.entity.keyType ?? definitions.entities.find((e) => e.joinKey === name)!.keyType;
}

/** The references asked for: `features`, or the feature service's. */
function requestedRefs(
  features: string[] | undefined,
  service: string | undefined,
  definitions: Definitions,
): readonly string[] {
  if (service !== undefined && features !== undefined && features.length > 0)
    throw invalid('feature_service: give either features or feature_service, not both', 'feature_service');
  if (service !== undefined) return featureServiceRefs(definitions, service, REFUSALS);
  if (!features || features.length === 0)
    throw invalid('features: ask for at least one "<view>:<feature>", or name a feature_service', 'features');
  return features;
}

/** The body field of a reference: `features[i]`, or `feature_service(view:feature)`. */
function refField(r: RefusedRef): string {
  return r.fromService ? `feature_service(${r.ref})` : `features[${r.at}]`;
}

/** The refusals of feature references, as 400s naming the field (shared/definitions/feature-refs.ts). */
const REFUSALS: FeatureRefRefusals = {
  malformed: (r) =>
    invalid(
      `${refField(r)}: ${describe(r.ref)} is not a feature reference; use "<view>:<feature>"`,
      refField(r),
    ),
  unknownView: (r, view) =>
    invalid(
      `${refField(r)}: unknown feature view ${describe(view)}; defined views: ${r.definitions.views.map((v) => v.name).join(', ')}`,
      refField(r),
    ),
  unknownFeature: (r, view, feature) =>
    invalid(
      `${refField(r)}: view ${view.name} has no feature ${describe(feature)}; it has ${view.features.map((f) => f.name).join(', ')}`,
      refField(r),
    ),
  twice: (r) =>
    invalid(`${refField(r)}: "${r.ref}" is asked for twice; ask for each feature once`, refField(r)),
  clash: (r, _def, other, name) =>
    invalid(
      `${refField(r)}: "${r.ref}" and "${other.ref}" would both be returned as ${name}; set full_feature_names to true or ask for one of them`,
      refField(r),
    ),
  unknownService: (name, definitions) =>
    invalid(
      `feature_service: unknown feature service ${describe(name)}; defined: ${[...definitions.featureServices.keys()].join(', ') || 'none'}`,
      'feature_service',
    ),
};

/**
 * The entity key as the ingestor stores it: int64 as a canonical decimal string. `column` and
 * `row` name the field in a refusal (built only then: one string per key was most of what
 * checking a valid key allocated).
 */
function canonicalKey(value: unknown, type: 'int64' | 'string', column: string, row: number): string {
  if (type === 'int64') {
    // The common case without a BigInt: a safe integer's decimal form is already canonical.
    if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  } else if (typeof value === 'string' && value.length > 0 && unpairedSurrogate(value) === undefined)
    return value;
  return checkedKey(value, type, `entities.${column}[${row}]`);
}

/** canonicalKey past its common cases (a safe integer, a sane string): the rest, and the refusals naming `field`. */
function checkedKey(value: unknown, type: 'int64' | 'string', field: string): string {
  if (type === 'int64') {
    // JSON numbers are read as doubles: beyond 2^53 the one sent may already be rounded to its
    // neighbour (9007199254740993 reads as 9007199254740992), so no value can be trusted to be it.
    if (typeof value === 'number' && Number.isInteger(value))
      throw invalid(
        `${field}: a JSON number beyond 2^53 cannot be read exactly (this one reads as ${value}, which may not be the id sent); send int64 ids beyond 2^53 as decimal strings, e.g. "9007199254740993"`,
        field,
      );
    const n = toInt64BigInt(value);
    if (n === undefined)
      throw invalid(
        `${field}: ${describe(value)} is not an int64; send a JSON integer (or a decimal string beyond 2^53)`,
        field,
      );
    return n.toString();
  }
  if (typeof value !== 'string' || value.length === 0)
    throw invalid(
      `${field}: ${describe(value)} is not a non-empty string, which this entity's key is`,
      field,
    );
  // Stored keys are UTF-8, where such a string would read another entity's state.
  const broken = unpairedSurrogate(value);
  if (broken !== undefined) throw invalid(`${field}: ${broken}`, field);
  return value;
}

function parseAsOf(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  // The codecs' parser: ISO 8601 with a zone (a zone-less time would be read in the server's own
  // zone), epoch milliseconds as an integer, both within Date's range.
  const parsed = parseTimestamp(value, typeof value === 'number' ? 'epoch_ms' : 'iso8601');
  if (!parsed.ok || (typeof value === 'number' && !Number.isInteger(value)))
    throw invalid(
      `as_of: ${describe(value)} is not a time (${parsed.ok ? 'not a whole number of milliseconds' : parsed.problem}); use ISO 8601 with a zone (2026-01-10T12:00:00Z) or epoch milliseconds`,
      'as_of',
    );
  return parsed.ms;
}

function invalid(message: string, field: string): TesseraError {
  return new TesseraError('INVALID_ARGUMENT', message, { context: { field } });
}

/**
 * The body's shape, field by field, in the order of `Body`; then fields that are not ours. The
 * first problem is refused as `<path>: <what was expected>` (the messages zod gave this server
 * before: its per-request schema walk was a sixth of everything a lookup allocated).
 */
function checkBody(body: unknown): Body {
  if (!isRecord(body)) throw mismatch('body', 'object', body);
  const { features, feature_service, entities, full_feature_names, as_of } = body;
  if (features !== undefined) {
    if (!Array.isArray(features)) throw mismatch('features', 'array', features);
    for (let i = 0; i < features.length; i++)
      if (typeof features[i] !== 'string') throw mismatch(`features.${i}`, 'string', features[i]);
  }
  // Feast's SDK sends `"feature_service": null` beside a feature list.
  if (feature_service === null) delete body.feature_service;
  else if (feature_service !== undefined && typeof feature_service !== 'string')
    throw mismatch('feature_service', 'string', feature_service);
  if (entities === undefined) throw invalid('entities: Required', 'entities');
  if (!isRecord(entities)) throw mismatch('entities', 'object', entities);
  for (const name in entities)
    if (!Array.isArray(entities[name])) throw mismatch(`entities.${clipName(name)}`, 'array', entities[name]);
  if (full_feature_names !== undefined && typeof full_feature_names !== 'boolean')
    throw mismatch('full_feature_names', 'boolean', full_feature_names);
  if (as_of !== undefined && typeof as_of !== 'string' && typeof as_of !== 'number')
    throw invalid('as_of: Invalid input', 'as_of');
  const versions = body.include_feature_view_version_metadata;
  if (versions !== undefined && typeof versions !== 'boolean')
    throw mismatch('include_feature_view_version_metadata', 'boolean', versions);
  const unknown = Object.keys(body).filter((key) => !ALLOWED.has(key));
  if (unknown.length > 0)
    throw invalid(
      `body: unknown field(s) ${unknown.slice(0, 5).map(clipName).join(', ')}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''}; allowed: ${[...ALLOWED].join(', ')}`,
      'body',
    );
  return body as unknown as Body;
}

/**
 * A client's name (a field, a column) as messages and `field` quote it: at most 60 characters, as
 * `describe` quotes values, so a refusal is never as large as the body that caused it.
 */
export function clipName(name: string): string {
  return name.length > 60 ? `${name.slice(0, 60)}…` : name;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mismatch(path: string, expected: string, value: unknown): TesseraError {
  return invalid(`${path}: Expected ${expected}, received ${kindOf(value)}`, path);
}

/** A JSON value's kind, as the messages name it. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
