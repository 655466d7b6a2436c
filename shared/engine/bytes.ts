// Growable byte writer and bounds-checked reader: varints (up to 2^53), zigzag, f64 and UTF-8.
import { TesseraError } from '../errors.ts';

const UTF8 = new TextEncoder();

/** Zigzag maps n to 2|n| (or 2|n| - 1), which stays exact below 2^53 only for |n| < 2^52. */
export const ZIGZAG_LIMIT = 2 ** 52;

export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + extra));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf[this.length++] = value;
  }

  u32(value: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  /** Unsigned varint of a non-negative safe integer. */
  varint(value: number): void {
    this.ensure(8);
    const buf = this.buf;
    let v = value;
    if (v < 0x80000000) {
      // Below 2^31 (nearly every value: deltas, counts, dictionary ids): integer shifts.
      while (v >= 0x80) {
        buf[this.length++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
    } else {
      while (v >= 0x80) {
        buf[this.length++] = (v % 0x80) | 0x80;
        v = Math.floor(v / 0x80);
      }
    }
    buf[this.length++] = v;
  }

  /** An integer of magnitude below ZIGZAG_LIMIT (2^52), whose zigzag form is a safe integer. */
  zigzag(value: number): void {
    if (!(Math.abs(value) < ZIGZAG_LIMIT) || !Number.isInteger(value))
      throw new RangeError(`zigzag takes integers of magnitude below 2^52, got ${value}`);
    this.varint(value < 0 ? -value * 2 - 1 : value * 2);
  }

  f64(value: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  /** A string as its UTF-8 length (varint) and bytes: ASCII copied directly, the rest encoded. */
  utf8(s: string): void {
    const n = s.length;
    this.ensure(n + 8);
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (s.charCodeAt(i) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      const encoded = UTF8.encode(s);
      this.varint(encoded.length);
      this.bytes(encoded);
      return;
    }
    this.varint(n);
    const buf = this.buf;
    for (let i = 0; i < n; i++) buf[this.length++] = s.charCodeAt(i);
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
  }

  /** A copy of the bytes written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  /** The bytes written, without a copy: valid until the writer is written to or reset. */
  written(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** Starts over, keeping the buffer: a writer reused across calls allocates only when it grows. */
  reset(): void {
    this.length = 0;
  }
}

export class ByteReader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw corrupt(`truncated at byte ${this.pos}`);
  }

  done(): boolean {
    return this.pos === this.buf.length;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
      scale *= 0x80;
    }
    throw corrupt(`varint too long at byte ${this.pos}`);
  }

  zigzag(): number {
    const v = this.varint();
    return v % 2 === 1 ? -(v + 1) / 2 : v / 2;
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

export function corrupt(detail: string): TesseraError {
  return new TesseraError(
    'STATE_CORRUPT',
    `entity state cannot be decoded (${detail}); delete the key to rebuild it from Kafka or a backfill`,
    {
      context: { detail },
    },
  );
}
