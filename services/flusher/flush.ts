// One flush: everything buffered below a cut goes to the offline store, in an order that makes a
// crash at any point harmless (docs/offline-store.md "Exactly once"):
//   1. the intent (version name + cut) is saved in the flusher state, before any data object;
//   2. raw event files, each view's version directory (metadata.json last), latest/
//      (latest/_VERSION last) and the late marks are written under names that depend only on the
//      intent;
//   3. the state records the new positions and written offsets and clears the intent;
//   4. entity snapshots of the views written, best effort: they need Redis, and a Redis outage
//      must not stop the raw log, the training rows and the Kafka commit (it once did, every
//      retry failing on the snapshot). A version without a snapshot is fine: restore takes the
//      newest snapshot there is.
// A restart with an intent pending waits until the buffer holds the same cut and redoes the flush:
// same records, same names, same bytes. Only then does the caller commit the Kafka offsets.
import type { Logger } from 'pino';
import type { Decoder } from '../../shared/codecs/decode.ts';
import type { Definitions, SourceDef, ViewDef } from '../../shared/definitions/schema.ts';
import { type LateMark, lateMarkFiles } from '../../shared/offline/late-marks.ts';
import type { ObjectStore } from '../../shared/offline/object-store.ts';
import { writeParquet } from '../../shared/offline/parquet.ts';
import { newestCompleteSnapshot } from './entity-snapshot.ts';
import {
  compareRows,
  type FeatureRow,
  featureColumns,
  misfitFeature,
  type NoRow,
  parseRows,
} from './feature-rows.ts';
import {
  copyState,
  type FlusherState,
  type FlushIntent,
  type Positions,
  parseVersion,
  saveState,
  writtenRanges,
} from './flusher-state.ts';
import { OffsetRanges, type Range } from './offset-ranges.ts';
import { buildRawFiles } from './raw-files.ts';
import type { RecordBuffer } from './record-buffer.ts';
import { columnStats, schemaFeatures, schemaJson, toCsv } from './version-files.ts';

export const VERSION_FILES = ['features.parquet', 'features.csv', 'schema.json', 'metadata.json'] as const;
export const LATEST_MARKER = 'latest/_VERSION';
/** Snappy, not zstd: 4x faster to encode for 30 % more bytes (docs/decisions/0002-parquet-writer.md). */
export const COMPRESSION = 'snappy' as const;

export interface FlushContext {
  store: ObjectStore;
  definitions: Definitions;
  /** Consumed source topics (with the topic prefix) and their decoders. */
  sources: ReadonlyMap<string, { source: SourceDef; decoder: Decoder }>;
  rowsTopic: string;
  retentionVersions: number;
  codeVersion: string;
  logger: Logger;
  /**
   * Writes an entity snapshot of a view for a version; absent = snapshots off. Called once the
   * flush is recorded; a failure is reported (FlushReport.snapshotErrors), never thrown.
   */
  snapshot?: (view: ViewDef, version: string, asOf: number) => Promise<void>;
}

export interface FlushReport {
  version: string;
  rawEvents: Map<string, number>;
  rows: Map<string, number>;
  duplicateRows: Map<string, number>;
  /** Source offsets marked as having no row (dead-lettered), per view: written ranges, no rows. */
  noRows: Map<string, number>;
  /** Late marks filed (shared/offline/late-marks.ts), per view: the `late` ones of those, and the
   * marks of ingestors with the training rows off (not in noRows: they close no gap). */
  lateMarks: Map<string, number>;
  invalid: Map<string, number>;
  objects: number;
  /** Views whose entity snapshot of this version was written. */
  snapshots: string[];
  /** Views whose snapshot failed (e.g. Redis down), with the error: the flush itself succeeded. */
  snapshotErrors: Map<string, unknown>;
}

/** Runs (or redoes) the flush of `intent`. Mutates `state` only once everything is written. */
export async function runFlush(
  ctx: FlushContext,
  state: FlusherState,
  buffer: RecordBuffer,
  intent: FlushIntent,
): Promise<FlushReport> {
  const { store, logger } = ctx;
  const report: FlushReport = {
    version: intent.version,
    rawEvents: new Map(),
    rows: new Map(),
    duplicateRows: new Map(),
    noRows: new Map(),
    lateMarks: new Map(),
    invalid: new Map(),
    objects: 0,
    snapshots: [],
    snapshotErrors: new Map(),
  };
  if (state.pending?.version !== intent.version) {
    await saveState(store, { ...state, pending: intent });
    state.pending = intent;
  }
  logger.info({ version: intent.version, cut: intent.cut }, 'flush writing');
  const fileMeta = footer({ definitions_hash: ctx.definitions.hash, flush: intent.version });
  const fileOptions = { metadata: fileMeta, compression: COMPRESSION };

  for (const [topic, { source, decoder }] of ctx.sources) {
    const { files, invalid } = await buildRawFiles(
      source,
      decoder,
      buffer.take(topic, intent.cut),
      fileOptions,
    );
    await putParquet(store, files);
    report.objects += files.length;
    report.rawEvents.set(
      source.name,
      files.reduce((n, f) => n + f.rows, 0),
    );
    for (const [reason, n] of invalid) report.invalid.set(`${topic}:${reason}`, n);
  }

  // Rows: parse, keep the first copy of each source offset not written before, per view.
  const fresh = new Map<string, FeatureRow[]>();
  const late = new Map<string, LateMark[]>();
  const fileLate = (mark: NoRow) => {
    // Kept for point-in-time retrieval, which reads the raw log (late events included). A mark
    // without a time (an ingestor older than late marks) cannot be filed by day.
    if (mark.reason !== 'late' || mark.ts === undefined) return;
    const entry = {
      sourceTopic: mark.source_topic,
      partition: mark.partition,
      offset: mark.offset,
      ts: mark.ts,
    };
    const list = late.get(mark.view);
    if (list) list.push(entry);
    else late.set(mark.view, [entry]);
  };
  // The marks of ingestors with the training rows off, filed in this flush (one per offset).
  const filedRowsOff = new Set<string>();
  const seen = new Map<string, OffsetRanges>(); // `${topic}\0${partition}` -> offsets taken in this flush
  const views = new Map(ctx.definitions.views.map((v) => [v.name, v]));
  for (const [, records] of [...buffer.take(ctx.rowsTopic, intent.cut)].sort((a, b) => a[0] - b[0])) {
    for (const parsed of records.flatMap((r) => parseRows(r.value))) {
      if (!parsed.ok) {
        report.invalid.set(
          `${ctx.rowsTopic}:${parsed.reason}`,
          (report.invalid.get(`${ctx.rowsTopic}:${parsed.reason}`) ?? 0) + 1,
        );
        continue;
      }
      const row = parsed.row ?? parsed.noRow;
      const view = views.get(row.view);
      const refused =
        view === undefined
          ? 'unknown_view'
          : parsed.row !== undefined && misfitFeature(view, parsed.row) && 'feature_type';
      if (refused) {
        report.invalid.set(
          `${ctx.rowsTopic}:${refused}`,
          (report.invalid.get(`${ctx.rowsTopic}:${refused}`) ?? 0) + 1,
        );
        continue;
      }
      const id = `${row.view}\0${row.source_topic}\0${row.partition}`;
      // The first entry of an offset wins, a row or a no-row mark: either is "done" for it.
      const done =
        state.written.get(viewTopic(row.view, row.source_topic))?.get(row.partition)?.has(row.offset) ===
          true || seen.get(id)?.has(row.offset) === true;
      if (parsed.noRow?.rowsOff) {
        // No rows fill the offsets between such marks, so they stay out of the written offsets
        // (each would be one more interval, kept forever) and are only filed, unless the offset
        // already has a row or a mark (an ingestor with the rows on came first).
        if (!done && !filedRowsOff.has(`${id}\0${row.offset}`)) {
          filedRowsOff.add(`${id}\0${row.offset}`);
          fileLate(parsed.noRow);
        }
        continue;
      }
      let taken = seen.get(id);
      if (!taken) {
        taken = new OffsetRanges();
        seen.set(id, taken);
      }
      if (parsed.noRow !== undefined) {
        if (!done) {
          taken.add(row.offset);
          report.noRows.set(row.view, (report.noRows.get(row.view) ?? 0) + 1);
          if (!filedRowsOff.has(`${id}\0${row.offset}`)) fileLate(parsed.noRow);
        }
        continue;
      }
      if (done) {
        report.duplicateRows.set(row.view, (report.duplicateRows.get(row.view) ?? 0) + 1);
        continue;
      }
      taken.add(row.offset);
      let list = fresh.get(row.view);
      if (!list) {
        list = [];
        fresh.set(row.view, list);
      }
      list.push(parsed.row);
    }
  }

  const versionsWritten: ViewDef[] = [];
  for (const [name, rows] of fresh) {
    const view = views.get(name)!;
    rows.sort(compareRows);
    await writeVersion(ctx, view, intent, rows);
    report.objects += VERSION_FILES.length * 2 + 1;
    report.rows.set(name, rows.length);
    versionsWritten.push(view);
  }

  for (const [name, marks] of late) {
    const files = lateMarkFiles(name, intent.version, marks, fileOptions);
    await putParquet(store, files);
    report.objects += files.length;
    report.lateMarks.set(name, marks.length);
  }

  // Success: record what is now in the store, then clear the intent. On a copy, taken over only
  // once saved: if the save fails the live state keeps its intent, so the retry (or the stop's
  // final flush) redoes this very flush instead of cutting a new one over the same records
  // (raw events written twice) or finding every row already "written".
  const next = copyState(state);
  for (const [id, taken] of seen) {
    const [view, topic, partition] = id.split('\0') as [string, string, string];
    const ranges = writtenRanges(next, viewTopic(view, topic), Number(partition));
    for (const [a, b] of taken.toJSON()) ranges.addRange(a, b);
  }
  next.positions = mergePositions(state.positions, intent.cut);
  next.lastVersion = intent.version;
  next.flushes += 1;
  next.pending = null;
  await saveState(store, next);
  Object.assign(state, next);

  // Snapshots only now: the flush above stands whatever happens to them. A crash or a failure
  // here leaves this version without one, and restore then takes an older snapshot.
  if (ctx.snapshot)
    for (const view of versionsWritten) {
      try {
        await ctx.snapshot(view, intent.version, Date.parse(intent.startedAt));
        report.snapshots.push(view.name);
      } catch (error) {
        report.snapshotErrors.set(view.name, error);
        logger.warn(
          { err: String(error), view: view.name, version: intent.version },
          'entity snapshot failed; the version is written without one (restore takes an older snapshot)',
        );
      }
    }

  if (ctx.retentionVersions > 0)
    for (const view of versionsWritten)
      await applyRetention(ctx, view.name).catch((error: unknown) =>
        logger.warn(
          { err: String(error), view: view.name },
          'retention failed; old versions are deleted at the next flush',
        ),
      );
  return report;
}

function putParquet(store: ObjectStore, files: readonly { key: string; body: Uint8Array }[]): Promise<void> {
  return putAll(
    store,
    files.map((f) => [f.key, f.body, 'application/vnd.apache.parquet']),
  );
}

/** Written offsets are tracked per view and source topic: two views of one source each get a row. */
function viewTopic(view: string, topic: string): string {
  return `${view}/${topic}`;
}

async function writeVersion(
  ctx: FlushContext,
  view: ViewDef,
  intent: FlushIntent,
  rows: FeatureRow[],
): Promise<void> {
  const { store } = ctx;
  const dir = `${view.name}/${intent.version}`;
  const { specs, columns } = featureColumns(view, rows);
  const parquet = writeParquet(specs, columns, rows.length, {
    metadata: footer({ view: view.name, version: intent.version, definitions_hash: ctx.definitions.hash }),
    compression: COMPRESSION,
  });
  const covered = new Map<string, Map<number, OffsetRanges>>();
  let tsMin = Number.POSITIVE_INFINITY;
  let tsMax = Number.NEGATIVE_INFINITY;
  const hashes = new Set<string>();
  for (const r of rows) {
    let parts = covered.get(r.source_topic);
    if (!parts) {
      parts = new Map();
      covered.set(r.source_topic, parts);
    }
    let ranges = parts.get(r.partition);
    if (!ranges) {
      ranges = new OffsetRanges();
      parts.set(r.partition, ranges);
    }
    ranges.add(r.offset);
    if (r.ts < tsMin) tsMin = r.ts;
    if (r.ts > tsMax) tsMax = r.ts;
    hashes.add(r.definitions_hash);
  }
  const sourceOffsets: Record<string, Record<string, Range[]>> = {};
  for (const [topic, parts] of covered) {
    sourceOffsets[topic] = {};
    for (const [p, ranges] of [...parts].sort((a, b) => a[0] - b[0]))
      sourceOffsets[topic][String(p)] = ranges.toJSON();
  }
  const stats: Record<string, unknown> = {};
  for (const f of view.features) {
    const spec = specs.find((s) => s.name === f.name)!;
    stats[f.name] = columnStats(spec, columns[f.name]!, rows.length);
  }
  const schema = schemaJson(specs, {
    view: view.name,
    entity: view.entity.name,
    join_key: view.entity.joinKey,
    timestamp_field: 'event_timestamp',
    definitions_hash: ctx.definitions.hash,
    features: schemaFeatures(view),
  });
  const metadata = {
    view: view.name,
    version: intent.version,
    row_count: rows.length,
    event_time_min: new Date(tsMin).toISOString(),
    event_time_max: new Date(tsMax).toISOString(),
    source_offsets: sourceOffsets,
    rows_topic: { topic: ctx.rowsTopic, cut: intent.cut[ctx.rowsTopic] ?? {} },
    feature_stats: stats,
    definitions_hash: ctx.definitions.hash,
    row_definitions_hashes: [...hashes].sort(),
    code_version: ctx.codeVersion,
    flush_started_at: intent.startedAt,
  };
  const files: [string, Uint8Array | string, string][] = [
    ['features.parquet', parquet, 'application/vnd.apache.parquet'],
    ['features.csv', toCsv(specs, columns, rows.length), 'text/csv'],
    ['schema.json', JSON.stringify(schema, null, 2), 'application/json'],
    ['metadata.json', JSON.stringify(metadata, null, 2), 'application/json'],
  ];
  // Data files in parallel, metadata.json after them: a version directory with metadata.json is complete.
  await putAll(
    store,
    files.slice(0, -1).map(([name, body, type]) => [`${dir}/${name}`, body, type]),
  );
  await store.put(`${dir}/metadata.json`, files.at(-1)![1], 'application/json');
  // latest/: copies for tools that want one fixed path, then the marker readers trust.
  await putAll(
    store,
    files.map(([name, body, type]) => [`${view.name}/latest/${name}`, body, type]),
  );
  await store.put(`${view.name}/${LATEST_MARKER}`, `${intent.version}\n`, 'text/plain');
}

/**
 * Deletes versions older than the newest `retentionVersions`, and the snapshots older than every
 * version kept, except the newest complete snapshot: when Redis was down for the last N flushes
 * the kept versions have none, and deleting it would leave nothing to restore from.
 */
async function applyRetention(ctx: FlushContext, view: string): Promise<void> {
  const objects = await ctx.store.list(`${view}/v_`);
  const versions = [...new Set(objects.map((o) => o.key.split('/')[1]!))]
    .filter((v) => parseVersion(v) !== null)
    .sort();
  const dropCount = Math.max(0, versions.length - ctx.retentionVersions);
  if (dropCount === 0) return;
  const drop = new Set(versions.slice(0, dropCount));
  const oldestKept = versions[dropCount]!;
  const snapshots = await ctx.store.list(`${view}/snapshots/v_`);
  const newestSnapshot = newestCompleteSnapshot(view, new Set(snapshots.map((o) => o.key)));
  const keys = [
    ...objects.filter((o) => drop.has(o.key.split('/')[1]!)),
    ...snapshots.filter((o) => {
      const v = o.key.split('/')[2]!;
      return v < oldestKept && v !== newestSnapshot;
    }),
  ].map((o) => o.key);
  // Every metadata.json gone before any other file: a half-deleted version is then no longer
  // "complete" to readers. One call would not do: S3 deletes run several at a time.
  const isMeta = (key: string) => key.endsWith('/metadata.json');
  await ctx.store.delete(keys.filter(isMeta));
  await ctx.store.delete(keys.filter((key) => !isMeta(key)));
  ctx.logger.info({ view, deleted: [...drop] }, 'retention: deleted old versions');
}

export function mergePositions(into: Positions, cut: Positions): Positions {
  const out: Positions = structuredClone(into);
  for (const [topic, parts] of Object.entries(cut)) {
    out[topic] ??= {};
    for (const [p, end] of Object.entries(parts)) out[topic][p] = Math.max(out[topic][p] ?? 0, end);
  }
  return out;
}

/**
 * Uploads objects a few at a time (each PUT is atomic; their order does not matter). After a
 * failure no new upload starts, and it returns only once those in flight have ended: a slow PUT of
 * a failed attempt once landed after the retry and the next flush, leaving latest/ mixed for good.
 */
async function putAll(
  store: ObjectStore,
  items: [string, Uint8Array | string, string][],
  concurrency = 8,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const [key, body, type] = items[next++]!;
      try {
        await store.put(key, body, type);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const results = await Promise.allSettled(
    Array.from({ length: Math.min(concurrency, items.length) }, worker),
  );
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}

/**
 * Parquet footer metadata as ONE key (`tessera`, a JSON object): parquet-wasm stores several keys in
 * a hash map whose order changes between runs, and a redone flush must write identical bytes.
 */
export function footer(fields: Record<string, string>): Record<string, string> {
  return { tessera: JSON.stringify(fields) };
}
