// The training set a point-in-time run produces: the entity dataframe's rows in input order (join
// keys, event_timestamp as TIMESTAMP(ms, UTC), the pass-through columns unchanged) followed by one
// column per feature, typed as in the offline store (feature-columns.ts). Parquet or CSV.
import { accessSync, constants, createWriteStream, realpathSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import * as arrow from 'apache-arrow';
import type { SourceDef } from '../definitions/schema.ts';
import type { FeatureValue, ViewPlan } from '../engine/index.ts';
import { TesseraError } from '../errors.ts';
import { EVENT_TIMESTAMP, featureColumnType, featureCsvText } from '../offline/feature-columns.ts';
import { type ColumnSpec, type ColumnType, listItemType, toArrowTable } from '../offline/parquet.ts';
import { writeParquetByBatch } from '../offline/parquet-chunks.ts';
import { removeDeadRunEntries } from './dead-runs.ts';
import type { LabelFrame, PassThrough } from './labels.ts';

/** The feature columns of a training set, by output row: one view's (FeatureTable) or several. */
export interface FeatureColumns {
  readonly specs: readonly ColumnSpec[];
  /** Value of feature f at a row, for checks and CSV. */
  get(f: number, row: number): FeatureValue;
  /** Column f as parquet input. */
  column(f: number): { values: BigInt64Array | Float64Array | readonly unknown[]; valid?: Uint8Array };
}

/** Feature values by output row: numbers unboxed (with a validity map), anything else boxed. */
export class FeatureTable implements FeatureColumns {
  readonly specs: ColumnSpec[];
  private readonly nums: (Float64Array | null)[];
  private readonly valid: (Uint8Array | null)[];
  private readonly other: (FeatureValue[] | null)[];
  /** int64 values beyond 2^53 (exact decimal strings), by row, per int64 feature that had one. */
  private readonly big: (Map<number, string> | undefined)[];

  constructor(
    plan: ViewPlan,
    source: SourceDef,
    readonly n: number,
  ) {
    this.specs = plan.features.map((f) => ({ name: f.def.name, type: featureColumnType(f.def, source) }));
    const numeric = this.specs.map((s) => s.type === 'double' || s.type === 'int64');
    this.nums = numeric.map((yes) => (yes ? new Float64Array(n) : null));
    this.valid = numeric.map((yes) => (yes ? new Uint8Array(n) : null));
    this.other = numeric.map((yes) => (yes ? null : new Array<FeatureValue>(n).fill(null)));
    this.big = numeric.map(() => undefined);
  }

  set(row: number, values: readonly FeatureValue[]): void {
    for (let f = 0; f < values.length; f++) {
      const v = values[f]!;
      const nums = this.nums[f];
      if (nums) {
        if (typeof v === 'number') {
          nums[row] = v;
          this.valid[f]![row] = 1;
        } else if (typeof v === 'string' && this.specs[f]!.type === 'int64') {
          // first or last of an int64 column beyond 2^53 (min and max take numbers only): kept exact.
          let big = this.big[f];
          if (big === undefined) {
            big = new Map();
            this.big[f] = big;
          }
          big.set(row, v);
          this.valid[f]![row] = 1;
        }
      } else this.other[f]![row] = v;
    }
  }

  /** Value of feature f at a row, for checks and CSV. */
  get(f: number, row: number): FeatureValue {
    const nums = this.nums[f];
    if (nums) return this.valid[f]![row] ? (this.big[f]?.get(row) ?? nums[row]!) : null;
    return this.other[f]![row] ?? null;
  }

  /** Column f as parquet input. */
  column(f: number): { values: BigInt64Array | Float64Array | readonly unknown[]; valid?: Uint8Array } {
    const spec = this.specs[f]!;
    const nums = this.nums[f];
    if (nums) {
      const valid = this.valid[f]!;
      if (spec.type === 'int64') {
        const out = new BigInt64Array(this.n);
        for (let i = 0; i < this.n; i++) if (valid[i]) out[i] = BigInt(nums[i]!);
        for (const [i, text] of this.big[f] ?? []) out[i] = BigInt(text);
        return { values: out, valid };
      }
      return { values: nums, valid };
    }
    const values = this.other[f]!;
    const item = listItemType(spec.type);
    // A list of int64 or timestamps: the writer takes their items as bigint (beyond 2^53, the
    // engine's exact decimal strings).
    if (item === 'int64' || item === 'timestamp_ms')
      return {
        values: values.map((v) =>
          Array.isArray(v) ? v.map((x) => (x === null ? null : BigInt(x as number | string))) : v,
        ),
      };
    return { values };
  }
}

/** One output column: feature `f` of `table`, written as `name`. */
export interface PickedFeature {
  table: FeatureTable;
  f: number;
  name: string;
}

/**
 * The columns of several views' tables in the order asked for, under their output names (plain
 * or `view__feature`): the views are answered one at a time, each into its own table.
 */
export class PickedFeatures implements FeatureColumns {
  readonly specs: ColumnSpec[];

  constructor(private readonly picked: readonly PickedFeature[]) {
    this.specs = picked.map((p) => ({ ...p.table.specs[p.f]!, name: p.name }));
  }

  get(f: number, row: number): FeatureValue {
    const p = this.picked[f]!;
    return p.table.get(p.f, row);
  }

  column(f: number): ReturnType<FeatureColumns['column']> {
    const p = this.picked[f]!;
    return p.table.column(p.f);
  }
}

/**
 * Refuses an output that cannot be written, before any work: these were found only after the
 * whole run (a missing directory as a bare ENOENT with a stack trace), and an --out naming the
 * entity dataframe itself overwrote the user's labels with the training set.
 */
export function checkOutputPath(out: string, entities: string): void {
  const refuse = (why: string): never => {
    throw new TesseraError('INVALID_ARGUMENT', `--out ${out}: ${why}`, { context: { path: out } });
  };
  if (!/\.(parquet|csv)$/i.test(out)) refuse('use a .parquet or .csv file name');
  const dir = dirname(resolve(out));
  let dirStat: ReturnType<typeof statSync> | undefined;
  try {
    dirStat = statSync(dir);
  } catch {
    refuse(`the directory ${dir} does not exist; create it first`);
  }
  if (!dirStat?.isDirectory()) refuse(`${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    refuse(`the directory ${dir} is not writable`);
  }
  let existing: string | undefined;
  try {
    if (statSync(out).isDirectory()) refuse('is a directory; name a file in it');
    existing = realpathSync(out);
  } catch (error) {
    if (error instanceof TesseraError) throw error;
    return; // does not exist yet: the usual case
  }
  let input: string | undefined;
  try {
    input = realpathSync(entities);
  } catch {
    input = undefined;
  }
  if (existing === input)
    refuse(`is the entity dataframe (--entities); write the training set to another file`);
}

/**
 * Writes the training set to `path` (.parquet or .csv): to a temporary file beside it, renamed
 * over `path` once complete, so a failure or an interruption (`signal`) never leaves half a
 * training set behind, nor destroys the file a previous run wrote there.
 */
export async function writeTrainingSet(
  path: string,
  labels: LabelFrame,
  features: FeatureColumns,
  signal?: AbortSignal,
): Promise<void> {
  const write = /\.parquet$/i.test(path) ? writeParquetOut : /\.csv$/i.test(path) ? writeCsvOut : null;
  if (write === null)
    throw new TesseraError('INVALID_ARGUMENT', `--out ${path}: use a .parquet or .csv file name`);
  const temp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  try {
    await write(temp, labels, features, signal);
    signal?.throwIfAborted();
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Removes the hidden `.<name>.tmp-<pid>` files beside `out` left by runs writing the same `out`
 * that were killed outright (SIGKILL cannot be caught, so the run could not remove its own), by
 * the rule of the spill directories: only those whose pid names no process (dead-runs.ts).
 */
export function removeStaleOutputTemps(
  out: string,
  alive?: (pid: number) => boolean,
): ReturnType<typeof removeDeadRunEntries> {
  const escaped = basename(out).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return removeDeadRunEntries(dirname(resolve(out)), new RegExp(`^\\.${escaped}\\.tmp-(\\d+)$`), alive);
}

async function writeParquetOut(
  path: string,
  labels: LabelFrame,
  features: FeatureColumns,
  signal?: AbortSignal,
): Promise<void> {
  const { n } = labels;
  const specs: ColumnSpec[] = [
    ...labels.keyColumns.map((k): ColumnSpec => ({ name: k.joinKey, type: k.keyType })),
    { name: EVENT_TIMESTAMP, type: 'timestamp_ms' },
  ];
  const inputs: Record<string, { values: never; valid?: Uint8Array }> = {};
  for (const k of labels.keyColumns) {
    const keyValues =
      k.keyType === 'int64' ? BigInt64Array.from(k.keys as number[], (v) => BigInt(v)) : (k.keys as string[]);
    inputs[k.joinKey] = { values: keyValues as never };
  }
  inputs[EVENT_TIMESTAMP] = {
    values: BigInt64Array.from(labels.ts, (t) => BigInt(Math.floor(t))) as never,
  };
  const passText = labels.extra.filter((p) => p.kind === 'text');
  for (const p of passText) {
    const typed = typeText(p.cells);
    specs.push({ name: p.name, type: typed.type });
    inputs[p.name] = { values: typed.values as never, ...(typed.valid ? { valid: typed.valid } : {}) };
  }
  features.specs.forEach((spec, f) => {
    specs.push(spec);
    inputs[spec.name] = features.column(f) as never;
  });
  const ours = toArrowTable(specs, inputs, n);
  // Output order: keys, timestamp, pass-through columns as in the input, then the features.
  const columns: Record<string, arrow.Vector> = {};
  for (const k of labels.keyColumns) columns[k.joinKey] = ours.getChild(k.joinKey)!;
  columns[EVENT_TIMESTAMP] = ours.getChild(EVENT_TIMESTAMP)!;
  for (const p of labels.extra)
    columns[p.name] = p.kind === 'arrow' ? asParquetDate(p.vector) : ours.getChild(p.name)!;
  for (const spec of features.specs) columns[spec.name] = ours.getChild(spec.name)!;
  // Encoded a batch at a time: whole, the encoder's copies of a 3M-row set took ~500 MB.
  await writeParquetByBatch(path, new arrow.Table(columns), signal);
}

/**
 * A date64 column as date32, the parquet DATE that pyarrow writes it as: the encoder wrote date64
 * as a bare int64, which pandas read back as epoch milliseconds. Other columns as they are.
 */
function asParquetDate(vector: arrow.Vector): arrow.Vector {
  if (!arrow.DataType.isDate(vector.type) || vector.type.unit !== arrow.DateUnit.MILLISECOND) return vector;
  const days = Array.from({ length: vector.length }, (_, i) => {
    const ms: unknown = vector.get(i);
    return ms === null || ms === undefined
      ? null
      : new Date(Math.floor(Number(ms) / 86_400_000) * 86_400_000);
  });
  return arrow.vectorFromArray(days, new arrow.DateDay());
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** pandas' infinities: any case, a sign allowed, but not padded (" inf" stays a string). */
const INFINITY = /^[+-]?inf(inity)?$/i;
/** pandas' bools: any case, not padded. */
const BOOL = /^(true|false)$/i;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** The cells read_csv takes as missing by default (its `na_values`), exactly as written. */
const PANDAS_NA = new Set([
  ...['', '#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan', '1.#IND', '1.#QNAN'],
  ...['<NA>', 'N/A', 'NA', 'NULL', 'NaN', 'None', 'n/a', 'nan', 'null'],
]);

/**
 * Types a text column for parquet as pandas' read_csv would (its defaults, pandas 2): pandas'
 * missing-value cells (`NA`, `null`, `NaN`, ...) are null, then int64 when every other cell is an
 * integer of the int64 range (a sign and surrounding spaces allowed; exact, ids past 2^53
 * included), double when every one is a decimal number or an infinity, bool for true/false in any
 * case, else text; a column of nothing but missing cells is double, as pandas makes it. Integers
 * past int64 stay text rather than round as doubles, and only decimal literals are numbers
 * (Number() also reads "0x1A" and "0b11"). An integer column with missing cells stays int64 with
 * nulls (pandas makes it float64, as it does reading this parquet back): its ids stay exact.
 */
function typeText(raw: readonly (string | null)[]): {
  type: ColumnType;
  values: unknown;
  valid?: Uint8Array;
} {
  const cells = raw.map((c) => (c === null || PANDAS_NA.has(c) ? null : c));
  const present = cells.filter((c): c is string => c !== null);
  if (present.length === 0)
    return cells.length > 0 ? { type: 'double', values: cells } : { type: 'string', values: cells };
  const trimmed = present.map((c) => c.trim());
  if (trimmed.every((c) => INTEGER.test(c))) {
    if (!trimmed.every((c) => BigInt(c) >= INT64_MIN && BigInt(c) <= INT64_MAX))
      return { type: 'string', values: cells };
    const values = new BigInt64Array(cells.length);
    const valid = new Uint8Array(cells.length);
    cells.forEach((c, i) => {
      if (c === null) return;
      values[i] = BigInt(c.trim());
      valid[i] = 1;
    });
    return { type: 'int64', values, valid };
  }
  if (present.every((c) => DECIMAL.test(c.trim()) || INFINITY.test(c)))
    return {
      type: 'double',
      values: cells.map((c) =>
        c === null
          ? null
          : INFINITY.test(c)
            ? (c.startsWith('-') ? -1 : 1) * Number.POSITIVE_INFINITY
            : Number(c),
      ),
    };
  if (present.every((c) => BOOL.test(c)))
    return { type: 'bool', values: cells.map((c) => (c === null ? null : c.toLowerCase() === 'true')) };
  return { type: 'string', values: cells };
}

async function writeCsvOut(
  path: string,
  labels: LabelFrame,
  features: FeatureColumns,
  signal?: AbortSignal,
): Promise<void> {
  const out = createWriteStream(path);
  const done = new Promise<void>((resolve, reject) => {
    out.on('error', reject);
    out.on('finish', resolve);
  });
  const header = [
    ...labels.keyColumns.map((k) => k.joinKey),
    EVENT_TIMESTAMP,
    ...labels.extra.map((p) => p.name),
    ...features.specs.map((s) => s.name),
  ];
  let chunk = `${header.map(csvCell).join(',')}\n`;
  for (let i = 0; i < labels.n; i++) {
    const cells: string[] = [];
    for (const k of labels.keyColumns) cells.push(String(k.keys[i]));
    cells.push(new Date(Math.floor(labels.ts[i]!)).toISOString());
    for (const p of labels.extra) cells.push(passCell(p, i));
    for (let f = 0; f < features.specs.length; f++)
      cells.push(featureCsvText(features.get(f, i), features.specs[f]!.type));
    chunk += `${cells.map(csvCell).join(',')}\n`;
    if (chunk.length > 1 << 16) {
      // Raced with `done`: after a write error (a full disk) no 'drain' comes to wait for.
      if (!out.write(chunk))
        await Promise.race([new Promise<void>((r) => out.once('drain', () => r())), done]);
      chunk = '';
      if (signal?.aborted) {
        out.destroy();
        signal.throwIfAborted();
      }
    }
  }
  out.end(chunk);
  await done;
}

function passCell(p: PassThrough, i: number): string {
  if (p.kind === 'text') return p.cells[i] ?? '';
  const v: unknown = p.vector.get(i);
  if (v === null || v === undefined) return '';
  const type = String(p.vector.type);
  if (type.startsWith('Timestamp')) return new Date(Number(v)).toISOString();
  // A date as pandas writes one (2026-02-09), not the epoch milliseconds arrow reads it as.
  if (type.startsWith('Date')) return new Date(Number(v)).toISOString().slice(0, 10);
  return String(v);
}

function csvCell(text: string): string {
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
