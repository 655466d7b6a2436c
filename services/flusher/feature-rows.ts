// The training rows the ingestor publishes on `features.rows` (services/ingestor/ingestor.ts
// rowRecords): parsed and validated at the boundary, then laid out as the columns of a view's
// features.parquet (shared/offline/feature-columns.ts) in a deterministic order.
import { MAX_DATE_MS } from '../../shared/codecs/timestamp.ts';
import type { ViewDef } from '../../shared/definitions/schema.ts';
import {
  EVENT_TIMESTAMP,
  featureColumnType,
  featureTableColumns,
  ROWS_FORMAT,
  SOURCE_OFFSET,
  SOURCE_PARTITION,
} from '../../shared/offline/feature-columns.ts';
import type { ColumnInput, ColumnSpec } from '../../shared/offline/parquet.ts';
import { columnFromValues, fitsColumn } from './columns.ts';

export interface FeatureRow {
  view: string;
  entity: string;
  /** The event's time in epoch milliseconds (the features are as of just before it). */
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
  /** The event's time, epoch ms: sent with `late` marks (`event_time_ms`), which the flusher keeps. */
  ts?: number;
  /**
   * From an ingestor with the training rows off (`rows_off`): the offset's other views send no
   * rows either, so the mark closes no gap; it is only filed as a late mark.
   */
  rowsOff?: boolean;
}

export type ParsedRow =
  | { ok: true; row: FeatureRow; noRow?: undefined }
  | { ok: true; noRow: NoRow; row?: undefined }
  | { ok: false; reason: string };

/**
 * A `features.rows` record holds one row or several, one JSON value per line (JSON Lines): the
 * ingestor packs a batch's rows into few records, since producing one record per row cost more
 * than the rest of the batch. The lines (docs/ingestor.md, "The rows format"):
 * - a header object, `{"format":"tessera.rows/2", view, source_topic, partition, definitions_hash,
 *   features: [names]}`: what the rows after it share, until the next header;
 * - a row, `[entity, event time in epoch ms, offset, value...]`, the values in the header's order;
 * - a no-row mark, `{view, source_topic, partition, offset, no_row, definitions_hash}`, self-contained
 *   (a `late` one also has `event_time_ms`, the event's time);
 * - a row as one object, `{view, entity, event_timestamp, source_topic, partition, offset,
 *   features, definitions_hash}`: what ingestors wrote before the header format, still read so a
 *   topic written by an older ingestor flushes after an upgrade.
 * Each line is parsed and validated on its own; a row under a header that was refused is refused
 * too (`no_header`), each of them counted.
 */
export function parseRows(value: Buffer | null): ParsedRow[] {
  if (value === null || value.length === 0) return [{ ok: false, reason: 'empty' }];
  const out: ParsedRow[] = [];
  let header: RowsHeader | null = null;
  for (const line of value.toString('utf8').split('\n')) {
    if (line.length === 0) continue;
    if (line.charCodeAt(0) === 0x5b /* [ */) {
      out.push(header === null ? { ok: false, reason: 'no_header' } : parseRowArray(line, header));
      continue;
    }
    if (line.startsWith(HEADER_START)) {
      const parsed = parseHeader(line);
      header = parsed.ok ? parsed.header : null;
      if (!parsed.ok) out.push(parsed);
      continue;
    }
    out.push(parseRowText(line));
  }
  return out;
}

/** What jsonOf gives for a line that is not JSON. */
const UNPARSED = Symbol('not JSON');

/** A line's JSON value, or UNPARSED: every kind of line is refused as `not_json` the same way. */
function jsonOf(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return UNPARSED;
  }
}

/** What a header line's rows share. */
interface RowsHeader {
  view: string;
  source_topic: string;
  partition: number;
  definitions_hash: string;
  features: string[];
}

/** How a header line starts: JSON.stringify puts `format` first (push-json.ts, rowsHeader). */
const HEADER_START = `{"format":${JSON.stringify(ROWS_FORMAT)}`;
const HEADER_BYTES = Buffer.from(HEADER_START);

function parseHeader(line: string): { ok: true; header: RowsHeader } | { ok: false; reason: string } {
  const json = jsonOf(line);
  if (json === UNPARSED) return { ok: false, reason: 'not_json' };
  const h = json as Record<string, unknown>;
  if (
    typeof h.view !== 'string' ||
    typeof h.source_topic !== 'string' ||
    !isOffset(h.partition) ||
    typeof h.definitions_hash !== 'string' ||
    !Array.isArray(h.features) ||
    !h.features.every((f) => typeof f === 'string')
  )
    return { ok: false, reason: 'bad_header' };
  return {
    ok: true,
    header: {
      view: h.view,
      source_topic: h.source_topic,
      partition: h.partition as number,
      definitions_hash: h.definitions_hash,
      features: h.features as string[],
    },
  };
}

/** A row line, `[entity, event time (epoch ms), offset, value...]`, under its header. */
function parseRowArray(line: string, header: RowsHeader): ParsedRow {
  const json = jsonOf(line);
  if (json === UNPARSED) return { ok: false, reason: 'not_json' };
  const names = header.features;
  if (!Array.isArray(json) || json.length !== 3 + names.length) return { ok: false, reason: 'bad_row' };
  const [entity, ts, offset] = json as unknown[];
  // A time past what a Date holds failed the flush's ISO text, and so every retry of it.
  if (
    typeof entity !== 'string' ||
    !Number.isSafeInteger(ts) ||
    Math.abs(ts as number) > MAX_DATE_MS ||
    !isOffset(offset)
  )
    return { ok: false, reason: 'bad_row' };
  const features: Record<string, FeatureValueJson> = {};
  for (let i = 0; i < names.length; i++) {
    const v: unknown = json[3 + i];
    if (!isFeatureValue(v)) return { ok: false, reason: 'bad_row' };
    features[names[i]!] = v as FeatureValueJson;
  }
  return {
    ok: true,
    row: {
      view: header.view,
      entity,
      ts: ts as number,
      source_topic: header.source_topic,
      partition: header.partition,
      offset: offset as number,
      features,
      definitions_hash: header.definitions_hash,
    },
  };
}

/** Rows in a record (its lines but headers), cheaply, without parsing: what the flusher's buffer bound counts. */
export function rowsInRecord(value: Buffer | null): number {
  if (value === null) return 1;
  let n = 0;
  for (let start = 0; start < value.length; ) {
    let end = value.indexOf(10, start);
    if (end < 0) end = value.length;
    const header =
      end - start >= HEADER_BYTES.length &&
      value.compare(HEADER_BYTES, 0, HEADER_BYTES.length, start, start + HEADER_BYTES.length) === 0;
    if (end > start && !header) n++;
    start = end + 1;
  }
  return Math.max(n, 1);
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
  const json = jsonOf(text);
  if (json === UNPARSED) return { ok: false, reason: 'not_json' };
  if (typeof json !== 'object' || json === null) return { ok: false, reason: 'bad_row' };
  const r = json as Record<string, unknown>;
  if (r.no_row !== undefined) {
    if (typeof r.no_row !== 'string' || !placed(r)) return { ok: false, reason: 'bad_row' };
    // A time that is no time still leaves a valid mark: taken (its offset has no row), not filed.
    const ts =
      typeof r.event_time_ms === 'number' && Math.abs(r.event_time_ms) <= MAX_DATE_MS
        ? r.event_time_ms
        : undefined;
    return {
      ok: true,
      noRow: {
        view: r.view,
        source_topic: r.source_topic,
        partition: r.partition,
        offset: r.offset,
        reason: r.no_row,
        ...(ts === undefined ? {} : { ts }),
        ...(r.rows_off === true ? { rowsOff: true } : {}),
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
  // The join key too: one that is no int64 (or beyond it) failed the file, or was written wrapped.
  if (!fitsColumn(view.entity.keyType, row.entity)) return view.entity.joinKey;
  for (const f of view.features)
    if (!fitsColumn(featureColumnType(f, view.source), featureOf(row, f.name))) return f.name;
  return undefined;
}

/**
 * A row's value of feature `name`, undefined when the row lacks it: an own property only, or a
 * feature named `constructor` read Object from the prototype of a row written without it.
 */
function featureOf(row: FeatureRow, name: string): FeatureValueJson | undefined {
  return Object.hasOwn(row.features, name) ? row.features[name] : undefined;
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
    else values = rows.map((r) => featureOf(r, spec.name) ?? null);
    columns[spec.name] = columnFromValues(spec, values);
  }
  return { specs, columns };
}
