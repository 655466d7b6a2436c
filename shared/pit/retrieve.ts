// Point-in-time retrieval: a training set with every feature as of each row's own time (events in
// [start(t), t), never later), computed from the raw event log with the engine. Two passes:
//   1. stream the raw-log objects of the days that can matter, keep only events of the requested
//      entities inside [earliest window start, last query time) of that entity, and route them by
//      entity into hash shards (typed columns; spilled to temp files when there is more than one);
//   2. per shard, answer its queries entity by entity (as-of.ts) and free the shard.
// Features of several views (each with its own entity and source) are answered one view at a time,
// both passes each, into one answer table per view, merged by input row when written.
// Memory: O(labels) for the entity dataframe and the answers of every view + one decoded raw-log
// object + one shard's events (at most `maxShardEvents` on average) + one entity's engine state.
import { type Definitions, type FeatureDef, fullFeatureName, type ViewDef } from '../definitions/schema.ts';
import { numericColumns, planView, type Value, type ViewPlan } from '../engine/index.ts';
import { TesseraError } from '../errors.ts';
import { EVENT_TIMESTAMP } from '../offline/feature-columns.ts';
import type { ObjectStore } from '../offline/object-store.ts';
import { listRawLog, numericColumn, rawLogPrefix, readRawLog, stringColumnIds } from '../offline/raw-log.ts';
import { answerShard, earliestNeeded } from './as-of.ts';
import { EventShards, removeStaleSpillDirs } from './event-shards.ts';
import { type EntityKey, type LabelFrame, type LabelKey, readLabels } from './labels.ts';
import { createProgress } from './progress.ts';
import {
  checkOutputPath,
  FeatureTable,
  type PickedFeature,
  PickedFeatures,
  removeStaleOutputTemps,
  writeTrainingSet,
} from './training-output.ts';

export interface HistoricalRequest {
  store: ObjectStore;
  definitions: Definitions;
  /** Entity dataframe: .csv or .parquet with the join key, event_timestamp and any labels. */
  entities: string;
  /** Output: .parquet or .csv. */
  out: string;
  /** View name: all its features when `features` is not given, else the view of the names in
   * `features` without a `view:` prefix. Defaults to the view of `features`, else the only view. */
  view?: string;
  /** `view:feature` or `feature` names, of one view or several, in output order; default all
   * features of the view. */
  features?: readonly string[];
  /** A feature service of the definitions: its features, in its declared order (instead of `view`
   * and `features`). */
  featureService?: string;
  /** Output columns named `view__feature` (Feast's full_feature_names) rather than `feature`. */
  fullFeatureNames?: boolean;
  /** Target events per shard (memory bound of pass 2). Default 4,000,000 (~160 MB of columns). */
  maxShardEvents?: number;
  /** Force a number of shards (tests); otherwise derived from the raw log's size. */
  shards?: number;
  /** Where spill files go (default the OS temp dir). */
  tempDir?: string;
  progress?: boolean;
  /** Stops the run (Ctrl-C): it rejects with the signal's reason after removing its spill files
   * and its unfinished output. Checked between raw objects, while answering and while writing. */
  signal?: AbortSignal;
}

/** What the pass of one view read and answered. */
export interface ViewPassSummary {
  view: string;
  /** The output columns of this view's features. */
  features: string[];
  entities: number;
  objectsRead: number;
  objectsSkipped: number;
  eventsRead: number;
  eventsUsed: number;
  shards: number;
}

export interface HistoricalSummary {
  rows: number;
  /** Distinct entities, summed over the views (their entities differ: users, merchants). */
  entities: number;
  /** The output's feature columns, in order. */
  features: string[];
  /** Totals over the views. */
  objectsRead: number;
  objectsSkipped: number;
  eventsRead: number;
  eventsUsed: number;
  shards: number;
  /** Per view, in the order of their first feature. */
  views: ViewPassSummary[];
  seconds: number;
  /** Seconds per phase: reading the labels, reading and routing the raw log, answering, writing
   * (route and answer summed over the views). */
  phases: { labels: number; route: number; answer: number; write: number };
}

/** The features asked for: grouped by view for the passes, and the output columns in order. */
export interface FeatureSelection {
  /** One per view, in the order of its first feature. */
  groups: { view: ViewDef; selected: FeatureDef[] }[];
  /** Output columns in the order asked for: feature `index` of `groups[group].selected`. */
  columns: { group: number; index: number; name: string }[];
}

/** Conservative bytes per raw-log row in zstd parquet (measured ~15 for the fraud source): the
 * shard count is sized from object sizes before any is decoded, so it errs towards more shards. */
const MIN_BYTES_PER_ROW = 8;

export async function retrieveHistorical(request: HistoricalRequest): Promise<HistoricalSummary> {
  const started = performance.now();
  checkOutputPath(request.out, request.entities);
  const log = (msg: string) => {
    if (request.progress !== false) process.stderr.write(`${msg}\n`);
  };
  // Spill directories and unfinished outputs of runs killed outright (SIGKILL): nothing else ever
  // removes them.
  const stale = removeStaleSpillDirs(request.tempDir);
  const staleOut = removeStaleOutputTemps(request.out);
  for (const path of [...stale.removed, ...staleOut.removed])
    log(`historical: removed ${path}, left by a run that died`);
  for (const { path, error } of [...stale.failed, ...staleOut.failed])
    process.stderr.write(`historical: cannot remove ${path}, left by a run that died: ${error}\n`);
  const selection = selectFeatures(request.definitions, request);
  const labels = await readLabels(request.entities, labelKeys(selection), request.signal);
  const outputNames = selection.columns.map((c) => c.name);
  refuseNameClashes(request.entities, labels, outputNames);
  const phases = { labels: (performance.now() - started) / 1000, route: 0, answer: 0, write: 0 };
  const passes = selection.groups.map((group) => {
    // Offline reads see the whole log: no per-entity cap (the online cap is a memory guard).
    const plan = planView({
      ...group.view,
      features: group.selected,
      maxEventsPerEntity: Number.POSITIVE_INFINITY,
    });
    const names = selection.columns.filter((c) => selection.groups[c.group] === group).map((c) => c.name);
    return { ...group, plan, names, table: new FeatureTable(plan, group.view.source, labels.n) };
  });
  const views: ViewPassSummary[] = [];
  if (labels.n > 0) {
    // Every view's raw log is listed before any is read: a store without one fails at once.
    const listed = [];
    for (const pass of passes) listed.push(await listRawLogOf(request.store, pass.view));
    for (const [v, pass] of passes.entries()) {
      request.signal?.throwIfAborted();
      const keys = labels.keyColumns.find((k) => k.joinKey === pass.view.entity.joinKey)!.keys;
      const answered = await answerView(request, pass, pass.names, keys, labels.ts, listed[v]!, {
        log,
        label: passes.length > 1 ? `answering ${pass.view.name}` : 'answering',
      });
      phases.route += answered.seconds.route;
      phases.answer += answered.seconds.answer;
      views.push(answered.summary);
    }
  } else
    for (const pass of passes)
      views.push({
        view: pass.view.name,
        features: pass.names,
        entities: 0,
        objectsRead: 0,
        objectsSkipped: 0,
        eventsRead: 0,
        eventsUsed: 0,
        shards: 0,
      });
  let mark = performance.now();
  // Encoding a million rows takes seconds with no bar of its own: say what is under way.
  log(`historical: writing ${labels.n.toLocaleString('en-US')} rows to ${request.out}`);
  const picked: PickedFeature[] = selection.columns.map((c) => ({
    table: passes[c.group]!.table,
    f: c.index,
    name: c.name,
  }));
  await writeTrainingSet(request.out, labels, new PickedFeatures(picked), request.signal);
  phases.write = (performance.now() - mark) / 1000;
  mark = performance.now();
  const seconds = (mark - started) / 1000;
  log(
    `historical: wrote ${labels.n.toLocaleString('en-US')} rows to ${request.out} in ${seconds.toFixed(1)}s`,
  );
  const sum = (field: keyof Omit<ViewPassSummary, 'view' | 'features'>) =>
    views.reduce((total, v) => total + v[field], 0);
  return {
    rows: labels.n,
    entities: sum('entities'),
    features: outputNames,
    objectsRead: sum('objectsRead'),
    objectsSkipped: sum('objectsSkipped'),
    eventsRead: sum('eventsRead'),
    eventsUsed: sum('eventsUsed'),
    shards: sum('shards'),
    views,
    seconds,
    phases,
  };
}

/** The raw log of a view's source; none at all is refused (see below). */
async function listRawLogOf(
  store: ObjectStore,
  view: ViewDef,
): Promise<Awaited<ReturnType<typeof listRawLog>>> {
  const all = await listRawLog(store, view.source.name);
  // No raw log at all is a wrong --store (a typo, a missing prefix) or a view whose source was
  // never flushed there, not a history without events: it gave a training set of zeros, exit 0.
  if (all.length === 0)
    throw new TesseraError(
      'NOT_FOUND',
      `the offline store ${store.location} has no raw log of source ${view.source.name} ` +
        `(no ${rawLogPrefix(view.source.name)}date=YYYY-MM-DD/*.parquet objects); check --store ` +
        '(or TESSERA_OFFLINE_STORE) and that the flusher writes this source there',
      { context: { store: store.location, source: view.source.name, view: view.name } },
    );
  return all;
}

/**
 * One view's pass, the single-view retrieval: routes the events of its source that can matter
 * into shards (pass 1), then answers every label row as of its time into `pass.table` (pass 2).
 */
async function answerView(
  request: HistoricalRequest,
  pass: { view: ViewDef; selected: FeatureDef[]; plan: ViewPlan; table: FeatureTable },
  names: string[],
  keys: readonly EntityKey[],
  ts: Float64Array,
  all: Awaited<ReturnType<typeof listRawLog>>,
  out: { log: (msg: string) => void; label: string },
): Promise<{ summary: ViewPassSummary; seconds: { route: number; answer: number } }> {
  const { view, plan, selected } = pass;
  let mark = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const seconds = (now - mark) / 1000;
    mark = now;
    return seconds;
  };
  const entities = indexEntities(plan, keys, ts);
  const objects = all.filter((o) => o.dayStart + 86_400_000 > entities.from && o.dayStart < entities.to);
  const bytes = objects.reduce((s, o) => s + o.size, 0);
  const shards =
    request.shards ??
    Math.max(1, Math.min(4096, Math.ceil(bytes / MIN_BYTES_PER_ROW / (request.maxShardEvents ?? 4_000_000))));
  out.log(
    `historical: ${ts.length.toLocaleString('en-US')} rows, ${entities.count.toLocaleString('en-US')} entities, ` +
      `${selected.length} features of ${view.name}; raw log ${request.store.location}/raw/${view.source.name}: ` +
      `${objects.length} of ${all.length} objects in range (${(bytes / 1e6).toFixed(1)} MB), ${shards} shard(s)`,
  );
  const read = await routeEvents(request, plan, view, entities, objects, shards);
  const route = lap();
  try {
    const progress = createProgress(out.label, ts.length, { enabled: request.progress !== false });
    let answered = 0;
    for (let s = 0; s < shards; s++) {
      request.signal?.throwIfAborted();
      const events = read.shards.load(s);
      await answerShard(
        plan,
        events,
        read.dicts,
        entities.queriesOf(s, shards),
        (row, values) => pass.table.set(row, values),
        (n) => {
          answered += n;
          progress.update(answered);
        },
        request.signal,
      );
    }
    progress.finish();
  } finally {
    read.shards.close();
  }
  return {
    summary: {
      view: view.name,
      features: names,
      entities: entities.count,
      ...read.counts,
      objectsSkipped: all.length - objects.length,
      shards,
    },
    seconds: { route, answer: lap() },
  };
}

/**
 * The output has one column per name: a labels column named like a feature of the output (or like
 * another labels column) was overwritten in parquet and repeated in CSV. Refused before any work.
 */
function refuseNameClashes(path: string, labels: LabelFrame, outputNames: readonly string[]): void {
  const keyNames = labels.keyColumns.map((k) => k.joinKey);
  for (const name of outputNames)
    if (keyNames.includes(name))
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `the feature column ${name} would have the name of the join key column ${name}; pass --full-feature-names (columns view__feature)`,
        { context: { column: name } },
      );
  const featureNames = new Set(outputNames);
  const seen = new Set([...keyNames, EVENT_TIMESTAMP]);
  for (const { name } of labels.extra) {
    if (featureNames.has(name))
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `${path} has a column ${name}, the name of a feature the output adds; rename that column (e.g. label_${name}), or leave the feature out with --features`,
        { context: { path, column: name } },
      );
    if (seen.has(name))
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `${path} has more than one column named ${name}; rename the others (the output has one column per name)`,
        { context: { path, column: name } },
      );
    seen.add(name);
  }
}

/** The join keys the views need (each once, in the order of the views), for the labels reader. */
function labelKeys(selection: FeatureSelection): LabelKey[] {
  const keys = new Map<string, LabelKey & { views: string[] }>();
  for (const { view } of selection.groups) {
    const { joinKey, keyType } = view.entity;
    const known = keys.get(joinKey);
    if (!known) keys.set(joinKey, { joinKey, keyType, views: [view.name] });
    else if (known.keyType !== keyType)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `views ${known.views.join(', ')} and ${view.name} both have the join key ${joinKey}, as ${known.keyType} and as ${keyType}; one column cannot be both: ask for their features in separate runs`,
        { context: { joinKey } },
      );
    else known.views.push(view.name);
  }
  return [...keys.values()];
}

/**
 * The views and features asked for (`--features`, `--feature-service` or `--view`) and the output
 * column of each (`feature`, or `view__feature` with `fullFeatureNames`, Feast's separator).
 * Unknown names are an error listing what exists; so are two features that would have one column.
 */
export function selectFeatures(
  definitions: Definitions,
  ask: Pick<HistoricalRequest, 'view' | 'features' | 'featureService' | 'fullFeatureNames'>,
): FeatureSelection {
  const views = new Map(definitions.views.map((v) => [v.name, v]));
  const viewList = (): string => [...views.keys()].join(', ');
  let refs = ask.features && ask.features.length > 0 ? ask.features : undefined;
  if (ask.featureService !== undefined) {
    if (refs || ask.view !== undefined)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `--feature-service cannot be combined with ${refs ? '--features' : '--view'}: the feature service names its features and their views; pass one of them`,
      );
    const service = definitions.featureServices.get(ask.featureService);
    if (!service) {
      const known = [...definitions.featureServices.keys()];
      throw new TesseraError(
        'INVALID_ARGUMENT',
        known.length > 0
          ? `unknown feature service ${ask.featureService}; known feature services: ${known.join(', ')}`
          : `unknown feature service ${ask.featureService}; the definitions ${definitions.file} declare no feature_services`,
        { context: { featureService: ask.featureService } },
      );
    }
    refs = service;
  }
  const prefixed = new Set(
    (refs ?? []).filter((r) => r.includes(':')).map((r) => r.slice(0, r.indexOf(':'))),
  );
  if (ask.view !== undefined && prefixed.size > 0 && !prefixed.has(ask.view))
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `--features names view ${[...prefixed].join(', ')} but --view is ${ask.view}`,
    );
  // The view of a name without `view:`: --view, else the one view the other names give, else the
  // only view of the definitions.
  const defaultView =
    ask.view ??
    (prefixed.size === 1 ? [...prefixed][0] : undefined) ??
    (definitions.views.length === 1 ? definitions.views[0]!.name : undefined);
  const viewNamed = (name: string): ViewDef => {
    const view = views.get(name);
    if (!view)
      throw new TesseraError('INVALID_ARGUMENT', `unknown view ${name}; known views: ${viewList()}`, {
        context: { view: name },
      });
    return view;
  };
  const wanted: { view: ViewDef; def: FeatureDef; ref: string }[] = [];
  if (!refs) {
    if (defaultView === undefined)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `the definitions have ${definitions.views.length} views; pass --view (one of ${viewList()}), --features view:feature,... or --feature-service`,
      );
    const view = viewNamed(defaultView);
    for (const def of view.features) wanted.push({ view, def, ref: def.ref });
  } else
    for (const ref of refs) {
      const colon = ref.indexOf(':');
      const viewName = colon >= 0 ? ref.slice(0, colon) : defaultView;
      if (viewName === undefined)
        throw new TesseraError(
          'INVALID_ARGUMENT',
          `--features ${ref} names no view, and the definitions have ${definitions.views.length} views: write view:feature (views: ${viewList()}) or pass --view`,
          { context: { feature: ref } },
        );
      const view = viewNamed(viewName);
      const feature = colon >= 0 ? ref.slice(colon + 1) : ref;
      const def = view.features.find((f) => f.name === feature);
      if (!def)
        throw new TesseraError(
          'INVALID_ARGUMENT',
          `unknown feature ${ref}; view ${view.name} has ${view.features.map((f) => f.ref).join(', ')}`,
          { context: { feature: ref } },
        );
      wanted.push({ view, def, ref });
    }
  const groups: FeatureSelection['groups'] = [];
  const columns: FeatureSelection['columns'] = [];
  const byName = new Map<string, FeatureDef>();
  for (const { view, def, ref } of wanted) {
    const name = ask.fullFeatureNames ? fullFeatureName(view.name, def.name) : def.name;
    const other = byName.get(name);
    if (other === def)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `--features asks for ${def.ref} twice; ask for each feature once`,
        {
          context: { feature: ref },
        },
      );
    if (other !== undefined)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `${other.ref} and ${def.ref} would both be the column ${name}; pass --full-feature-names (columns named view__feature), or ask for one of them`,
        { context: { column: name } },
      );
    byName.set(name, def);
    let group = groups.findIndex((g) => g.view === view);
    if (group < 0) group = groups.push({ view, selected: [] }) - 1;
    const index = groups[group]!.selected.push(def) - 1;
    columns.push({ group, index, name });
  }
  return { groups, columns };
}

interface EntityIndex {
  count: number;
  id: Map<EntityKey, number>;
  /** Per entity: keep events in [lo, hi). */
  lo: Float64Array;
  hi: Float64Array;
  /** Time range over all entities. */
  from: number;
  to: number;
  queriesOf(shard: number, shards: number): { rows: Int32Array; entity: Int32Array; ts: Float64Array };
}

/** Dense ids for the entities of the labels, and the event-time range each one needs. */
function indexEntities(plan: ViewPlan, keys: readonly EntityKey[], ts: Float64Array): EntityIndex {
  const labels = { n: ts.length, keys, ts };
  const id = new Map<EntityKey, number>();
  const rowEntity = new Int32Array(labels.n);
  const first: number[] = [];
  const last: number[] = [];
  for (let i = 0; i < labels.n; i++) {
    const key = labels.keys[i]!;
    const t = labels.ts[i]!;
    let e = id.get(key);
    if (e === undefined) {
      e = first.length;
      id.set(key, e);
      first.push(t);
      last.push(t);
    } else {
      if (t < first[e]!) first[e] = t;
      if (t > last[e]!) last[e] = t;
    }
    rowEntity[i] = e;
  }
  const lo = Float64Array.from(first, (t) => earliestNeeded(plan, t));
  let byShard: { shards: number; start: Int32Array; rows: Int32Array } | null = null;
  const hi = Float64Array.from(last);
  let from = Number.POSITIVE_INFINITY;
  let to = Number.NEGATIVE_INFINITY;
  for (let e = 0; e < lo.length; e++) {
    from = Math.min(from, lo[e]!);
    to = Math.max(to, hi[e]!);
  }
  return {
    count: first.length,
    id,
    lo,
    hi,
    from,
    to,
    queriesOf(shard, shards) {
      // Rows of every shard in one counting pass, cached for the run (shards are asked in order).
      if (byShard === null || byShard.shards !== shards) {
        const start = new Int32Array(shards + 1);
        for (let i = 0; i < labels.n; i++) start[(rowEntity[i]! % shards) + 1]!++;
        for (let s = 0; s < shards; s++) start[s + 1]! += start[s]!;
        const fill = start.slice(0, shards);
        const rows = new Int32Array(labels.n);
        for (let i = 0; i < labels.n; i++) rows[fill[rowEntity[i]! % shards]!++] = i;
        byShard = { shards, start, rows };
      }
      const r = byShard.rows.subarray(byShard.start[shard]!, byShard.start[shard + 1]!);
      return {
        rows: r,
        entity: Int32Array.from(r, (i) => rowEntity[i]!),
        ts: Float64Array.from(r, (i) => labels.ts[i]!),
      };
    },
  };
}

/** Pass 1: streams the raw-log objects and routes the events that can matter into shards. */
async function routeEvents(
  request: HistoricalRequest,
  plan: ViewPlan,
  view: ViewDef,
  entities: EntityIndex,
  objects: readonly { key: string; size: number }[],
  shards: number,
): Promise<{
  shards: EventShards;
  dicts: (Value[] | null)[];
  counts: { objectsRead: number; eventsRead: number; eventsUsed: number };
}> {
  // The columns the engine holds as numbers (the others by dictionary), as online.
  const numeric = numericColumns(plan);
  const store = new EventShards(shards, numeric, request.tempDir);
  const dicts: (Value[] | null)[] = plan.columns.map((_, c) => (numeric[c] ? null : []));
  const codes = plan.columns.map(() => new Map<Value, number>());
  const progress = createProgress('reading raw log', objects.length, {
    enabled: request.progress !== false,
    unit: 'objects',
  });
  const counts = { objectsRead: 0, eventsRead: 0, eventsUsed: 0 };
  const keyField = view.source.keyField;
  const row = new Float64Array(plan.columns.length);
  let next: Promise<Uint8Array> | null = null;
  try {
    // Fetch the next object while this one is decoded: S3 latency overlaps with CPU.
    next = objects.length > 0 ? request.store.get(objects[0]!.key) : null;
    for (let k = 0; k < objects.length; k++) {
      const bytes = await (next as Promise<Uint8Array>);
      request.signal?.throwIfAborted();
      next = k + 1 < objects.length ? request.store.get(objects[k + 1]!.key) : null;
      const where = `${request.store.location}/${objects[k]!.key}`;
      const raw = readRawLog(bytes, view.source, where);
      const keyColumn = raw.table.getChild(keyField);
      if (!keyColumn) throw new TesseraError('INVALID_ARGUMENT', `${where} has no key column ${keyField}`);
      const numericKeys = view.entity.keyType === 'int64' ? numericColumn(raw.table, keyField) : null;
      // Every plan column as numbers: doubles, or ids into a dictionary shared by all objects.
      const cols = plan.columns.map((c, i) =>
        numeric[i] ? numericColumn(raw.table, c) : stringColumnIds(raw.table, c, codes[i]!, dicts[i]!),
      );
      for (let i = 0; i < raw.rows; i++) {
        const key: EntityKey | null = numericKeys ? numericKeys[i]! : (keyColumn.get(i) as string | null);
        const e = key === null ? undefined : entities.id.get(key);
        if (e === undefined) continue;
        const t = raw.ts[i]!;
        if (!(t >= entities.lo[e]! && t < entities.hi[e]!)) continue;
        for (let c = 0; c < row.length; c++) row[c] = cols[c]![i]!;
        store.add(e % shards, e, t, raw.partition[i]!, raw.offset[i]!, row);
        counts.eventsUsed++;
      }
      counts.eventsRead += raw.rows;
      counts.objectsRead++;
      progress.update(k + 1);
    }
    progress.finish();
  } catch (error) {
    // The fetch of the next object may still be in flight: its failure is not this run's error.
    next?.catch(() => {});
    store.close();
    throw error;
  }
  return { shards: store, dicts, counts };
}
