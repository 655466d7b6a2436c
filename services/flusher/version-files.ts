// The files of one feature version besides features.parquet: features.csv (the same rows, for
// people), schema.json (columns, types, definitions hash) and the per-feature figures of
// metadata.json (null rate, mean, min, max). Pure functions of the typed columns.
import type { ViewDef } from '../../shared/definitions/schema.ts';
import { featureCsvText } from '../../shared/offline/feature-columns.ts';
import {
  type ColumnInput,
  type ColumnSpec,
  type ColumnType,
  isListType,
  listItemType,
  type ScalarColumnType,
} from '../../shared/offline/parquet.ts';

/** Parquet physical/logical type of each column type, as pyarrow names it (for schema.json). */
const arrowTypeName = (type: ColumnType): string =>
  isListType(type) ? `list<item: ${ARROW_TYPES[listItemType(type)!]}>` : ARROW_TYPES[type];

const ARROW_TYPES: Record<ScalarColumnType, string> = {
  int64: 'int64',
  int32: 'int32',
  double: 'double',
  string: 'string',
  timestamp_ms: 'timestamp[ms, tz=UTC]',
  bool: 'bool',
  binary: 'binary',
};

/**
 * How each feature of a version was defined, for schema.json: what a reader compares across
 * versions to keep only the values that mean the same as the newest version's. Everything that
 * changes the values is here: `n` of a last_n and `precision` of an approx_count_distinct too
 * (without them, lists of 10 and of 5 values mixed in one column without a sign).
 */
export function schemaFeatures(view: ViewDef): Record<string, unknown>[] {
  return view.features.map((f) => ({
    name: f.name,
    aggregation: f.aggregation,
    column: f.column,
    window_ms: f.windowMs,
    mode: f.mode,
    tile_ms: f.tileMs,
    default: f.default,
    ...(f.aggregation === 'last_n' ? { n: f.n } : {}),
    ...(f.aggregation === 'approx_count_distinct' ? { precision: f.precision } : {}),
  }));
}

export function schemaJson(
  specs: readonly ColumnSpec[],
  extra: Record<string, unknown>,
): Record<string, unknown> {
  return {
    ...extra,
    columns: specs.map((s) => ({ name: s.name, type: s.type, arrow_type: arrowTypeName(s.type) })),
  };
}

export interface ColumnStats {
  null_rate: number;
  mean: number | null;
  min: number | string | null;
  max: number | string | null;
}

/** Null rate for every column; mean/min/max for numeric ones (timestamps as ISO strings). */
export function columnStats(spec: ColumnSpec, input: ColumnInput, rows: number): ColumnStats {
  const { values, valid } = input;
  if (!ArrayBuffer.isView(values)) {
    const nulls = (values as readonly unknown[]).filter((v) => v === null).length;
    return { null_rate: rows === 0 ? 0 : nulls / rows, mean: null, min: null, max: null };
  }
  let n = 0;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < rows; i++) {
    if (valid && !valid[i]) continue;
    const v = Number((values as ArrayLike<number | bigint>)[i]);
    n++;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const nullRate = rows === 0 ? 0 : (rows - n) / rows;
  if (n === 0) return { null_rate: nullRate, mean: null, min: null, max: null };
  if (spec.type === 'timestamp_ms')
    return {
      null_rate: nullRate,
      mean: null,
      min: new Date(min).toISOString(),
      max: new Date(max).toISOString(),
    };
  return { null_rate: nullRate, mean: sum / n, min, max };
}

/** RFC 4180 CSV: header, one line per row, timestamps ISO 8601 UTC, null as an empty field. */
export function toCsv(
  specs: readonly ColumnSpec[],
  columns: Readonly<Record<string, ColumnInput>>,
  rows: number,
): string {
  const cells = specs.map((spec) => cellRenderer(spec, columns[spec.name]!));
  const lines: string[] = [specs.map((s) => quote(s.name)).join(',')];
  for (let i = 0; i < rows; i++) lines.push(cells.map((cell) => cell(i)).join(','));
  return lines.join('\n') + '\n';
}

function cellRenderer(spec: ColumnSpec, input: ColumnInput): (i: number) => string {
  const { values, valid } = input;
  if (ArrayBuffer.isView(values)) {
    const typed = values as ArrayLike<number | bigint>;
    return (i) => (valid && !valid[i] ? '' : featureCsvText(typed[i], spec.type));
  }
  const list = values as readonly unknown[];
  if (isListType(spec.type)) return (i) => quote(featureCsvText(list[i], spec.type));
  return (i) => {
    const v = list[i];
    if (v === null || v === undefined) return '';
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
    return typeof v === 'string' ? quote(v) : String(v);
  };
}

function quote(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}
