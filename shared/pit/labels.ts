// The entity dataframe of a point-in-time query ("labels"): one row per (entity, time) to answer,
// read from CSV or parquet, validated at the boundary (a bad timestamp or key names its row), with
// every other column kept to be passed through to the output unchanged.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type * as arrow from 'apache-arrow';
import { MAX_DATE_MS } from '../codecs/timestamp.ts';
import type { EntityKeyType } from '../definitions/schema.ts';
import { TesseraError } from '../errors.ts';
import { EVENT_TIMESTAMP } from '../offline/feature-columns.ts';
import { readParquetByRowGroup } from '../offline/parquet-chunks.ts';
import { msWithFraction, numericColumn } from '../offline/raw-log.ts';

export type EntityKey = number | string;

/** Columns passed through: kept as read (arrow vectors from parquet, text cells from CSV). */
export type PassThrough =
  | { kind: 'arrow'; name: string; vector: arrow.Vector }
  | { kind: 'text'; name: string; cells: (string | null)[] };

/** A join key the entity dataframe must hold, and the views that need it (named in errors). */
export interface LabelKey {
  joinKey: string;
  keyType: EntityKeyType;
  views?: readonly string[];
}

/** One join key column, read and typed. */
export interface KeyColumn {
  joinKey: string;
  keyType: EntityKeyType;
  keys: EntityKey[];
}

export interface LabelFrame {
  n: number;
  /** The join keys asked for, in the order asked (one per distinct join key of the views). */
  keyColumns: KeyColumn[];
  /** Query time of each row, epoch ms (fractional when the input had sub-ms precision). */
  ts: Float64Array;
  /** The other columns, in input order. */
  extra: PassThrough[];
}

/**
 * Reads the entity dataframe with every join key of `keys` (at least one). `signal` stops the
 * reading of a CSV (millions of rows take seconds), with its reason.
 */
export async function readLabels(
  path: string,
  keys: readonly LabelKey[],
  signal?: AbortSignal,
): Promise<LabelFrame> {
  if (/\.parquet$/i.test(path)) return readParquetLabels(path, keys);
  if (/\.csv$/i.test(path)) return readCsvLabels(path, keys, signal);
  throw new TesseraError(
    'INVALID_ARGUMENT',
    `--entities ${path}: use a .csv or .parquet file (columns ${keys.map((k) => k.joinKey).join(',')},${EVENT_TIMESTAMP}[,...])`,
  );
}

async function readParquetLabels(path: string, specs: readonly LabelKey[]): Promise<LabelFrame> {
  const bytes = new Uint8Array(await readFile(path).catch((e) => notFound(path, e)));
  let table: arrow.Table;
  try {
    table = await readParquetByRowGroup(bytes);
  } catch (cause) {
    // The decoder's message names no file: say which one, and what it should be.
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `--entities ${path} is not a readable parquet file (${(cause as Error).message}); write it with pandas' to_parquet or pyarrow, or pass a .csv`,
      { cause, context: { path } },
    );
  }
  const names = table.schema.fields.map((f) => f.name);
  requireColumns(path, names, specs);
  // Refused as in CSV (retrieve.ts refuseNameClashes): a second join key or event_timestamp column
  // was dropped without a word, since only the first of a name is read.
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice !== undefined) throw repeatedColumn(path, twice);
  const n = table.numRows;
  const keyColumns = specs.map(({ joinKey, keyType }): KeyColumn => {
    const keyVector = table.getChild(joinKey)!;
    const keys = new Array<EntityKey>(n);
    if (keyType === 'int64' && /^U?Int/.test(String(keyVector.type))) {
      // Integer column: read the words directly (no BigInt per row); check the range per row.
      const numbers = numericColumn(table, joinKey);
      for (let i = 0; i < n; i++) {
        const k = numbers[i]!;
        keys[i] = Number.isSafeInteger(k) ? k : toKey(keyVector.get(i), keyType, path, i, joinKey);
      }
    } else for (let i = 0; i < n; i++) keys[i] = toKey(keyVector.get(i), keyType, path, i, joinKey);
    return { joinKey, keyType, keys };
  });
  const tsVector = table.getChild(EVENT_TIMESTAMP)!;
  const typeId = String(tsVector.type);
  let ts: Float64Array;
  if (typeId.startsWith('Timestamp') || typeId.startsWith('Date')) {
    ts = numericColumn(table, EVENT_TIMESTAMP);
  } else {
    // Text or integer timestamps: parsed like CSV cells.
    ts = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = tsVector.get(i);
      ts[i] = parseTime(v === null ? '' : String(v), path, i);
    }
  }
  for (let i = 0; i < n; i++) if (!Number.isFinite(ts[i]!)) throw badTime(path, i, String(tsVector.get(i)));
  const keyNames = new Set(specs.map((k) => k.joinKey));
  const extra: PassThrough[] = names
    .filter((name) => !keyNames.has(name) && name !== EVENT_TIMESTAMP)
    .map((name) => ({ kind: 'arrow', name, vector: table.getChild(name)! }));
  return { n, keyColumns, ts, extra };
}

/** A column name an entity dataframe uses twice (refused: the output has one column per name). */
export function repeatedColumn(path: string, name: string): TesseraError {
  return new TesseraError(
    'INVALID_ARGUMENT',
    `${path} has more than one column named ${name}; rename the others (the output has one column per name)`,
    { context: { path, column: name } },
  );
}

async function readCsvLabels(
  path: string,
  specs: readonly LabelKey[],
  signal?: AbortSignal,
): Promise<LabelFrame> {
  const input = createReadStream(path);
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (e) => reject(notFoundError(path, e)));
  });
  await opened;
  const lines = readLines(createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY }), path);
  let header: string[] | null = null;
  let keyAt: number[] = [];
  let tsAt = -1;
  const keyColumns: KeyColumn[] = specs.map(({ joinKey, keyType }) => ({ joinKey, keyType, keys: [] }));
  const ts: number[] = [];
  let extraAt: number[] = [];
  let extra: { kind: 'text'; name: string; cells: (string | null)[] }[] = [];
  let row = 0;
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (header === null) {
      header = splitCsv(line.replace(/^\uFEFF/, '')).map((h) => h.trim());
      requireColumns(path, header, specs);
      keyAt = specs.map((k) => header!.indexOf(k.joinKey));
      tsAt = header.indexOf(EVENT_TIMESTAMP);
      extraAt = header.map((_, i) => i).filter((i) => !keyAt.includes(i) && i !== tsAt);
      extra = extraAt.map((i) => ({ kind: 'text', name: header![i]!, cells: [] }));
      continue;
    }
    if (line.trim() === '') continue;
    if ((row & 0xffff) === 0xffff && signal?.aborted) {
      input.destroy();
      signal.throwIfAborted();
    }
    // An odd number of quotes: a quoted cell that goes on to the next line. Its row was taken
    // cut short and the error came on the line after, as a bare field count.
    if (line.includes('"') && (line.match(/"/g)?.length ?? 0) % 2 === 1)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `${path} row ${row + 1} (line ${lineNo}): a quoted cell goes on to the next line, which is not supported; put each row on one line`,
        { context: { path, row: row + 1 } },
      );
    const cells = splitCsv(line);
    if (cells.length !== header.length)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `${path} row ${row + 1} (line ${lineNo}): ${cells.length} fields, the header has ${header.length}`,
        { context: { path, row: row + 1 } },
      );
    for (let k = 0; k < keyColumns.length; k++) {
      const column = keyColumns[k]!;
      // A string key is taken as written (RFC 4180: spaces are part of a field), as the ingestor
      // stores it: trimmed, " u1 " was answered with the events of "u1". An int64 key may be padded.
      const cell = cells[keyAt[k]!]!;
      column.keys.push(
        toKey(column.keyType === 'string' ? cell : cell.trim(), column.keyType, path, row, column.joinKey),
      );
    }
    ts.push(parseTime(cells[tsAt]!, path, row));
    for (let k = 0; k < extraAt.length; k++) {
      const cell = cells[extraAt[k]!]!;
      extra[k]!.cells.push(cell === '' ? null : cell);
    }
    row++;
  }
  if (header === null)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `${path} is empty: it needs a header ${specs.map((k) => k.joinKey).join(',')},${EVENT_TIMESTAMP}`,
    );
  return { n: row, keyColumns, ts: Float64Array.from(ts), extra };
}

/**
 * The lines of the file, a read failing after the open (a directory opens, then fails with EISDIR;
 * an I/O error) as INVALID_ARGUMENT naming --entities: it was a bare system error and exit 1.
 */
async function* readLines(lines: AsyncIterable<string>, path: string): AsyncGenerator<string> {
  try {
    yield* lines;
  } catch (error) {
    if (typeof (error as NodeJS.ErrnoException).syscall === 'string') throw notFoundError(path, error);
    throw error;
  }
}

/**
 * A time cell: ISO-8601 (a missing zone means UTC, as Feast assumes for naive timestamps) or an
 * integer of epoch milliseconds.
 */
export function parseTime(text: string, path: string, row: number): number {
  const cell = text.trim();
  if (/^-?\d+$/.test(cell)) {
    // Date's range: an epoch in micro- or nanoseconds (pandas' astype('int64')) is past it.
    const ms = Number(cell);
    if (Math.abs(ms) > MAX_DATE_MS)
      throw badTime(
        path,
        row,
        text,
        ': an integer is read as epoch milliseconds, and this one is past year 275760 (microseconds or nanoseconds?)',
      );
    const unit = mistakenUnit(ms);
    if (unit !== null)
      throw badTime(
        path,
        row,
        text,
        `: an integer is read as epoch milliseconds, and this one is ${new Date(ms).toISOString()} as milliseconds but ${unit.as} in ${unit.name}; ${unit.fix}`,
      );
    return ms;
  }
  const iso =
    /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?$/i.exec(
      cell,
    );
  if (!iso) throw badTime(path, row, text);
  const [, date, time = '00:00:00', zone = 'Z'] = iso;
  // Date.parse rolls a day past the month's end over (2026-02-30 is March 2): refused instead.
  const [y, m, d] = date!.split('-').map(Number) as [number, number, number];
  if (m < 1 || m > 12 || d < 1 || d > new Date(Date.UTC(y, m, 0)).getUTCDate())
    throw badTime(path, row, text, `: ${date} is not a day of the calendar`);
  const [whole, fraction = ''] = time.split('.');
  const ms = Date.parse(`${date}T${whole}${zone.toUpperCase() === 'UTC' ? 'Z' : zone}`);
  if (Number.isNaN(ms)) throw badTime(path, row, text);
  if (!fraction) return ms;
  // Whole milliseconds exactly; finer digits (micro-, nanoseconds) stay a fraction of a millisecond
  // (one that would round onto a whole millisecond is kept inside it: msWithFraction).
  const whole3 = Number(fraction.slice(0, 3).padEnd(3, '0'));
  return msWithFraction(ms + whole3, fraction.length > 3 ? Number(`0.${fraction.slice(3)}`) : 0);
}

/** Epoch seconds of 1990-01-01 and 2100-01-01: where the label times of any real dataset lie. */
const PLAUSIBLE_FROM_S = 631_152_000;
const PLAUSIBLE_TO_S = 4_102_444_800;

/**
 * The unit an integer time was evidently written in, when it is not milliseconds: epoch seconds
 * (pandas' `astype('int64') // 10**9`, `date +%s`) read as ms land in January 1970, and epoch
 * microseconds in the year 20,000 and later, where every window is empty. Both gave a training
 * set of silent zeros. Only a value that is a time of 1990 to 2100 in the other unit is refused.
 */
function mistakenUnit(ms: number): { name: string; as: string; fix: string } | null {
  const abs = Math.abs(ms);
  if (abs >= PLAUSIBLE_FROM_S && abs < PLAUSIBLE_TO_S)
    return {
      name: 'seconds',
      as: new Date(ms * 1000).toISOString(),
      fix: 'multiply epoch seconds by 1000',
    };
  if (abs >= PLAUSIBLE_FROM_S * 1e6 && abs < PLAUSIBLE_TO_S * 1e6)
    return {
      name: 'microseconds',
      as: new Date(Math.floor(ms / 1000)).toISOString(),
      fix: 'divide epoch microseconds by 1000',
    };
  return null;
}

function badTime(path: string, row: number, text: string, why = ''): TesseraError {
  return new TesseraError(
    'INVALID_ARGUMENT',
    `${path} row ${row + 1}: bad ${EVENT_TIMESTAMP} ${JSON.stringify(text)}${why}; use ISO-8601 (2026-01-05T10:00:00Z) or epoch milliseconds`,
    { context: { path, row: row + 1 } },
  );
}

function toKey(
  value: unknown,
  keyType: EntityKeyType,
  path: string,
  row: number,
  joinKey: string,
): EntityKey {
  if (keyType === 'string') {
    if (value === null || value === undefined || value === '')
      throw new TesseraError('INVALID_ARGUMENT', `${path} row ${row + 1}: ${joinKey} is empty`, {
        context: { path, row: row + 1 },
      });
    return String(value);
  }
  const n =
    typeof value === 'bigint'
      ? Number(value)
      : typeof value === 'string' && /^-?\d+$/.test(value)
        ? Number(value)
        : typeof value === 'number' && Number.isInteger(value)
          ? value
          : Number.NaN;
  if (!Number.isSafeInteger(n))
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `${path} row ${row + 1}: ${joinKey} ${JSON.stringify(String(value))} is not an int64 key (integers up to 2^53 are supported)`,
      { context: { path, row: row + 1 } },
    );
  return n;
}

/** Every join key and event_timestamp; a missing join key names the views that need it. */
function requireColumns(path: string, names: readonly string[], specs: readonly LabelKey[]): void {
  const needed = [...specs.map((k) => k.joinKey), EVENT_TIMESTAMP];
  const missing = needed.filter((c) => !names.includes(c));
  if (missing.length === 0) return;
  const why = specs
    .filter((k) => missing.includes(k.joinKey) && k.views && k.views.length > 0)
    .map(
      (k) =>
        `${k.joinKey} is the join key of ${k.views!.length > 1 ? 'views' : 'view'} ${k.views!.join(', ')}`,
    );
  throw new TesseraError(
    'INVALID_ARGUMENT',
    `${path} has no column ${missing.join(' or ')} (columns: ${names.join(', ')})${why.length > 0 ? ` (${why.join('; ')})` : ''}; the entity dataframe needs ${needed.join(',')}[,label...]`,
    { context: { path, missing } },
  );
}

/** Splits one CSV line (RFC 4180 quotes; a quoted field cannot span lines here). */
export function splitCsv(line: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const out: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cell);
      cell = '';
    } else cell += c;
  }
  out.push(cell);
  return out;
}

function notFoundError(path: string, cause: unknown): TesseraError {
  return (cause as NodeJS.ErrnoException).code === 'ENOENT'
    ? new TesseraError('NOT_FOUND', `--entities ${path} does not exist`, { cause })
    : new TesseraError('INVALID_ARGUMENT', `cannot read --entities ${path}: ${String(cause)}`, { cause });
}

function notFound(path: string, cause: unknown): never {
  throw notFoundError(path, cause);
}
