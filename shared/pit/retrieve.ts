// Point-in-time retrieval: a training set with every feature as of each row's own time (events in
// [start(t), t), never later), computed from the raw event log with the engine. Two passes:
//   1. stream the raw-log objects of the days that can matter, each object once per run: views on
//      one source share this pass, and every object's events go to each of them that needs its
//      day, keeping only events of the view's entities inside [earliest window start, last query
//      time) of that entity, routed by entity into the view's hash shards (typed columns; spilled
//      to temp files when there is more than one);
//   2. per view, per shard, answer its queries entity by entity (as-of.ts) and free the shard.
// Features of several views (each with its own entity and source) are answered source by source,
// into one answer table per view, merged by input row when written.
// Memory: O(labels) for the entity dataframe and the answers of every view + one decoded raw-log
// object + the entity indexes and shard buffers of the views sharing a pass + one shard's events
// (at most `maxShardEvents` on average: a pass sizes its shards from the summed bytes of its
// views, since with one shard every view's events stay in memory together) + one entity's engine
// state.

import {
  type FeatureRefRefusals,
  featureServiceRefs,
  resolveFeatureRefs,
} from '../definitions/feature-refs.ts';
import type { Definitions, FeatureDef, SourceDef, ViewDef } from '../definitions/schema.ts';
import { numericColumns, planView, type Value, type ViewPlan } from '../engine/index.ts';
import { TesseraError } from '../errors.ts';
import { EVENT_TIMESTAMP } from '../offline/feature-columns.ts';
import { type LateSet, readLateMarks } from '../offline/late-marks.ts';
import type { ObjectStore } from '../offline/object-store.ts';
import {
  dayOverlaps,
  listRawLog,
  numericColumn,
  type RawLogObject,
  rawLogPrefix,
  readRawLog,
  stringColumnIds,
} from '../offline/raw-log.ts';
import { answerShard, earliestNeeded } from './as-of.ts';
import { checkTempDir, EventShards, removeStaleSpillDirs } from './event-shards.ts';
import { type EntityKey, type LabelFrame, type LabelKey, readLabels, repeatedColumn } from './labels.ts';
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
  /**
   * Count the raw events the ingestor refused as late (what happened) instead of leaving them out
   * as online did (the default: the view's late marks, shared/offline/late-marks.ts).
   */
  includeLate?: boolean;
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

/** What one view read and answered. */
export interface ViewPassSummary {
  view: string;
  /** The source of its events: views on one source share one read of its raw log (`sources`). */
  source: string;
  /** The output columns of this view's features. */
  features: string[];
  entities: number;
  /** Raw-log objects of the days this view needs, and their rows: its events came from these. With
   * other views on its source they were fetched and decoded once for all of them, so summing
   * this over views counts an object once per view; `sources` counts the reads. */
  objectsRead: number;
  /** Objects of its source's raw log outside the days it needs. */
  objectsSkipped: number;
  eventsRead: number;
  /** Events kept for this view (routed into its shards). */
  eventsUsed: number;
  /** Events its entities' time ranges would have kept but the ingestor refused as late for this
   * view, left out (0 with `includeLate`). */
  eventsLate: number;
  shards: number;
}

/** One pass over a source's raw log: what was fetched and decoded, each object once. */
export interface SourcePassSummary {
  source: string;
  /** The views that shared it, in the order of their first feature. */
  views: string[];
  /** Objects fetched and decoded: those of the days any of its views needs. */
  objectsRead: number;
  /** Objects of the source's raw log that no view needed (not read). */
  objectsSkipped: number;
  /** Rows decoded. */
  eventsRead: number;
}

export interface HistoricalSummary {
  rows: number;
  /** Distinct entities, summed over the views (their entities differ: users, merchants). */
  entities: number;
  /** The output's feature columns, in order. */
  features: string[];
  /** Raw-log objects fetched and decoded, objects not read and rows decoded, summed over the
   * sources (each object counts once however many views used it). */
  objectsRead: number;
  objectsSkipped: number;
  eventsRead: number;
  /** Totals over the views (an event kept by two views counts twice: it is held twice). */
  eventsUsed: number;
  eventsLate: number;
  shards: number;
  /** Per view, in the order of their first feature. */
  views: ViewPassSummary[];
  /** Per source read (one pass each), in the order of their first view. */
  sources: SourcePassSummary[];
  seconds: number;
  /** Seconds per phase: reading the labels, reading and routing the raw log, answering, writing
   * (route summed over the sources, answer over the views). */
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
  if (request.tempDir !== undefined) checkTempDir(request.tempDir);
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
  const bySource = new Map<string, number[]>();
  for (const [v, pass] of passes.entries()) {
    const members = bySource.get(pass.view.source.name);
    if (members) members.push(v);
    else bySource.set(pass.view.source.name, [v]);
  }
  const views: ViewPassSummary[] = [];
  const sources: SourcePassSummary[] = [];
  if (labels.n > 0) {
    // Every source's raw log is listed before any is read: a store without one fails at once.
    const listed = [];
    for (const members of bySource.values())
      listed.push(await listRawLogOf(request.store, passes[members[0]!]!.view));
    const answers = new Map<number, ViewPassSummary>();
    for (const [g, members] of [...bySource.values()].entries()) {
      request.signal?.throwIfAborted();
      const answered = await answerSource(
        request,
        members.map((v) => {
          const pass = passes[v]!;
          const keys = labels.keyColumns.find((k) => k.joinKey === pass.view.entity.joinKey)!.keys;
          return { ...pass, keys, label: passes.length > 1 ? `answering ${pass.view.name}` : 'answering' };
        }),
        labels.ts,
        listed[g]!,
        { log, several: passes.length > 1 },
      );
      phases.route += answered.seconds.route;
      phases.answer += answered.seconds.answer;
      for (const [i, v] of members.entries()) answers.set(v, answered.views[i]!);
      sources.push(answered.source);
    }
    for (let v = 0; v < passes.length; v++) views.push(answers.get(v)!);
  } else {
    for (const pass of passes)
      views.push({
        view: pass.view.name,
        source: pass.view.source.name,
        features: pass.names,
        entities: 0,
        objectsRead: 0,
        objectsSkipped: 0,
        eventsRead: 0,
        eventsUsed: 0,
        eventsLate: 0,
        shards: 0,
      });
    for (const [source, members] of bySource)
      sources.push({
        source,
        views: members.map((v) => passes[v]!.view.name),
        objectsRead: 0,
        objectsSkipped: 0,
        eventsRead: 0,
      });
  }
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
  const sum = (field: 'entities' | 'eventsUsed' | 'eventsLate' | 'shards') =>
    views.reduce((total, v) => total + v[field], 0);
  const read = (field: 'objectsRead' | 'objectsSkipped' | 'eventsRead') =>
    sources.reduce((total, p) => total + p[field], 0);
  return {
    rows: labels.n,
    entities: sum('entities'),
    features: outputNames,
    objectsRead: read('objectsRead'),
    objectsSkipped: read('objectsSkipped'),
    eventsRead: read('eventsRead'),
    eventsUsed: sum('eventsUsed'),
    eventsLate: sum('eventsLate'),
    shards: sum('shards'),
    views,
    sources,
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

/** A view of a pass: what to compute, its answers' table and the join keys of its label rows. */
interface ViewMember {
  view: ViewDef;
  selected: FeatureDef[];
  plan: ViewPlan;
  names: string[];
  table: FeatureTable;
  keys: readonly EntityKey[];
  /** Its answering progress bar. */
  label: string;
}

/**
 * The views of one source: routes the events that can matter of each raw-log object, read once,
 * into the shards of every view that needs its day (pass 1), then answers each view's label rows
 * as of their times into its table (pass 2), one view after the other.
 */
async function answerSource(
  request: HistoricalRequest,
  members: readonly ViewMember[],
  ts: Float64Array,
  all: readonly RawLogObject[],
  out: { log: (msg: string) => void; several: boolean },
): Promise<{
  views: ViewPassSummary[];
  source: SourcePassSummary;
  seconds: { route: number; answer: number };
}> {
  let mark = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const seconds = (now - mark) / 1000;
    mark = now;
    return seconds;
  };
  const source = members[0]!.view.source;
  const indexed: (ViewMember & {
    entities: EntityIndex;
    needs: (o: RawLogObject) => boolean;
    objects: RawLogObject[];
    late: LateSet | null;
    bytes: number;
  })[] = [];
  for (const m of members) {
    const entities = indexEntities(m.plan, m.keys, ts);
    const needsDay = (dayStart: number) => dayOverlaps(dayStart, entities.from, entities.to);
    const needs = (o: RawLogObject) => needsDay(o.dayStart);
    const objects = all.filter(needs);
    // The events online refused as late for this view, of the days read: left out as online did.
    const late = request.includeLate
      ? null
      : await readLateMarks(request.store, m.view.name, needsDay, request.signal);
    if (late && late.marks > 0)
      out.log(
        `historical: ${m.view.name}: ${late.marks.toLocaleString('en-US')} late marks (${late.objects} objects): ` +
          'the raw events the ingestor refused as late are left out, as online left them out; --include-late counts them',
      );
    indexed.push({
      ...m,
      entities,
      needs,
      objects,
      // None in its days: the per-event check is skipped.
      late: late && late.marks > 0 ? late : null,
      bytes: objects.reduce((s, o) => s + o.size, 0),
    });
  }
  // An object is read when some view needs its day, and its events go to those views only (each
  // sees exactly the objects it would read alone).
  const objects = all
    .map((o) => ({ key: o.key, size: o.size, to: indexed.map((m) => m.needs(o)) }))
    .filter((o) => o.to.includes(true));
  // With one shard every view's events stay in memory until its turn to answer: the views of a
  // pass share the bound, so the shard count comes from their summed bytes.
  const summed = indexed.reduce((s, m) => s + m.bytes, 0);
  const shards =
    request.shards ??
    Math.max(
      1,
      Math.min(4096, Math.ceil(summed / MIN_BYTES_PER_ROW / (request.maxShardEvents ?? 4_000_000))),
    );
  for (const m of indexed)
    out.log(
      `historical: ${ts.length.toLocaleString('en-US')} rows, ${m.entities.count.toLocaleString('en-US')} entities, ` +
        `${m.selected.length} features of ${m.view.name}; raw log ${request.store.location}/raw/${source.name}: ` +
        `${m.objects.length} of ${all.length} objects in range (${(m.bytes / 1e6).toFixed(1)} MB), ${shards} shard(s)`,
    );
  if (indexed.length > 1)
    out.log(
      `historical: views ${indexed.map((m) => m.view.name).join(', ')} share source ${source.name}: ` +
        `${objects.length} objects (${(objects.reduce((s, o) => s + o.size, 0) / 1e6).toFixed(1)} MB) ` +
        `read once for all of them, ${shards} shard(s) each`,
    );
  const read = await routeEvents(request, indexed, objects, shards, {
    source,
    label: out.several ? `reading raw log of ${source.name}` : 'reading raw log',
  });
  const route = lap();
  try {
    for (const [v, m] of indexed.entries()) {
      const routed = read.views[v]!;
      const progress = createProgress(m.label, ts.length, { enabled: request.progress !== false });
      let answered = 0;
      for (let s = 0; s < shards; s++) {
        request.signal?.throwIfAborted();
        const events = routed.shards.load(s);
        await answerShard(
          m.plan,
          events,
          routed.dicts,
          m.entities.queriesOf(s, shards),
          (row, values) => m.table.set(row, values),
          (n) => {
            answered += n;
            progress.update(answered);
          },
          request.signal,
        );
      }
      progress.finish();
      // Its spill files go before the next view answers.
      routed.shards.close();
    }
  } finally {
    for (const routed of read.views) routed.shards.close();
  }
  return {
    views: indexed.map((m, v) => ({
      view: m.view.name,
      source: source.name,
      features: m.names,
      entities: m.entities.count,
      ...read.views[v]!.counts,
      objectsSkipped: all.length - m.objects.length,
      shards,
    })),
    source: {
      source: source.name,
      views: indexed.map((m) => m.view.name),
      ...read.counts,
      objectsSkipped: all.length - objects.length,
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
    if (seen.has(name)) throw repeatedColumn(path, name);
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
  let refs = ask.features && ask.features.length > 0 ? ask.features : undefined;
  if (ask.featureService !== undefined) {
    if (refs || ask.view !== undefined)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `--feature-service cannot be combined with ${refs ? '--features' : '--view'}: the feature service names its features and their views; pass one of them`,
      );
    refs = featureServiceRefs(definitions, ask.featureService, REFUSALS);
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
  if (!refs) {
    if (defaultView === undefined)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `the definitions have ${definitions.views.length} views; pass --view (one of ${viewList(definitions)}), --features view:feature,... or --feature-service`,
      );
    const view = definitions.views.find((v) => v.name === defaultView);
    if (!view)
      throw REFUSALS.unknownView({ ref: defaultView, at: 0, fromService: false, definitions }, defaultView);
    refs = view.features.map((f) => f.ref);
  }
  const groups: FeatureSelection['groups'] = [];
  const columns: FeatureSelection['columns'] = [];
  resolveFeatureRefs(
    definitions,
    refs,
    {
      defaultView,
      fullFeatureNames: ask.fullFeatureNames === true,
      fromService: ask.featureService !== undefined,
    },
    REFUSALS,
    (view, index, name) => {
      let group = groups.findIndex((g) => g.view === view);
      if (group < 0) group = groups.push({ view, selected: [] }) - 1;
      columns.push({ group, index: groups[group]!.selected.push(view.features[index]!) - 1, name });
    },
  );
  return { groups, columns };
}

function viewList(definitions: Definitions): string {
  return definitions.views.map((v) => v.name).join(', ');
}

/** The refusals of feature references, naming the flags (shared/definitions/feature-refs.ts). */
const REFUSALS: FeatureRefRefusals = {
  malformed: ({ ref, definitions }) =>
    new TesseraError(
      'INVALID_ARGUMENT',
      ref.includes(':')
        ? `--features ${ref} is not a feature reference; write view:feature (views: ${viewList(definitions)})`
        : `--features ${ref} names no view, and the definitions have ${definitions.views.length} views: write view:feature (views: ${viewList(definitions)}) or pass --view`,
      { context: { feature: ref } },
    ),
  unknownView: ({ definitions }, view) =>
    new TesseraError('INVALID_ARGUMENT', `unknown view ${view}; known views: ${viewList(definitions)}`, {
      context: { view },
    }),
  unknownFeature: ({ ref }, view) =>
    new TesseraError(
      'INVALID_ARGUMENT',
      `unknown feature ${ref}; view ${view.name} has ${view.features.map((f) => f.ref).join(', ')}`,
      { context: { feature: ref } },
    ),
  twice: ({ ref }, def) =>
    new TesseraError('INVALID_ARGUMENT', `--features asks for ${def.ref} twice; ask for each feature once`, {
      context: { feature: ref },
    }),
  clash: (_r, def, other, name) =>
    new TesseraError(
      'INVALID_ARGUMENT',
      `${other.ref} and ${def.ref} would both be the column ${name}; pass --full-feature-names (columns named view__feature), or ask for one of them`,
      { context: { column: name } },
    ),
  unknownService: (name, definitions) => {
    const known = [...definitions.featureServices.keys()];
    return new TesseraError(
      'INVALID_ARGUMENT',
      known.length > 0
        ? `unknown feature service ${name}; known feature services: ${known.join(', ')}`
        : `unknown feature service ${name}; the definitions ${definitions.file} declare no feature_services`,
      { context: { featureService: name } },
    );
  },
};

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

/**
 * Pass 1: streams the raw-log objects, each once, and routes the events that can matter into the
 * shards of every view that needs the object's day (`to[v]`).
 */
async function routeEvents(
  request: HistoricalRequest,
  members: readonly { view: ViewDef; plan: ViewPlan; entities: EntityIndex; late: LateSet | null }[],
  objects: readonly { key: string; to: readonly boolean[] }[],
  shards: number,
  out: { source: SourceDef; label: string },
): Promise<{
  views: {
    shards: EventShards;
    dicts: (Value[] | null)[];
    counts: { objectsRead: number; eventsRead: number; eventsUsed: number; eventsLate: number };
  }[];
  counts: { objectsRead: number; eventsRead: number };
}> {
  const routes: {
    view: ViewDef;
    plan: ViewPlan;
    entities: EntityIndex;
    late: LateSet | null;
    numeric: boolean[];
    shards: EventShards;
    dicts: (Value[] | null)[];
    codes: Map<Value, number>[];
    row: Float64Array;
    counts: { objectsRead: number; eventsRead: number; eventsUsed: number; eventsLate: number };
  }[] = [];
  const counts = { objectsRead: 0, eventsRead: 0 };
  const keyField = out.source.keyField;
  let next: Promise<Uint8Array> | null = null;
  try {
    for (const m of members) {
      // The columns the engine holds as numbers (the others by dictionary), as online. Each view
      // has its own dictionaries: its ids are those it would have alone.
      const numeric = numericColumns(m.plan);
      routes.push({
        ...m,
        numeric,
        shards: new EventShards(shards, numeric, request.tempDir),
        dicts: m.plan.columns.map((_, c) => (numeric[c] ? null : [])),
        codes: m.plan.columns.map(() => new Map<Value, number>()),
        row: new Float64Array(m.plan.columns.length),
        counts: { objectsRead: 0, eventsRead: 0, eventsUsed: 0, eventsLate: 0 },
      });
    }
    const progress = createProgress(out.label, objects.length, {
      enabled: request.progress !== false,
      unit: 'objects',
    });
    // Fetch the next object while this one is decoded: S3 latency overlaps with CPU.
    next = objects.length > 0 ? request.store.get(objects[0]!.key) : null;
    for (let k = 0; k < objects.length; k++) {
      const bytes = await (next as Promise<Uint8Array>);
      request.signal?.throwIfAborted();
      next = k + 1 < objects.length ? request.store.get(objects[k + 1]!.key) : null;
      const where = `${request.store.location}/${objects[k]!.key}`;
      const raw = readRawLog(bytes, out.source, where);
      const keyColumn = raw.table.getChild(keyField);
      if (!keyColumn) throw new TesseraError('INVALID_ARGUMENT', `${where} has no key column ${keyField}`);
      // A numeric column is decoded once for all the views of the pass.
      const decoded = new Map<string, Float64Array>();
      const numbers = (name: string): Float64Array => {
        let column = decoded.get(name);
        if (!column) {
          column = numericColumn(raw.table, name);
          decoded.set(name, column);
        }
        return column;
      };
      for (const [v, r] of routes.entries()) {
        if (!objects[k]!.to[v]) continue;
        const { entities, row, shards: store } = r;
        const numericKeys = r.view.entity.keyType === 'int64' ? numbers(keyField) : null;
        // Every plan column as numbers: doubles, or ids into a dictionary shared by all objects.
        const cols = r.plan.columns.map((c, i) =>
          r.numeric[i] ? numbers(c) : stringColumnIds(raw.table, c, r.codes[i]!, r.dicts[i]!),
        );
        for (let i = 0; i < raw.rows; i++) {
          const key: EntityKey | null = numericKeys ? numericKeys[i]! : (keyColumn.get(i) as string | null);
          const e = key === null ? undefined : entities.id.get(key);
          if (e === undefined) continue;
          const t = raw.ts[i]!;
          if (!(t >= entities.lo[e]! && t < entities.hi[e]!)) continue;
          if (r.late?.has(raw.partition[i]!, raw.offset[i]!, t)) {
            r.counts.eventsLate++;
            continue;
          }
          for (let c = 0; c < row.length; c++) row[c] = cols[c]![i]!;
          store.add(e % shards, e, t, raw.partition[i]!, raw.offset[i]!, row);
          r.counts.eventsUsed++;
        }
        r.counts.eventsRead += raw.rows;
        r.counts.objectsRead++;
      }
      counts.eventsRead += raw.rows;
      counts.objectsRead++;
      progress.update(k + 1);
    }
    progress.finish();
  } catch (error) {
    // The fetch of the next object may still be in flight: its failure is not this run's error.
    next?.catch(() => {});
    for (const r of routes) r.shards.close();
    throw error;
  }
  return { views: routes.map((r) => ({ shards: r.shards, dicts: r.dicts, counts: r.counts })), counts };
}
