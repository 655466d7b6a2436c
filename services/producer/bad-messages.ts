// Deliberately bad messages for DLQ tests: each kind is built from a real event so it lands in
// a realistic partition, and carries the reason a decoder (or, for `late`, the ingestor) must give.
import type { Encoder } from '../../shared/codecs/index.ts';
import type { DecodeFailure } from '../../shared/codecs/types.ts';
import type { SourceDef } from '../../shared/definitions/schema.ts';

/** Header on every bad message: the reason the pipeline is expected to give it. */
export const BAD_REASON_HEADER = 'tessera-expected-reason';

export type BadKind =
  | 'garbage'
  | 'truncated'
  | 'wrong_magic'
  | 'unknown_schema'
  | 'missing_key'
  | 'non_numeric'
  | 'late';
export type ExpectedReason = DecodeFailure | 'late';

export const EXPECTED_REASON: Record<BadKind, ExpectedReason> = {
  garbage: 'undecodable',
  truncated: 'undecodable',
  wrong_magic: 'undecodable',
  unknown_schema: 'undecodable',
  missing_key: 'missing_key',
  non_numeric: 'non_numeric',
  late: 'late',
};

/** The kinds each format can express (Avro's schema cannot leave out the key or carry "abc"). */
export function badKindsFor(format: SourceDef['format']): readonly BadKind[] {
  switch (format) {
    case 'json':
      return ['garbage', 'missing_key', 'non_numeric', 'late'];
    case 'avro':
      return ['truncated', 'non_numeric', 'late'];
    case 'avro-confluent':
      return ['wrong_magic', 'unknown_schema', 'truncated', 'non_numeric', 'late'];
  }
}

export interface OutgoingMessage {
  key: Buffer | null;
  value: Buffer;
  headers?: Record<string, string>;
}

export type EventRecord = { user_id: number; event_timestamp: number; amount: number; merchant_id: string };

/** Schema id no registry should know, for the `unknown_schema` kind. */
export const UNKNOWN_SCHEMA_ID = 0x7ffffff0;

export function badMessage(
  kind: BadKind,
  record: EventRecord,
  encoder: Encoder,
  lateByMs: number,
): OutgoingMessage {
  const key = Buffer.from(String(record.user_id));
  const headers = { [BAD_REASON_HEADER]: EXPECTED_REASON[kind] };
  switch (kind) {
    case 'garbage':
      // Not UTF-8 JSON: a stray binary payload.
      return { key, value: Buffer.from([0xff, 0xfe, 0x00, 0x42, 0x13, 0x37, 0x7b]), headers };
    case 'truncated': {
      const full = encoder.encode(record);
      return { key, value: full.subarray(0, full.length - 2), headers };
    }
    case 'wrong_magic': {
      const value = Buffer.from(encoder.encode(record));
      value[0] = 0x02;
      return { key, value, headers };
    }
    case 'unknown_schema': {
      const value = Buffer.from(encoder.encode(record));
      value.writeUInt32BE(UNKNOWN_SCHEMA_ID, 1);
      return { key, value, headers };
    }
    case 'missing_key': {
      const { user_id: _, ...rest } = JSON.parse(encoder.encode(record).toString('utf8')) as Record<
        string,
        unknown
      >;
      return { key: null, value: Buffer.from(JSON.stringify(rest)), headers };
    }
    case 'non_numeric': {
      if (encoder.source.format === 'json') {
        const json = JSON.parse(encoder.encode(record).toString('utf8')) as Record<string, unknown>;
        return { key, value: Buffer.from(JSON.stringify({ ...json, amount: 'abc' })), headers };
      }
      return { key, value: encoder.encode({ ...record, amount: Number.NaN }), headers };
    }
    case 'late':
      return {
        key,
        value: encoder.encode({ ...record, event_timestamp: record.event_timestamp - lateByMs }),
        headers,
      };
  }
}
