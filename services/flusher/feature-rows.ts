// The training rows the ingestor publishes on `features.rows` (services/ingestor/ingestor.ts
// rowRecords): parsed and validated at the boundary, then laid out as the columns of a view's
// features.parquet (shared/offline/feature-columns.ts) in a deterministic order.
import type { ViewDef } from '../../shared/definitions/schema.ts';
import {
  EVENT_TIMESTAMP,
  featureColumnType,
  featureTableColumns,
  SOURCE_OFFSET,
  SOURCE_PARTITION,
} from '../../shared/offline/feature-columns.ts';
import type { ColumnInput, ColumnSpec } from '../../shared/offline/parquet.ts';
import { columnFromValues, fitsColumn } from './columns.ts';

export interface FeatureRow {
  view: string;
  entity: string;
  event_timestamp: string;
  /** event_timestamp in epoch milliseconds. */
  ts: number;
  source_topic: string;
  partition: number;
  offset: number;
  features: Record<string, FeatureValueJson>;
  definitions_hash: string;
}

export type FeatureValueJson = number | string | null | (number | string)[];

/**
 * A source offset the ingestor dead-lettered for a view (undecodable, late): it has no row there
 * and never will, so the flusher counts it as written, and the written offsets stay one interval
 * per partition instead of gaining one per dead letter.
 */
export interface NoRow {
  view: string;
  source_topic: string;
  partition: number;
  offset: number;
  reason: string;
}

export type ParsedRow =
  | { ok: true; row: FeatureRow; noRow?: undefined }
  | { ok: true; noRow: NoRow; row?: undefined }
  | { ok: false; reason: string };

/**
 * A `features.rows` record holds one row or several, one JSON object per line (JSON Lines): the
 * ingestor packs a batch's rows into few records, since producing one record per row cost more
 * than the rest of the batch. Each line is parsed and validated on its own.
 */
export function parseRows(value: Buffer | null): ParsedRow[] {
  if (value === null || value.length === 0) return [{ ok: false, reason: 'empty' }];
  const out: ParsedRow[] = [];
  for (const line of value.toString('utf8').split('\n')) if (line.length > 0) out.push(parseRowText(line));
  return out;
}

/** Rows in a record (its lines), cheaply, without parsing: what the flusher's buffer bound counts. */
export function rowsInRecord(value: Buffer | null): number {
  if (value === null) return 1;
  let n = 1;
  for (let at = value.indexOf(10); at >= 0 && at < value.length - 1; at = value.indexOf(10, at + 1)) n++;
  return n;
}

/** Parses one single-row record. */
export function parseRow(value: Buffer | null): ParsedRow {
  if (value === null) return { ok: false, reason: 'empty' };
  return parseRowText(value.toString('utf8'));
}

/**
 * Parses and validates one row. Hand-written checks rather than a zod schema: this runs once per
 * training row and zod's generic walk was 25x slower than the whole parquet write
 * (loadtest/flush-bench.ts).
 */
function parseRowText(text: string): ParsedRow {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not_json' };
  }
  if (typeof json !== 'object' || json === null) return { ok: false, reason: 'bad_row' };
  const r = json as Record<string, unknown>;
  if (r.no_row !== undefined) {
    if (typeof r.no_row !== 'string' || !placed(r)) return { ok: false, reason: 'bad_row' };
    return {
      ok: true,
      noRow: {
        view: r.view,
        source_topic: r.source_topic,
        partition: r.partition,
        offset: r.offset,
        reason: r.no_row,
      },
    };
  }
  const ts = typeof r.event_timestamp === 'string' ? Date.parse(r.event_timestamp) : Number.NaN;
  if (
    !placed(r) ||
    typeof r.entity !== 'string' ||
    !Number.isFinite(ts) ||
    typeof r.features !== 'object' ||
    r.features === null ||
    Array.isArray(r.features) ||
    typeof r.definitions_hash !== 'string'
  )
    return { ok: false, reason: 'bad_row' };
  for (const v of Object.values(r.features as Record<string, unknown>))
    if (!isFeatureValue(v)) return { ok: false, reason: 'bad_row' };
  return {
    ok: true,
    row: {
      view: r.view,
      entity: r.entity,
      event_timestamp: r.event_timestamp as string,
      ts,
      source_topic: r.source_topic,
      partition: r.partition,
      offset: r.offset,
      features: r.features as Record<string, FeatureValueJson>,
      definitions_hash: r.definitions_hash,
    },
  };
}

/** A line's view and source position, what a row and a no-row mark both carry. */
function placed(r: Record<string, unknown>): r is Record<string, unknown> & {
  view: string;
  source_topic: string;
  partition: number;
  offset: number;
} {
  return (
    typeof r.view === 'string' &&
    typeof r.source_topic === 'string' &&
    isOffset(r.partition) &&
    isOffset(r.offset)
  );
}

function isOffset(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isFeatureValue(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  return (
    Array.isArray(v) &&
    v.every(
      (x) => typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)),
    )
  );
}

/**
 * The first feature of `row` whose value its view's features.parquet column cannot hold, or
 * undefined: a row written under other definitions (a feature's aggregation changed, and so its
 * type) must be skipped and counted, since one such value fails the whole file, and every retry.
 */
export function misfitFeature(view: ViewDef, row: FeatureRow): string | undefined {
  for (const f of view.features)
    if (!fitsColumn(featureColumnType(f, view.source), row.features[f.name])) return f.name;
  return undefined;
}

/** Source position order: the same rows always give the same file, whatever order they came in. */
export function compareRows(a: FeatureRow, b: FeatureRow): number {
  if (a.source_topic !== b.source_topic) return a.source_topic < b.source_topic ? -1 : 1;
  return a.partition - b.partition || a.offset - b.offset;
}

/** The columns of features.parquet for rows of one view (already deduplicated and sorted). */
export function featureColumns(
  view: ViewDef,
  rows: readonly FeatureRow[],
): { specs: ColumnSpec[]; columns: Record<string, ColumnInput> } {
  const specs = featureTableColumns(view);
  const columns: Record<string, ColumnInput> = {};
  for (const spec of specs) {
    let values: unknown[];
    if (spec.name === view.entity.joinKey) values = rows.map((r) => r.entity);
    else if (spec.name === EVENT_TIMESTAMP) values = rows.map((r) => r.ts);
    else if (spec.name === SOURCE_PARTITION) values = rows.map((r) => r.partition);
    else if (spec.name === SOURCE_OFFSET) values = rows.map((r) => r.offset);
    else values = rows.map((r) => r.features[spec.name] ?? null);
    columns[spec.name] = columnFromValues(spec, values);
  }
  return { specs, columns };
}
