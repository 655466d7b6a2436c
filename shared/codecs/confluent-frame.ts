// The Confluent wire format around an Avro body: magic byte 0, then the schema id as a 4-byte
// big-endian integer, then the body written with that schema.
import { type DecodeError, failure } from './types.ts';

export const CONFLUENT_MAGIC = 0;
export const CONFLUENT_HEADER_BYTES = 5;

export type FrameParse = { ok: true; schemaId: number } | DecodeError;

export function parseConfluentFrame(value: Buffer | null): FrameParse {
  if (value === null || value.length === 0)
    return failure('undecodable', 'message has no value (tombstone or empty)');
  if (value[0] !== CONFLUENT_MAGIC) {
    return failure(
      'undecodable',
      `not Confluent wire format: first byte is 0x${value[0]!.toString(16).padStart(2, '0')}, expected magic byte 0x00`,
    );
  }
  if (value.length < CONFLUENT_HEADER_BYTES) {
    return failure('undecodable', `Confluent frame truncated: ${value.length} bytes, the header alone is 5`);
  }
  return { ok: true, schemaId: value.readUInt32BE(1) };
}

export function frameConfluent(schemaId: number, body: Buffer): Buffer {
  const header = Buffer.alloc(CONFLUENT_HEADER_BYTES);
  header[0] = CONFLUENT_MAGIC;
  header.writeUInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}
