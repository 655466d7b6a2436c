// The contract between the codecs and their callers (ingestor, producer, tests): what a decoded
// message looks like, and the fixed list of reasons a message is refused (the DLQ `reason` header).

/** Why a message was refused. Fixed list: dashboards, alerts and DLQ consumers match on it. */
export const DECODE_FAILURES = [
  'undecodable',
  'schema_mismatch',
  'missing_key',
  'missing_timestamp',
  'bad_timestamp',
  'missing_field',
  'non_numeric',
] as const;
export type DecodeFailure = (typeof DECODE_FAILURES)[number];

/** A column value after validation: int64 beyond 2^53 stays a decimal string to keep every digit. */
export type ColumnValue = number | string | boolean | null;

export interface KafkaMessageLike {
  key: Buffer | null;
  value: Buffer | null;
}

export interface DecodeOk {
  ok: true;
  /** The entity key, canonical: int64 as a decimal string without leading zeros. */
  key: string;
  /** Event time, integer milliseconds since the epoch (UTC). */
  ts: number;
  /** The source's columns only (extra fields are dropped); the timestamp column holds `ts`. */
  record: Record<string, ColumnValue>;
  /** The Kafka message key as UTF-8, not validated (the record's key field is authoritative). */
  messageKey: string | null;
}

export interface DecodeError {
  ok: false;
  reason: DecodeFailure;
  /** What was wrong, naming the field: `field amount: expected a finite number, got "abc"`. */
  message: string;
  /** The offending field, when one field is to blame. */
  field?: string;
  /**
   * true when the verdict may change on a later delivery of the same bytes: a schema id the
   * registry did not know (yet: a follower behind a new registration) or a schema it could not
   * compile, remembered for a while only. The bytes themselves decide every other refusal.
   */
  unsettled?: true;
}

export type DecodeResult = DecodeOk | DecodeError;

/** A record to encode: the same shape as `DecodeOk.record` (timestamps as epoch milliseconds). */
export type EncodableRecord = Readonly<Record<string, ColumnValue | bigint | undefined>>;

export function failure(reason: DecodeFailure, message: string, field?: string): DecodeError {
  return field === undefined ? { ok: false, reason, message } : { ok: false, reason, message, field };
}
