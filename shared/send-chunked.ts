// Produce requests under the broker's size limit. kafkajs sends one send() call's messages as one
// record batch and does not split it; the broker refuses a batch over message.max.bytes (1 MiB by
// default) with a non-retriable error, which crashes the consumer for good.
import type { IHeaders, Message, Producer } from 'kafkajs';

/** Bytes per produce request: under the broker's default message.max.bytes (1 MiB) with room. */
export const MAX_SEND_BYTES = 512 * 1024;

/**
 * What a message adds to a record batch, over-estimated: its key, value, every header's name and
 * value(s), 16 bytes of framing per header and 64 for the record's own. Dead letters carry more
 * bytes in their headers (reason, message, source position) than in their value.
 */
export function messageBytes(m: Message): number {
  return byteLength(m.key) + byteLength(m.value) + headerBytes(m.headers) + 64;
}

/** The messages in order, cut into runs of at most maxBytes (a larger message goes alone). */
export function chunkMessages(messages: readonly Message[], maxBytes = MAX_SEND_BYTES): Message[][] {
  const chunks: Message[][] = [];
  let chunk: Message[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = messageBytes(m);
    if (chunk.length > 0 && bytes + size > maxBytes) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Sends the messages in requests of at most `maxBytes`, one after another, in order. The broker
 * holds a topic's whole record batch (one request's messages) to its max.message.bytes, so a topic
 * set lower than MAX_SEND_BYTES needs its own limit here.
 */
export async function sendChunked(
  producer: Producer,
  topic: string,
  messages: readonly Message[],
  maxBytes = MAX_SEND_BYTES,
): Promise<void> {
  for (const chunk of chunkMessages(messages, Math.min(maxBytes, MAX_SEND_BYTES)))
    await producer.send({ topic, messages: chunk });
}

function headerBytes(headers: IHeaders | undefined): number {
  if (headers === undefined) return 0;
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) bytes += Buffer.byteLength(name) + byteLength(v) + 16;
  }
  return bytes;
}

function byteLength(v: string | Buffer | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}
