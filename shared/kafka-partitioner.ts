// A partitioner for kafkajs producers that picks the same partitions as kafkajs' DefaultPartitioner
// (the Java client's: murmur2 of the key's bytes, made positive, modulo the partition count) with
// 32-bit integer arithmetic. kafkajs computes murmur2 with a 64-bit Long object per step and
// filters the partition list once per message: for the ingestor's one record per pushed vector,
// ~7 % of all the bytes it allocated at 10k events/s (docs/benchmarks.md, "Ingest", eleventh pass).
import type { ICustomPartitioner } from 'kafkajs';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/**
 * Kafka's murmur2 (Utils.murmur2 of the Java client) over the first `length` bytes, as a signed
 * 32-bit integer.
 */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= data[whole + 2]! << 16;
  if (rest >= 2) h ^= data[whole + 1]! << 8;
  if (rest >= 1) {
    h ^= data[whole]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Reused for string keys: a UTF-16 code unit is at most 3 UTF-8 bytes. */
const scratch = Buffer.alloc(768);

/** murmur2 of a string's UTF-8 bytes, without a Buffer per key (keys under 256 characters). */
function murmur2String(s: string): number {
  if (s.length * 3 > scratch.length) return murmur2(Buffer.from(s, 'utf8'));
  return murmur2(scratch, scratch.write(s, 0, 'utf8'));
}

/**
 * kafkajs' DefaultPartitioner, cheaper: a message's own partition if it names one; else, with a
 * key, murmur2 of the key; else round robin over the partitions that have a leader.
 */
export const keyHashPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key !== null && key !== undefined) {
      const hash = typeof key === 'string' ? murmur2String(key) : murmur2(key);
      return (hash & 0x7fffffff) % partitionMetadata.length;
    }
    const next = ((counters.get(topic) ?? Math.floor(Math.random() * 2 ** 31)) + 1) & 0x7fffffff;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0) return available[next % available.length]!.partitionId;
    return next % partitionMetadata.length;
  };
};
