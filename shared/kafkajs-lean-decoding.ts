// kafkajs 2.2.4's record decoder without 64-bit BigInt arithmetic where numbers are exact.
// kafkajs reads every fetched record's timestamp delta a byte at a time into a BigInt, then parses
// its batch's first timestamp and first offset from decimal strings into BigInts to add the deltas,
// and prints both sums back: six or more BigInts per record, for values that are safe integers in
// practice. This decoder computes them as numbers when the operands are safe integers and the sum
// is too (the same decimal text), and hands the record to kafkajs' own decoder otherwise, and for
// any record with headers. shared/kafkajs-fast-paths.ts installs it where kafkajs loads its own;
// test/unit/kafkajs-fast-paths.test.ts holds it to kafkajs' output.

/** The parts of kafkajs' Decoder this reads. */
interface KafkajsDecoder {
  buffer: Buffer;
  offset: number;
  readInt8(): number;
  readVarInt(): number;
  readVarIntBytes(): Buffer | null;
}

interface BatchContext {
  firstOffset?: string;
  firstTimestamp?: string;
  magicByte?: number;
  isControlBatch?: boolean;
  timestampType?: number;
  maxTimestamp?: string;
}

type RecordDecoder = (decoder: KafkajsDecoder, batchContext?: BatchContext) => unknown;

/** kafkajs' TimestampTypes.LOG_APPEND_TIME. */
const LOG_APPEND_TIME = 1;

/** The decimal text of base + delta, or null when kafkajs' BigInt arithmetic must decide it. */
function sum(base: string | undefined, delta: number): string | null {
  if (base === undefined) return null;
  const n = Number(base);
  if (!Number.isSafeInteger(n) || String(n) !== base) return null;
  const s = n + delta;
  return Number.isSafeInteger(s) ? String(s) : null;
}

export function leanRecordDecoder(original: RecordDecoder): RecordDecoder {
  return (decoder, batchContext = {}) => {
    const start = decoder.offset;
    const {
      firstOffset,
      firstTimestamp,
      magicByte,
      isControlBatch = false,
      timestampType,
      maxTimestamp,
    } = batchContext;
    const attributes = decoder.readInt8();
    // The timestamp delta, a zig-zag varlong: as a number while it has at most 7 bytes (49 bits).
    const buf = decoder.buffer;
    let at = decoder.offset;
    let raw = 0;
    let scale = 1;
    let byte: number;
    let bytes = 0;
    do {
      byte = buf[at++]!;
      if (byte === undefined || ++bytes > 7) {
        decoder.offset = start;
        return original(decoder, batchContext);
      }
      raw += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte >= 0x80);
    decoder.offset = at;
    const timestampDelta = raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
    const timestamp =
      timestampType === LOG_APPEND_TIME && maxTimestamp ? maxTimestamp : sum(firstTimestamp, timestampDelta);
    const offset = sum(firstOffset, decoder.readVarInt());
    const key = decoder.readVarIntBytes();
    const value = decoder.readVarIntBytes();
    const headerCount = decoder.readVarInt();
    if (timestamp === null || offset === null || headerCount !== 0) {
      decoder.offset = start;
      return original(decoder, batchContext);
    }
    return {
      magicByte,
      attributes,
      timestamp,
      offset,
      key,
      value,
      headers: {},
      isControlRecord: isControlBatch,
      batchContext,
    };
  };
}
