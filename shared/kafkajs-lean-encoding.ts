// Produce requests and request framing for kafkajs 2.2.4, each written once into one buffer of its
// exact size. kafkajs builds every record in an Encoder of its own (a zero-filled 512-byte buffer,
// a 64-bit BigInt for its timestamp delta and a Buffer per varint), copies the records into the
// batch, the batch into the partition, the partition into the topic, and the request twice more
// while it frames it: a profile of the ingestor's producing put those buffers at ~12 % of it.
// shared/kafkajs-fast-paths.ts installs these where kafkajs loads its own; the bytes are kafkajs'
// to the last one (test/unit/kafkajs-fast-paths.test.ts compares them), and a request this file
// does not cover (compression, message timestamps, keys or headers of other types) is left to
// kafkajs' own code.

/** The parts of kafkajs' Encoder these use: kafkajs' callers take an Encoder back. */
export interface KafkajsEncoder {
  buf: Buffer;
  offset: number;
  readonly buffer: Buffer;
}
export type EncoderClass = new (initialSize?: number) => KafkajsEncoder;
/** kafkajs' Long (a BigInt inside): its 64-bit fields go through it, so they coerce as kafkajs does. */
export interface LongClass {
  fromValue(value: unknown): { getHighBits(): number; getLowBits(): number };
}

type HeaderValue = string | Buffer;
interface ProduceMessage {
  key?: string | Buffer | null;
  value?: string | Buffer | null;
  headers?: Record<string, HeaderValue | HeaderValue[]>;
  timestamp?: unknown;
}
interface PartitionData {
  partition: number;
  firstSequence?: number;
  messages: ProduceMessage[];
}
interface TopicData {
  topic: string;
  partitions: PartitionData[];
}
export interface ProduceArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: TopicData[];
}
export interface ProduceRequest {
  encode(): Promise<KafkajsEncoder>;
}

const MAGIC_BYTE = 2;
const TRANSACTIONAL_ATTRIBUTE = 16;
/** A record batch's bytes before its records: epoch, magic, CRC, then the CRC-covered header. */
const BATCH_HEAD = 4 + 1 + 4;
const BATCH_BODY_HEAD = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4;

function zigzag(value: number): number {
  return (value << 1) ^ (value >> 31);
}

/** Bytes of a zig-zag varint (kafkajs' sizeOfVarInt). */
function varIntSize(value: number): number {
  let v = zigzag(value) >>> 0;
  let bytes = 1;
  while (v >= 0x80) {
    bytes++;
    v >>>= 7;
  }
  return bytes;
}

function writeVarInt(buf: Buffer, at: number, value: number): number {
  let v = zigzag(value) >>> 0;
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v;
  return at;
}

function isBytes(value: unknown): value is string | Buffer | null | undefined {
  return value == null || typeof value === 'string' || Buffer.isBuffer(value);
}

/** Its UTF-8 byte length, or -1 for a null (what the varint length prefix holds). */
function lengthOf(value: string | Buffer | null | undefined): number {
  if (value == null) return -1;
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
}

/** Bytes of a varint length then the bytes (kafkajs' writeVarIntBytes), from lengthOf. */
function varBytesSize(length: number): number {
  return length < 0 ? 1 : varIntSize(length) + length;
}

/** The varint length, then the bytes; `length` is lengthOf(value), measured in the size pass. */
function writeVarBytes(
  buf: Buffer,
  at: number,
  value: string | Buffer | null | undefined,
  length: number,
): number {
  at = writeVarInt(buf, at, length);
  if (value == null) return at;
  return at + (typeof value === 'string' ? buf.write(value, at, length, 'utf8') : value.copy(buf, at));
}

/** The headers of a message without any (shared: most records, no array each). */
const NO_HEADERS: readonly [string, HeaderValue][] = [];

/** A message's headers as kafkajs flattens them (an array value is one header per element). */
function headerList(headers: ProduceMessage['headers']): readonly [string, HeaderValue][] | null {
  if (headers === undefined) return NO_HEADERS;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers) || Buffer.isBuffer(headers))
    return null;
  const list: [string, HeaderValue][] = [];
  for (const key of Object.keys(headers)) {
    const value = headers[key];
    if (Array.isArray(value)) {
      for (const v of value) {
        if (typeof v !== 'string' && !Buffer.isBuffer(v)) return null;
        list.push([key, v]);
      }
    } else if (typeof value === 'string' || Buffer.isBuffer(value)) list.push([key, value]);
    else return null;
  }
  return list;
}

/**
 * kafkajs' produce request v3 (and v4–v7, which reuse it) with an encode that writes the request
 * once; the original's encode runs instead for what this one does not cover.
 */
export function leanProduceRequest(
  original: (args: ProduceArgs) => ProduceRequest,
  Encoder: EncoderClass,
  Long: LongClass,
  crc32c: (bytes: Uint8Array) => number,
): (args: ProduceArgs) => ProduceRequest {
  return (args) => {
    const request = original(args);
    const fallback = request.encode;
    request.encode = async () => encodeProduce(args, Encoder, Long, crc32c) ?? fallback();
    return request;
  };
}

function encodeProduce(
  args: ProduceArgs,
  Encoder: EncoderClass,
  Long: LongClass,
  crc32c: (bytes: Uint8Array) => number,
): KafkajsEncoder | null {
  const { acks, timeout, transactionalId = null, producerEpoch = 0, topicData } = args;
  const producerId = args.producerId === undefined ? -1 : args.producerId;
  if ((args.compression ?? 0) !== 0) return null;

  // First pass: every record's body size and headers, the byte length of each key, value and
  // header in write order, and the request's size.
  const bodySizes: number[] = [];
  const headerLists: (readonly [string, HeaderValue][])[] = [];
  const lengths: number[] = [];
  const measure = (value: string | Buffer | null | undefined) => {
    const length = lengthOf(value);
    lengths.push(length);
    return varBytesSize(length);
  };
  let total = (transactionalId == null ? 2 : 2 + Buffer.byteLength(transactionalId, 'utf8')) + 2 + 4 + 4;
  for (const { topic, partitions } of topicData) {
    total += 2 + Buffer.byteLength(topic, 'utf8') + 4;
    for (const { messages } of partitions) {
      total += 4 + 4 + 8 + 4 + BATCH_HEAD + BATCH_BODY_HEAD;
      for (let i = 0; i < messages.length; i++) {
        const message = messages[i]!;
        if (message.timestamp != null || !isBytes(message.key) || !isBytes(message.value)) return null;
        const headers = headerList(message.headers);
        if (headers === null) return null;
        // Attributes and the timestamp delta (0: no message has its own timestamp), one byte each.
        let size = 1 + 1 + varIntSize(i) + measure(message.key) + measure(message.value);
        size += varIntSize(headers.length);
        for (const [key, value] of headers) size += measure(key) + measure(value);
        bodySizes.push(size);
        headerLists.push(headers);
        total += varIntSize(size) + size;
      }
    }
  }

  // Second pass: write it, in kafkajs' order and layout.
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  const int64 = (value: unknown) => {
    const long = Long.fromValue(value);
    at = buf.writeInt32BE(long.getHighBits(), at);
    at = buf.writeInt32BE(long.getLowBits(), at);
  };
  const string = (value: string | null) => {
    if (value == null) {
      at = buf.writeInt16BE(-1, at);
      return;
    }
    const n = Buffer.byteLength(value, 'utf8');
    at = buf.writeInt16BE(n, at);
    at += buf.write(value, at, n, 'utf8');
  };
  string(transactionalId);
  at = buf.writeInt16BE(acks, at);
  at = buf.writeInt32BE(timeout, at);
  at = buf.writeInt32BE(topicData.length, at);
  const attributes = transactionalId ? TRANSACTIONAL_ATTRIBUTE : 0;
  let record = 0;
  let length = 0; // the next of `lengths`
  for (const { topic, partitions } of topicData) {
    string(topic);
    at = buf.writeInt32BE(partitions.length, at);
    for (const { partition, firstSequence = 0, messages } of partitions) {
      const now = Date.now(); // kafkajs: both batch timestamps, when no message has its own
      at = buf.writeInt32BE(partition, at);
      const sizeAt = at;
      at += 4 + 8 + 4; // the batch's size, its first offset and its length: known at its end
      const batchAt = at;
      at = buf.writeInt32BE(0, at); // partition leader epoch
      at = buf.writeInt8(MAGIC_BYTE, at);
      const crcAt = at;
      at += 4;
      const bodyAt = at;
      at = buf.writeInt16BE(attributes, at);
      at = buf.writeInt32BE(messages.length - 1, at); // last offset delta
      int64(now);
      int64(now);
      int64(producerId);
      at = buf.writeInt16BE(producerEpoch, at);
      at = buf.writeInt32BE(firstSequence, at);
      at = buf.writeInt32BE(messages.length, at);
      for (let i = 0; i < messages.length; i++, record++) {
        const message = messages[i]!;
        at = writeVarInt(buf, at, bodySizes[record]!);
        buf[at++] = 0; // attributes
        buf[at++] = 0; // timestamp delta: no message has a timestamp of its own
        at = writeVarInt(buf, at, i);
        at = writeVarBytes(buf, at, message.key, lengths[length++]!);
        at = writeVarBytes(buf, at, message.value, lengths[length++]!);
        const headers = headerLists[record]!;
        at = writeVarInt(buf, at, headers.length);
        for (const [key, value] of headers) {
          at = writeVarBytes(buf, at, key, lengths[length++]!);
          at = writeVarBytes(buf, at, value, lengths[length++]!);
        }
      }
      buf.writeUInt32BE(crc32c(buf.subarray(bodyAt, at)), crcAt);
      const batchLength = at - batchAt;
      let s = buf.writeInt32BE(8 + 4 + batchLength, sizeAt);
      s = buf.writeInt32BE(0, s); // first offset, int64 0
      s = buf.writeInt32BE(0, s);
      buf.writeInt32BE(batchLength, s);
    }
  }
  if (at !== total) throw new Error(`produce request: wrote ${at} of ${total} bytes (a bug in Tessera)`);
  return asEncoder(Encoder, buf);
}

/** An Encoder holding exactly these bytes, which kafkajs' callers read through `.buffer`. */
function asEncoder(Encoder: EncoderClass, buf: Buffer): KafkajsEncoder {
  const encoder = new Encoder(1);
  encoder.buf = buf;
  encoder.offset = buf.length;
  return encoder;
}

interface RequestFraming {
  correlationId: number;
  clientId: string | null;
  request: { apiKey: number; apiVersion: number; encode(): Promise<KafkajsEncoder> };
}

/**
 * kafkajs' request framing (src/protocol/request.js): size, api key and version, correlation id,
 * client id, then the request, copied once into a buffer of its size (kafkajs copies it twice, into
 * zero-filled buffers of the next power of two).
 */
export function leanRequestFraming(Encoder: EncoderClass): (r: RequestFraming) => Promise<KafkajsEncoder> {
  return async ({ correlationId, clientId, request: { apiKey, apiVersion, encode } }) => {
    const payload = (await encode()).buffer;
    const idBytes = clientId == null ? -1 : Buffer.byteLength(clientId, 'utf8');
    const size = 2 + 2 + 4 + 2 + Math.max(idBytes, 0) + payload.length;
    const buf = Buffer.allocUnsafe(4 + size);
    let at = buf.writeInt32BE(size, 0);
    at = buf.writeInt16BE(apiKey, at);
    at = buf.writeInt16BE(apiVersion, at);
    at = buf.writeInt32BE(correlationId, at);
    at = buf.writeInt16BE(idBytes, at);
    if (clientId != null) at += buf.write(clientId, at, idBytes, 'utf8');
    payload.copy(buf, at);
    return asEncoder(Encoder, buf);
  };
}
