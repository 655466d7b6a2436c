// Raw events routed into hash shards of entities, held as typed columns: in memory when there is
// one shard, else appended to one file per (shard, column) in a temp directory and read back one
// shard at a time. This is what bounds a point-in-time run's memory: only one shard's events are
// ever decoded at once, whatever the size of the raw log.
import { accessSync, appendFileSync, constants, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TesseraError } from '../errors.ts';
import { type DeadRunCleanup, processAlive, removeDeadRunEntries } from './dead-runs.ts';

/** One shard's events: `columns[c]` is a Float64Array (numbers, NaN = null) or an Int32Array
 * (dictionary ids of a string column, -1 = null), following the plan's columns. */
export interface ShardEvents {
  n: number;
  entity: Int32Array;
  ts: Float64Array;
  partition: Int32Array;
  offset: Float64Array;
  columns: (Float64Array | Int32Array)[];
}

type Typed = Float64Array | Int32Array;

/**
 * A spill directory is named for the process that owns it (`tessera-pit-spill-<pid>-XXXXXX`): a
 * run killed outright (SIGKILL, OOM killer, power loss) cannot remove its own, so the next run
 * removes those whose process is gone.
 */
const SPILL_PREFIX = 'tessera-pit-spill-';
const SPILL_DIR = /^tessera-pit-spill-(\d+)-[A-Za-z0-9]{6}$/;

/**
 * Removes the spill directories in `tempRoot` left by runs that died without cleaning up (the
 * rule of removeDeadRunEntries: only those whose owner pid names no process). Returns what was
 * removed and what could not be (e.g. another user's directory), for the caller to log.
 */
export function removeStaleSpillDirs(
  tempRoot = tmpdir(),
  alive: (pid: number) => boolean = processAlive,
): DeadRunCleanup {
  return removeDeadRunEntries(tempRoot, SPILL_DIR, alive);
}

/**
 * Refuses a --temp-dir the spill directory cannot be made in, before any work: it failed only once
 * the labels were read and the raw log listed, as a bare ENOENT from mkdtemp with exit 1.
 */
export function checkTempDir(dir: string): void {
  const refuse = (why: string): never => {
    throw new TesseraError('INVALID_ARGUMENT', `--temp-dir ${dir}: ${why}`, { context: { path: dir } });
  };
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    refuse('does not exist; create it first, or leave --temp-dir out for the OS temp dir');
  }
  if (!isDir) refuse('is not a directory');
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    refuse('is not writable; spill files go there');
  }
}

type TypedCtor = Float64ArrayConstructor | Int32ArrayConstructor;

/** Rows buffered per shard before a flush (to memory chunks or to the shard's files). */
const BUFFER_ROWS = 16_384;

export class EventShards {
  readonly shards: number;
  private readonly kinds: TypedCtor[];
  private readonly buffers: Typed[][];
  private readonly fill: Int32Array;
  private readonly chunks: Typed[][][];
  private readonly counts: Float64Array;
  private readonly dir: string | null;

  /** `numeric[c]` says whether plan column c is numeric (else dictionary ids). */
  constructor(shards: number, numeric: readonly boolean[], tempRoot = tmpdir()) {
    this.shards = shards;
    this.kinds = [
      Int32Array,
      Float64Array,
      Int32Array,
      Float64Array,
      ...numeric.map((n) => (n ? Float64Array : Int32Array)),
    ];
    this.buffers = Array.from({ length: shards }, () => this.kinds.map((K) => new K(BUFFER_ROWS)));
    this.fill = new Int32Array(shards);
    this.chunks = Array.from({ length: shards }, () => this.kinds.map(() => []));
    this.counts = new Float64Array(shards);
    this.dir = shards > 1 ? mkdtempSync(join(tempRoot, `${SPILL_PREFIX}${process.pid}-`)) : null;
  }

  /** Appends one event to a shard; `values[c]` is the number or dictionary id of column c. */
  add(
    shard: number,
    entity: number,
    ts: number,
    partition: number,
    offset: number,
    values: ArrayLike<number>,
  ): void {
    const buf = this.buffers[shard]!;
    const i = this.fill[shard]!;
    buf[0]![i] = entity;
    buf[1]![i] = ts;
    buf[2]![i] = partition;
    buf[3]![i] = offset;
    for (let c = 0; c < values.length; c++) buf[4 + c]![i] = values[c]!;
    this.fill[shard] = i + 1;
    this.counts[shard]!++;
    if (i + 1 === BUFFER_ROWS) this.flush(shard);
  }

  /** Events routed to a shard so far. */
  count(shard: number): number {
    return this.counts[shard]!;
  }

  /** All of one shard's events (call after the last add); frees what the shard held. */
  load(shard: number): ShardEvents {
    this.flush(shard);
    const n = this.counts[shard]!;
    const cols = this.kinds.map((K, c) => {
      if (this.dir === null) return concat(K, this.chunks[shard]![c]!, n);
      const path = this.file(shard, c);
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch {
        return new K(0); // no event ever reached this shard
      }
      rmSync(path, { force: true });
      // Copy into a fresh, aligned buffer: a Buffer's byteOffset need not be a multiple of 8.
      return new K(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
    });
    this.chunks[shard] = this.kinds.map(() => []);
    return {
      n,
      entity: cols[0] as Int32Array,
      ts: cols[1] as Float64Array,
      partition: cols[2] as Int32Array,
      offset: cols[3] as Float64Array,
      columns: cols.slice(4),
    };
  }

  /** Removes the temp directory (also after a failure). */
  close(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  private flush(shard: number): void {
    const rows = this.fill[shard]!;
    if (rows === 0) return;
    const buf = this.buffers[shard]!;
    for (let c = 0; c < buf.length; c++) {
      const part = buf[c]!.slice(0, rows);
      if (this.dir === null) this.chunks[shard]![c]!.push(part);
      else appendFileSync(this.file(shard, c), new Uint8Array(part.buffer));
    }
    this.fill[shard] = 0;
  }

  private file(shard: number, column: number): string {
    return join(this.dir as string, `s${shard}-c${column}.bin`);
  }
}

function concat(K: TypedCtor, parts: Typed[], n: number): Typed {
  const out = new K(n);
  let at = 0;
  for (const p of parts) {
    out.set(p as never, at);
    at += p.length;
  }
  return out;
}
