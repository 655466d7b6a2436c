// Point-in-time retrieval: a training set with every feature as of each row's own time (events in
// [start(t), t), never later), computed from the raw event log with the engine. Two passes:
//   1. stream the raw-log objects of the days that can matter, keep only events of the requested
//      entities inside [earliest window start, last query time) of that entity, and route them by
//      entity into hash shards (typed columns; spilled to temp files when there is more than one);
//   2. per shard, answer its queries entity by entity (as-of.ts) and free the shard.
// Memory: O(labels) for the entity dataframe and the answers + one decoded raw-log object + one
// shard's events (at most `maxShardEvents` on average) + one entity's engine state.
import type { Definitions, ViewDef } from '../definitions/schema.ts';
import { numericColumns, planView, type Value, type ViewPlan } from '../engine/index.ts';
import { TesseraError } from '../errors.ts';
import { EVENT_TIMESTAMP } from '../offline/feature-columns.ts';
import type { ObjectStore } from '../offline/object-store.ts';
import { listRawLog, numericColumn, rawLogPrefix, readRawLog, stringColumnIds } from '../offline/raw-log.ts';
import { answerShard, earliestNeeded } from './as-of.ts';
import { EventShards, removeStaleSpillDirs } from './event-shards.ts';
import { type EntityKey, type LabelFrame, readLabels } from './labels.ts';
import { createProgress } from './progress.ts';
import { checkOutputPath, FeatureTable, writeTrainingSet } from './training-output.ts';

export interface HistoricalRequest {
  store: ObjectStore;
  definitions: Definitions;
  /** Entity dataframe: .csv or .parquet with the join key, event_timestamp and any labels. */
  entities: string;
  /** Output: .parquet or .csv. */
  out: string;
  /** View name; defaults to the view of `features`, else the only view. */
  view?: string;
  /** `view:feature` or `feature` names; default all features of the view. */
  features?: readonly string[];
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

export interface HistoricalSummary {
  rows: number;
  entities: number;
  features: string[];
  objectsRead: number;
  objectsSkipped: number;
  eventsRead: number;
  eventsUsed: number;
  shards: number;
  seconds: number;
  /** Seconds per phase: reading the labels, reading and routing the raw log, answering, writing. */
  phases: { labels: number; route: number; answer: number; write: number };
}

/** Conservative bytes per raw-log row in zstd parquet (measured ~15 for the fraud source): the
 * shard count is sized from object sizes before any is decoded, so it errs towards more shards. */
const MIN_BYTES_PER_ROW = 8;

export async function retrieveHistorical(request: HistoricalRequest): Promise<HistoricalSummary> {
  const started = performance.now();
  checkOutputPath(request.out, request.entities);
  // Spill directories of runs killed outright (SIGKILL): nothing else ever removes them.
  const stale = removeStaleSpillDirs(request.tempDir);
  for (const dir of stale.removed)
    if (request.progress !== false)
      process.stderr.write(`historical: removed ${dir}, left by a run that died\n`);
  for (const { dir, error } of stale.failed)
    process.stderr.write(`historical: cannot remove ${dir}, left by a run that died: ${error}\n`);
  const { view, selected } = resolveFeatures(request.definitions, request.view, request.features);
  // Offline reads see the whole log: no per-entity cap (the online cap is a memory guard).
  const plan = planView({ ...view, features: selected, maxEventsPerEntity: Number.POSITIVE_INFINITY });
  const labels = await readLabels(request.entities, view.entity.joinKey, view.entity.keyType, request.signal);
  refuseNameClashes(request.entities, labels, selected);
  const phases = { labels: (performance.now() - started) / 1000, route: 0, answer: 0, write: 0 };
  let mark = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const seconds = (now - mark) / 1000;
    mark = now;
    return seconds;
  };
  const entities = indexEntities(plan, labels);
  const log = (msg: string) => {
    if (request.progress !== false) process.stderr.write(`${msg}\n`);
  };

  const features = new FeatureTable(plan, view.source, labels.n);
  let summary: Omit<HistoricalSummary, 'seconds' | 'phases'> = {
    rows: labels.n,
    entities: entities.count,
    features: selected.map((f) => f.name),
    objectsRead: 0,
    objectsSkipped: 0,
    eventsRead: 0,
    eventsUsed: 0,
    shards: 0,
  };
  if (labels.n > 0) {
    const all = await listRawLog(request.store, view.source.name);
    // No raw log at all is a wrong --store (a typo, a missing prefix) or a view whose source was
    // never flushed there, not a history without events: it gave a training set of zeros, exit 0.
    if (all.length === 0)
      throw new TesseraError(
        'NOT_FOUND',
        `the offline store ${request.store.location} has no raw log of source ${view.source.name} ` +
          `(no ${rawLogPrefix(view.source.name)}date=YYYY-MM-DD/*.parquet objects); check --store ` +
          '(or TESSERA_OFFLINE_STORE) and that the flusher writes this source there',
        { context: { store: request.store.location, source: view.source.name } },
      );
    const objects = all.filter((o) => o.dayStart + 86_400_000 > entities.from && o.dayStart < entities.to);
    const bytes = objects.reduce((s, o) => s + o.size, 0);
    const shards =
      request.shards ??
      Math.max(
        1,
        Math.min(4096, Math.ceil(bytes / MIN_BYTES_PER_ROW / (request.maxShardEvents ?? 4_000_000))),
      );
    log(
      `historical: ${labels.n.toLocaleString('en-US')} rows, ${entities.count.toLocaleString('en-US')} entities, ` +
        `${selected.length} features of ${view.name}; raw log ${request.store.location}/raw/${view.source.name}: ` +
        `${objects.length} of ${all.length} objects in range (${(bytes / 1e6).toFixed(1)} MB), ${shards} shard(s)`,
    );
    const read = await routeEvents(request, plan, view, entities, objects, shards);
    phases.route = lap();
    summary = { ...summary, ...read.counts, objectsSkipped: all.length - objects.length, shards };
    try {
      const progress = createProgress('answering', labels.n, { enabled: request.progress !== false });
      let answered = 0;
      for (let s = 0; s < shards; s++) {
        request.signal?.throwIfAborted();
        const events = read.shards.load(s);
        await answerShard(
          plan,
          events,
          read.dicts,
          entities.queriesOf(s, shards),
          (row, values) => features.set(row, values),
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
    phases.answer = lap();
  }
  // Encoding a million rows takes seconds with no bar of its own: say what is under way.
  log(`historical: writing ${labels.n.toLocaleString('en-US')} rows to ${request.out}`);
  await writeTrainingSet(request.out, labels, features, request.signal);
  phases.write = lap();
  const seconds = (performance.now() - started) / 1000;
  log(
    `historical: wrote ${labels.n.toLocaleString('en-US')} rows to ${request.out} in ${seconds.toFixed(1)}s`,
  );
  return { ...summary, seconds, phases };
}

/**
 * The output has one column per name: a labels column named like a feature of the output (or like
 * another labels column) was overwritten in parquet and repeated in CSV. Refused before any work.
 */
function refuseNameClashes(path: string, labels: LabelFrame, features: ViewDef['features']): void {
  const featureNames = new Set(features.map((f) => f.name));
  const seen = new Set([labels.joinKey, EVENT_TIMESTAMP]);
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

/** The view and the features asked for; unknown names are an error listing what exists. */
export function resolveFeatures(
  definitions: Definitions,
  viewName: string | undefined,
  refs: readonly string[] | undefined,
): { view: ViewDef; selected: ViewDef['features'] } {
  const views = new Map(definitions.views.map((v) => [v.name, v]));
  const fromRefs = new Set((refs ?? []).filter((r) => r.includes(':')).map((r) => r.split(':')[0]!));
  if (fromRefs.size > 1)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `--features names several views (${[...fromRefs].join(', ')}); ask for one view per run`,
    );
  const name =
    viewName ?? [...fromRefs][0] ?? (definitions.views.length === 1 ? definitions.views[0]!.name : undefined);
  if (name === undefined)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `the definitions have ${definitions.views.length} views; pass --view (one of ${[...views.keys()].join(', ')})`,
    );
  const view = views.get(name);
  if (!view)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `unknown view ${name}; known views: ${[...views.keys()].join(', ')}`,
    );
  if (viewName && fromRefs.size === 1 && !fromRefs.has(viewName))
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `--features names view ${[...fromRefs][0]} but --view is ${viewName}`,
    );
  if (!refs || refs.length === 0) return { view, selected: view.features };
  const selected = refs.map((ref) => {
    const feature = ref.includes(':') ? ref.slice(ref.indexOf(':') + 1) : ref;
    const def = view.features.find((f) => f.name === feature);
    if (!def)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `unknown feature ${ref}; view ${view.name} has ${view.features.map((f) => f.ref).join(', ')}`,
        { context: { feature: ref } },
      );
    return def;
  });
  return { view, selected };
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
function indexEntities(plan: ViewPlan, labels: LabelFrame): EntityIndex {
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
