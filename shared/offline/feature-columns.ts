// The columns of the offline tables, derived from the definitions in one place: the flusher's
// features.parquet, the raw event log and point-in-time output all use these names and types, so
// pandas, pyarrow and Feast see the same schema everywhere.
import type {
  FeatureDef,
  ColumnType as SourceColumnType,
  SourceDef,
  ViewDef,
} from '../definitions/schema.ts';
import { type ColumnSpec, type ColumnType, type ListItemType, listItemType } from './parquet.ts';

/** Name of the event-time column in every offline table (Feast's default timestamp field). */
export const EVENT_TIMESTAMP = 'event_timestamp';
/** Kafka position of the source record a row came from: unique per row with the topic. */
export const SOURCE_PARTITION = 'source_partition';
export const SOURCE_OFFSET = 'source_offset';
/** Columns entities.parquet puts beside the features (services/flusher/entity-snapshot.ts). */
export const SNAPSHOT_AS_OF = 'as_of';
export const SNAPSHOT_STATE_VERSION = 'state_version';
export const SNAPSHOT_STATE = 'state';
/**
 * First member of a `features.rows` header line (the ingestor's push-json.ts writes it, the
 * flusher's feature-rows.ts reads it): what tells a header from a row (an array) and a no-row mark.
 */
export const ROWS_FORMAT = 'tessera.rows/2';
/** Names the offline tables use for their own columns: no feature can be called so. */
export const RESERVED_COLUMNS: readonly string[] = [
  EVENT_TIMESTAMP,
  SOURCE_PARTITION,
  SOURCE_OFFSET,
  SNAPSHOT_AS_OF,
  SNAPSHOT_STATE_VERSION,
  SNAPSHOT_STATE,
];

/** The parquet type of one feature's values. */
export function featureColumnType(feature: FeatureDef, source: SourceDef): ColumnType {
  switch (feature.aggregation) {
    case 'count':
    case 'count_distinct':
    case 'approx_count_distinct':
      return 'int64';
    case 'sum':
    case 'avg':
    case 'stddev':
    case 'variance':
      return 'double';
    case 'last_n':
      // A list of the column's values: pyarrow list<item: double>, pandas an array per cell, Feast
      // Array(Float64), the same as the server's JSON array.
      return `list<${ownColumnType(feature, source)}>`;
    default:
      // min, max, first, last keep the column's own type.
      return ownColumnType(feature, source);
  }
}

/** The offline type of the feature's column's values (double for a feature without a column). */
function ownColumnType(feature: FeatureDef, source: SourceDef): ListItemType {
  const column = feature.column ? source.schema[feature.column] : undefined;
  return column ? sourceColumnType(column) : 'double';
}

function sourceColumnType(type: SourceColumnType): ListItemType {
  switch (type) {
    case 'int64':
      // Aggregates of int64 columns are computed as doubles by the engine (avg of ints, etc.);
      // min/max/first/last of them are whole numbers, kept as int64 for readers.
      return 'int64';
    case 'double':
      return 'double';
    case 'timestamp':
      return 'timestamp_ms';
    case 'bool':
      return 'bool';
    case 'string':
      return 'string';
  }
}

/** features.parquet of a view: join key, event_timestamp, the features, the source position. */
export function featureTableColumns(view: ViewDef): ColumnSpec[] {
  return [
    { name: view.entity.joinKey, type: view.entity.keyType },
    { name: EVENT_TIMESTAMP, type: 'timestamp_ms' },
    ...view.features.map((f) => ({ name: f.name, type: featureColumnType(f, view.source) })),
    { name: SOURCE_PARTITION, type: 'int32' },
    { name: SOURCE_OFFSET, type: 'int64' },
  ];
}

/**
 * The raw event log of a source: its declared fields (the timestamp field as TIMESTAMP(ms, UTC)),
 * then the Kafka position of each record.
 */
export function rawEventColumns(source: SourceDef): ColumnSpec[] {
  return [
    ...Object.entries(source.schema).map(([name, type]) => ({ name, type: sourceColumnType(type) })),
    { name: SOURCE_PARTITION, type: 'int32' },
    { name: SOURCE_OFFSET, type: 'int64' },
  ];
}

/**
 * A value of an offline column as CSV text, before quoting (features.csv and a CSV training set
 * write the same): null empty, times in ISO 8601, a last_n list as a JSON array of its items (int64 as bare
 * digits, exact beyond 2^53; times as ISO 8601 strings).
 */
export function featureCsvText(v: unknown, type: ColumnType): string {
  if (v === null || v === undefined) return '';
  const item = listItemType(type);
  if (item !== undefined) return `[${(v as readonly unknown[]).map((x) => itemJson(x, item)).join(',')}]`;
  return type === 'timestamp_ms' ? isoTime(v) : String(v);
}

function itemJson(x: unknown, item: ListItemType): string {
  if (x === null) return 'null';
  if (item === 'timestamp_ms') return JSON.stringify(isoTime(x));
  return item === 'int64' ? String(x) : JSON.stringify(x);
}

const isoTime = (ms: unknown) => new Date(Number(ms)).toISOString();
