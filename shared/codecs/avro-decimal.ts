// Avro's `decimal` logical type: `bytes` or `fixed` holding a big-endian two's-complement unscaled
// integer, the value being unscaled × 10^-scale. Kafka Connect and Debezium write money columns so.
// avsc leaves it a Buffer, which every numeric column refused (`schema_mismatch` for every event).
// Read as the double nearest the exact decimal (a correctly rounded parse of its digits, as the
// JSON path reads "12.34"); written only when the number is exactly a decimal of the schema's
// scale and precision, so nothing is rounded on the way out.
import avro from 'avsc';

interface DecimalSchema {
  type: unknown;
  precision?: unknown;
  scale?: unknown;
}

export class DecimalType extends avro.types.LogicalType {
  readonly precision: number;
  readonly scale: number;
  /** Bytes of a `fixed` underlying type; undefined for `bytes`. */
  readonly size: number | undefined;

  constructor(schema: avro.Schema, opts?: avro.ForSchemaOptions) {
    super(schema, opts);
    const { precision, scale = 0 } = schema as DecimalSchema;
    if (typeof precision !== 'number' || !Number.isInteger(precision) || precision < 1)
      throw new Error(`decimal: precision must be a positive integer, got ${JSON.stringify(precision)}`);
    if (typeof scale !== 'number' || !Number.isInteger(scale) || scale < 0 || scale > precision)
      throw new Error(
        `decimal: scale must be an integer from 0 to the precision (${precision}), got ${JSON.stringify(scale)}`,
      );
    const under = this.underlyingType as avro.Type & { size?: number };
    if (under.typeName !== 'bytes' && under.typeName !== 'fixed')
      throw new Error(`decimal: must annotate bytes or fixed, not ${under.typeName}`);
    this.size = under.typeName === 'fixed' ? under.size : undefined;
    // A fixed of n bytes holds at most floor(log10(2^(8n - 1) - 1)) digits.
    if (this.size !== undefined && precision > maxDigits(this.size))
      throw new Error(
        `decimal: a fixed of ${this.size} bytes holds at most ${maxDigits(this.size)} digits, not precision ${precision}`,
      );
    this.precision = precision;
    this.scale = scale;
  }

  protected override _fromValue(buf: Buffer): number {
    return Number(`${unscaledOf(buf)}e-${this.scale}`);
  }

  protected override _toValue(value: unknown): Buffer | undefined {
    const unscaled = unscaledFrom(value, this.scale);
    if (unscaled === undefined) return undefined;
    if ((unscaled < 0n ? -unscaled : unscaled).toString().length > this.precision) return undefined;
    return twosComplement(unscaled, this.size);
  }

  protected override _resolve(type: avro.Type): ((buf: Buffer) => number) | undefined {
    return type instanceof DecimalType && type.scale === this.scale
      ? (buf) => this._fromValue(buf)
      : undefined;
  }

  protected override _export(attrs: avro.Schema): void {
    Object.assign(attrs as object, { precision: this.precision, scale: this.scale });
  }
}

function maxDigits(size: number): number {
  return ((1n << BigInt(8 * size - 1)) - 1n).toString().length - 1;
}

/** The two's-complement big-endian integer in `buf` (empty: 0). */
export function unscaledOf(buf: Buffer): bigint {
  if (buf.length === 0) return 0n;
  let v = 0n;
  for (const b of buf) v = (v << 8n) | BigInt(b);
  return BigInt.asIntN(8 * buf.length, v);
}

/**
 * `value` (a finite number, or a decimal string such as "-12.30" or "1e-2") as an integer count of
 * 10^-scale, or undefined when it is not one exactly (12.345 at scale 2).
 */
export function unscaledFrom(value: unknown, scale: number): bigint | undefined {
  let text: string;
  if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
  else if (typeof value === 'string') text = value;
  else return undefined;
  const m = /^(-?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return undefined;
  const fraction = m[3] ?? '';
  let unscaled = BigInt(m[2]! + fraction);
  const shift = Number(m[4] ?? 0) - fraction.length + scale;
  if (shift >= 0) unscaled *= 10n ** BigInt(shift);
  else {
    const divisor = 10n ** BigInt(-shift);
    if (unscaled % divisor !== 0n) return undefined;
    unscaled /= divisor;
  }
  return m[1] === '-' ? -unscaled : unscaled;
}

/** `n` in the fewest two's-complement big-endian bytes, or in exactly `size` (undefined: too big). */
export function twosComplement(n: bigint, size?: number): Buffer | undefined {
  let len = 1;
  while (n < -(1n << BigInt(8 * len - 1)) || n >= 1n << BigInt(8 * len - 1)) len++;
  if (size !== undefined) {
    if (len > size) return undefined;
    len = size;
  }
  const out = Buffer.alloc(len);
  let v = BigInt.asUintN(8 * len, n);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
