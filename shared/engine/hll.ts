// HyperLogLog for approx_count_distinct: sparse registers (index -> rank) so a tile holding a
// few values costs a few bytes. Standard error is about 1.04 / sqrt(2^precision) (1.6 % at the
// default precision 12). Register maxima are order-independent, so online and offline agree.
import type { Value } from './acc.ts';

/** 32-bit hash of a value's canonical text: FNV-1a, then a murmur-style finalizer to spread bits. */
export function hash32(value: Value): number {
  const text =
    typeof value === 'number' ? `n:${value}` : typeof value === 'boolean' ? `b:${value}` : `s:${value}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export type HllRegisters = Map<number, number>;

export function hllAdd(registers: HllRegisters, value: Value, precision: number): void {
  const h = hash32(value);
  const index = h >>> (32 - precision);
  const rest = (h << precision) >>> 0;
  const maxRank = 32 - precision + 1;
  const rank = rest === 0 ? maxRank : Math.min(Math.clz32(rest) + 1, maxRank);
  if ((registers.get(index) ?? 0) < rank) registers.set(index, rank);
}

export function hllMerge(into: HllRegisters, other: HllRegisters): void {
  for (const [index, rank] of other) if ((into.get(index) ?? 0) < rank) into.set(index, rank);
}

export function hllEstimate(registers: HllRegisters, precision: number): number {
  const m = 2 ** precision;
  let sum = m - registers.size; // empty registers contribute 2^0 each
  for (const rank of registers.values()) sum += 2 ** -rank;
  const alpha = m >= 128 ? 0.7213 / (1 + 1.079 / m) : m === 64 ? 0.709 : m === 32 ? 0.697 : 0.673;
  const raw = (alpha * m * m) / sum;
  const zeros = m - registers.size;
  // Small ranges: linear counting is far more accurate while registers are still empty.
  if (raw <= 2.5 * m && zeros > 0) return Math.round(m * Math.log(m / zeros));
  return Math.round(raw);
}
