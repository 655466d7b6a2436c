// JSON values: one UTF-8 JSON object per Kafka message, field names as in the source schema.
import { isUtf8 } from 'node:buffer';
import type { SourceDef } from '../definitions/schema.ts';
import { TesseraError } from '../errors.ts';
import { int64Value } from './int64.ts';
import { describe, formatTimestamp } from './timestamp.ts';
import { type DecodeError, type EncodableRecord, failure } from './types.ts';

export type JsonParse = { ok: true; raw: Record<string, unknown> } | DecodeError;

/** Parses a message value into a plain object; never throws. */
export function parseJsonValue(value: Buffer | null): JsonParse {
  if (value === null || value.length === 0)
    return failure('undecodable', 'message has no value (tombstone or empty)');
  // Decoding would turn every invalid byte into U+FFFD, merging ids and values that differ there.
  if (!isUtf8(value))
    return failure('undecodable', 'value is not valid UTF-8 (Latin-1 text?); JSON messages must be UTF-8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch (error) {
    return failure('undecodable', `value is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return failure('schema_mismatch', `value is JSON but not an object: got ${describe(parsed)}`);
  }
  return { ok: true, raw: parsed as Record<string, unknown> };
}

/** The JSON object of a record: source columns in schema order, timestamps in the source's format. */
export function jsonObject(source: SourceDef, record: EncodableRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, type] of Object.entries(source.schema)) {
    const value = record[name];
    if (value === undefined) {
      throw new TesseraError(
        'EVENT_INVALID',
        `cannot encode: field ${name} of source ${source.name} is missing`,
        {
          context: { source: source.name, field: name },
        },
      );
    }
    if (type === 'timestamp' && typeof value === 'number')
      out[name] = formatTimestamp(value, source.timestampFormat);
    else if (typeof value === 'bigint') out[name] = int64Value(value);
    else out[name] = value;
  }
  return out;
}

export function encodeJson(source: SourceDef, record: EncodableRecord): Buffer {
  return Buffer.from(JSON.stringify(jsonObject(source, record)), 'utf8');
}
