// Online lookups: every requested entity's state in ONE Redis round trip, then the engine
// evaluates each window at read time (a 1h count decays to 0 an hour after the last event, with no
// new event needed), and the answer is laid out the way Feast's serving proto does it. A state is
// read straight from its bytes, its delta records replayed there (shared/engine/fast-read.ts);
// what the byte reader does not cover or refuses is decoded into the engine's state instead.
import type { Definitions } from '../../shared/definitions/schema.ts';
import { type StateBytesReader, stateBytesReader } from '../../shared/engine/fast-read.ts';
import {
  type EntityState,
  newestEventBefore,
  newestEventTime,
  planView,
  readFeatures,
  readFloor,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { isTesseraError, TesseraError } from '../../shared/errors.ts';
import { isClusterRedirect, type RedisClient } from '../../shared/state-store/redis-client.ts';
import { decodeStoredState, stateKey } from '../../shared/state-store/redis-state-store.ts';
import type { OnlineRequest } from './request.ts';
import {
  EPOCH,
  FOUND,
  feastTimestamp,
  NOT_FOUND,
  OUTSIDE_MAX_AGE,
  onlineResponseJson,
  type ViewRows,
} from './response-json.ts';
import { StateReads } from './state-reads.ts';

export interface LookupStats {
  /** Per requested view: how old the newest event of each found entity was at read time, in ms. */
  ages: { view: string; ms: number[] }[];
  /** Reads that asked for a time before the state can answer and were moved up to it. */
  clamped: number;
  /** Found entities decoded into engine state instead of read from their bytes (a view the byte
   * reader does not cover, bytes or delta records it does not cover, or ones that do not decode:
   * decoding then names the problem). */
  decoded: number;
}

export class OnlineReader {
  private readonly plans = new Map<string, ViewPlan>();
  /** Per view: its byte reader, null when the view has features the reader does not cover. */
  private readonly fast = new Map<string, StateBytesReader | null>();
  private readonly reads: StateReads;

  /** `observeRead`: called with each Redis read's duration in ms (the latency probe). */
  constructor(
    redis: RedisClient,
    definitions: Definitions,
    private readonly prefix: string,
    observeRead: ((ms: number) => void) | null = null,
  ) {
    for (const view of definitions.views) {
      const plan = planView(view);
      this.plans.set(view.name, plan);
      this.fast.set(view.name, stateBytesReader(plan));
    }
    this.reads = new StateReads(redis, observeRead);
  }

  /** The response body (Feast's JSON layout) and what the metrics need. */
  async lookup(request: OnlineRequest, now: number): Promise<{ body: string; stats: LookupStats }> {
    // Each distinct entity is read and evaluated once: 1,000 rows of one hot entity (a 3 KB
    // request) once read its state 1,000 times and held the event loop for seconds.
    const keys: string[] = [];
    const slots: number[][] = [];
    const index = request.rows > 1 || request.views.length > 1 ? new Map<string, number>() : null;
    for (const v of request.views) {
      const viewSlots = new Array<number>(v.keys.length);
      for (let row = 0; row < v.keys.length; row++) {
        const key = stateKey(this.prefix, v.view.name, v.keys[row]!);
        let slot = index?.get(key);
        if (slot === undefined) {
          slot = keys.push(key) - 1;
          index?.set(key, slot);
        }
        viewSlots[row] = slot;
      }
      slots.push(viewSlots);
    }
    /** Per key: the row of its view that holds its answer once evaluated (null: one row, one view). */
    const answered = index === null ? null : new Int32Array(keys.length).fill(-1);
    let blobs: (Buffer | null)[];
    try {
      blobs = await this.reads.read(keys);
    } catch (cause) {
      throw isTesseraError(cause) ? cause : unavailable(cause);
    }

    const t = request.asOf ?? now;
    const stats: LookupStats = { ages: [], clamped: 0, decoded: 0 };
    const perView: ViewRows[] = [];
    request.views.forEach((v, viewAt) => {
      const plan = this.plans.get(v.view.name)!;
      const fast = this.fast.get(v.view.name) ?? null;
      const n = v.keys.length;
      const rows: ViewRows = { outcome: new Array(n), stamps: new Array(n), values: new Array(n) };
      const ages: number[] = [];
      for (let row = 0; row < n; row++) {
        const slot = slots[viewAt]![row]!;
        const first = answered === null ? -1 : answered[slot]!;
        if (first >= 0) {
          // A repeated entity row: the same answer (the response writer only reads the values).
          rows.outcome[row] = rows.outcome[first]!;
          rows.stamps[row] = rows.stamps[first]!;
          rows.values[row] = rows.values[first]!;
          continue;
        }
        if (answered !== null) answered[slot] = row;
        const key = keys[slot];
        const blob = blobs[2 * slot] ?? null;
        const delta = blobs[2 * slot + 1] ?? null;
        rows.values[row] = null;
        if (blob === null) {
          rows.outcome[row] = NOT_FOUND;
          rows.stamps[row] = EPOCH;
          continue;
        }
        // The byte reader's scratch holds this entity from `load` to `read`: nothing awaits between.
        let state: EntityState | null = null;
        if (fast === null || !loads(fast, blob, delta)) {
          state = decodeStoredState(plan, key!, blob, delta);
          stats.decoded++;
        }
        const floor = state === null ? fast!.floor() : readFloor(plan, state);
        // An explicit as_of older than the state can answer is the caller's mistake (400), checked
        // first: the events before such an as_of may be pruned, so neither its values nor its
        // newest event can be told.
        if (request.asOf !== undefined && t < floor)
          asOfOutOfRange(plan, state ?? decodeStoredState(plan, key!, blob, delta), t);
        let newest = state === null ? fast!.newest() : newestEventTime(state);
        if (request.asOf !== undefined && newest !== null && newest >= t) {
          // Events at or after the as_of: the answer reflects none of them (windows end before t),
          // so neither its timestamp nor its max_age may. The byte reader cannot search back in
          // time; such debugging reads decode the state.
          if (state === null) {
            state = decodeStoredState(plan, key!, blob, delta);
            stats.decoded++;
          }
          newest = newestEventBefore(state, t);
        }
        rows.stamps[row] = newest === null ? EPOCH : feastTimestamp(newest);
        if (newest !== null && v.view.maxAgeMs !== null && newest < t - v.view.maxAgeMs) {
          rows.outcome[row] = OUTSIDE_MAX_AGE;
          continue;
        }
        let readAt = t;
        if (t < floor) {
          // "now" behind the state's clock means event times ahead of this server's clock: answer
          // as of the oldest exact time rather than fail the lookup, and count it.
          readAt = floor;
          stats.clamped++;
        }
        rows.outcome[row] = FOUND;
        rows.values[row] =
          state === null ? fast!.read(readAt, v.features) : readFeatures(plan, state, readAt);
        if (newest !== null) ages.push(Math.max(0, t - newest));
      }
      perView.push(rows);
      stats.ages.push({ view: v.view.name, ms: ages });
    });
    return { body: onlineResponseJson(request, perView), stats };
  }
}

/**
 * Loads a state and its delta records into the byte reader; false (decode them instead) when not
 * covered, or not decodable.
 */
function loads(reader: StateBytesReader, blob: Buffer, delta: Buffer | null): boolean {
  try {
    return reader.load(blob, delta);
  } catch {
    return false; // decodeStoredState throws STATE_CORRUPT naming the key (and the record's problem)
  }
}

/** The engine's AS_OF_OUT_OF_RANGE for a read at t, as a refusal of the request's as_of. */
function asOfOutOfRange(plan: ViewPlan, state: EntityState, t: number): never {
  try {
    readFeatures(plan, state, t);
  } catch (error) {
    if (isTesseraError(error, 'AS_OF_OUT_OF_RANGE'))
      throw new TesseraError('AS_OF_OUT_OF_RANGE', `as_of: ${error.message}`, {
        context: { ...error.context, field: 'as_of' },
      });
    throw error;
  }
  throw new TesseraError('INTERNAL', `as_of ${t} is before the state's floor, yet the engine read it`);
}

/**
 * A failed Redis read as the request's error, marked `context.redis` (the server counts those in
 * tessera_server_redis_errors_total): an outage is a retriable 503; Redis answering with an error
 * (a key of another type under our prefix, a script refused) is not an outage, and no retry helps.
 */
function unavailable(cause: unknown): TesseraError {
  // A Redis Cluster moving slots (or one coming up): the read was not run, and one a moment later is.
  if (isClusterRedirect(cause) || (cause instanceof Error && /^(LOADING|MASTERDOWN) /.test(cause.message)))
    return new TesseraError(
      'SERVICE_UNAVAILABLE',
      `Redis could not serve the lookup's read now (${(cause as Error).message.split('\n')[0]}); retry shortly`,
      { retriable: true, cause, context: { redis: true } },
    );
  if (cause instanceof Error && cause.name === 'ReplyError')
    return new TesseraError(
      'INTERNAL',
      `Redis refused the lookup's read (${cause.message.split('\n')[0]}); is TESSERA_REDIS_KEY_PREFIX shared with another application's keys?`,
      { cause, context: { redis: true } },
    );
  return new TesseraError(
    'SERVICE_UNAVAILABLE',
    'Redis did not answer the lookup; retry shortly (the server reconnects by itself) and check TESSERA_REDIS_URL if it persists',
    { retriable: true, cause, context: { redis: true } },
  );
}
