// Fixtures shared by the point-in-time tests and loadtest/pit-bench.ts: a seeded fraud event log
// held as typed columns (10M events fit; 10M event objects would not), written as the raw log,
// as the features.parquet Feast reads (features before each event, by the engine's training-row
// sweep), as the oracle's events CSV, and entity dataframes sampled from the transactions.
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceDef, ViewDef } from '../../shared/definitions/schema.ts';
import {
  type ColumnData,
  type EventColumns,
  type FeatureColumn,
  featuresBeforeEachColumnar,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { featureTableColumns } from '../../shared/offline/feature-columns.ts';
import type { ObjectStore } from '../../shared/offline/object-store.ts';
import { type ColumnInput, writeParquet } from '../../shared/offline/parquet.ts';
import { writeRawLog } from '../../shared/offline/raw-log.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';

export interface FraudLog {
  n: number;
  user: Float64Array;
  ts: Float64Array;
  amount: Float64Array;
  merchant: Int32Array;
  merchants: string[];
  partition: Int32Array;
  offset: Float64Array;
}

const DAY = 86_400_000;

/**
 * `events` generated in `chunks` consecutive time spans (35 days in all), so that no more than
 * one chunk exists as objects at a time. Offsets continue across chunks per partition.
 */
export function generateFraudLog(options: {
  events: number;
  seed: number;
  users?: number;
  chunks?: number;
}): FraudLog {
  const n = options.events;
  const chunks = options.chunks ?? Math.max(1, Math.ceil(n / 1_000_000));
  const users = options.users ?? Math.max(10, Math.ceil(n / 10));
  const start = Date.UTC(2026, 0, 1);
  const span = 35 * DAY;
  const log: FraudLog = {
    n,
    user: new Float64Array(n),
    ts: new Float64Array(n),
    amount: new Float64Array(n),
    merchant: new Int32Array(n),
    merchants: [],
    partition: new Int32Array(n),
    offset: new Float64Array(n),
  };
  const ids = new Map<string, number>();
  const base = new Array<number>(6).fill(0);
  let at = 0;
  for (let c = 0; c < chunks; c++) {
    const size = Math.floor((n * (c + 1)) / chunks) - Math.floor((n * c) / chunks);
    const events = generateFraudEvents({
      events: size,
      seed: options.seed * 1000 + c,
      users,
      start: start + Math.floor((span * c) / chunks),
      spanMs: Math.floor(span / chunks),
      partitions: 6,
    });
    const top = new Array<number>(6).fill(-1);
    for (const e of events) {
      log.user[at] = e.user_id;
      log.ts[at] = e.event_timestamp;
      log.amount[at] = e.amount;
      let id = ids.get(e.merchant_id);
      if (id === undefined) {
        id = log.merchants.push(e.merchant_id) - 1;
        ids.set(e.merchant_id, id);
      }
      log.merchant[at] = id;
      log.partition[at] = e.partition;
      log.offset[at] = base[e.partition]! + e.offset;
      top[e.partition] = Math.max(top[e.partition]!, e.offset);
      at++;
    }
    for (let p = 0; p < 6; p++) base[p]! += top[p]! + 1;
  }
  return log;
}

/** Writes the log as the raw event log, `rowsPerFile` rows per flush (one object per day each). */
export async function writeFraudRawLog(
  store: ObjectStore,
  source: SourceDef,
  log: FraudLog,
  rowsPerFile = 1_000_000,
): Promise<number> {
  let objects = 0;
  for (let from = 0, part = 0; from < log.n; from += rowsPerFile, part++) {
    const to = Math.min(log.n, from + rowsPerFile);
    const rows = to - from;
    const columns: Record<string, ColumnInput> = {
      user_id: { values: BigInt64Array.from(log.user.subarray(from, to), (v) => BigInt(v)) },
      event_timestamp: { values: BigInt64Array.from(log.ts.subarray(from, to), (v) => BigInt(v)) },
      amount: { values: log.amount.slice(from, to) },
      merchant_id: { values: Array.from(log.merchant.subarray(from, to), (m) => log.merchants[m]!) },
      source_partition: { values: log.partition.slice(from, to) },
      source_offset: { values: BigInt64Array.from(log.offset.subarray(from, to), (v) => BigInt(v)) },
    };
    objects += (await writeRawLog(store, source, { rows, columns }, `part-${String(part).padStart(5, '0')}`))
      .length;
  }
  return objects;
}

/** The engine's training rows over the whole log: features before each event (input order). */
export function fraudTrainingRows(plan: ViewPlan, log: FraudLog): FeatureColumn[] {
  const dense = new Map<number, number>();
  const entity = new Int32Array(log.n);
  for (let i = 0; i < log.n; i++) {
    let id = dense.get(log.user[i]!);
    if (id === undefined) {
      id = dense.size;
      dense.set(log.user[i]!, id);
    }
    entity[i] = id;
  }
  const columns = plan.columns.map((name): ColumnData => {
    if (name === 'amount') return { kind: 'num', values: log.amount };
    if (name === 'merchant_id') return { kind: 'str', ids: log.merchant, dict: log.merchants };
    throw new Error(`fraud log has no column ${name}`);
  });
  const input: EventColumns = {
    n: log.n,
    entities: dense.size,
    entity,
    ts: log.ts,
    partition: log.partition,
    offset: log.offset,
    columns,
  };
  return featuresBeforeEachColumnar(plan, input);
}

/** features.parquet files (featureTableColumns(view)) in `dir`, `rowsPerFile` rows each. */
export function writeFeatureTable(
  dir: string,
  view: ViewDef,
  log: FraudLog,
  values: FeatureColumn[],
  rowsPerFile = 1_000_000,
): string[] {
  mkdirSync(dir, { recursive: true });
  const specs = featureTableColumns(view);
  const paths: string[] = [];
  for (let from = 0, part = 0; from < log.n; from += rowsPerFile, part++) {
    const to = Math.min(log.n, from + rowsPerFile);
    const columns: Record<string, ColumnInput> = {
      user_id: { values: BigInt64Array.from(log.user.subarray(from, to), (v) => BigInt(v)) },
      event_timestamp: { values: BigInt64Array.from(log.ts.subarray(from, to), (v) => BigInt(v)) },
      source_partition: { values: log.partition.slice(from, to) },
      source_offset: { values: BigInt64Array.from(log.offset.subarray(from, to), (v) => BigInt(v)) },
    };
    view.features.forEach((f, k) => {
      const col = values[k]!;
      const slice = Array.from({ length: to - from }, (_, i) => col[from + i] as number | null);
      const type = specs.find((s) => s.name === f.name)!.type;
      columns[f.name] = {
        values:
          type === 'int64'
            ? BigInt64Array.from(slice, (v) => BigInt(v ?? 0))
            : Float64Array.from(slice, (v) => v ?? Number.NaN),
      };
    });
    const path = join(dir, `part-${String(part).padStart(5, '0')}.parquet`);
    writeFileSync(path, writeParquet(specs, columns, to - from));
    paths.push(path);
  }
  return paths;
}

/** The oracle's events CSV (test/oracle/README.md). */
export async function writeEventsCsv(path: string, log: FraudLog): Promise<void> {
  const out = createWriteStream(path);
  const done = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
  });
  let chunk = 'user_id,event_timestamp,amount,merchant_id,partition,offset\n';
  for (let i = 0; i < log.n; i++) {
    chunk += `${log.user[i]},${log.ts[i]},${log.amount[i]},${log.merchants[log.merchant[i]!]},${log.partition[i]},${log.offset[i]}\n`;
    if (chunk.length > 1 << 16) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      chunk = '';
    }
  }
  out.end(chunk);
  await done;
}

/**
 * An entity dataframe (parquet): user_id, event_timestamp (TIMESTAMP ms UTC) = the time of
 * transaction `rows[i]` plus `shiftMs`, a label `is_fraud`, and `event_row` (the transaction's row).
 */
export function writeEntities(path: string, log: FraudLog, rows: Int32Array, shiftMs = 0): void {
  const specs = [
    { name: 'user_id', type: 'int64' },
    { name: 'event_timestamp', type: 'timestamp_ms' },
    { name: 'is_fraud', type: 'int64' },
    { name: 'event_row', type: 'int64' },
  ] as const;
  const columns: Record<string, ColumnInput> = {
    user_id: { values: BigInt64Array.from(rows, (r) => BigInt(log.user[r]!)) },
    event_timestamp: { values: BigInt64Array.from(rows, (r) => BigInt(log.ts[r]! + shiftMs)) },
    is_fraud: { values: BigInt64Array.from(rows, (r) => BigInt(log.amount[r]! > 50 ? 1 : 0)) },
    event_row: { values: BigInt64Array.from(rows, (r) => BigInt(r)) },
  };
  writeFileSync(path, writeParquet([...specs], columns, rows.length));
}

/** Every `step`-th transaction, seeded shuffle-free: a deterministic sample of event rows. */
export function sampleRows(n: number, count: number): Int32Array {
  const out = new Int32Array(Math.min(n, count));
  const step = n / out.length;
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(i * step);
  return out;
}
