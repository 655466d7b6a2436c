// Online lookups: every requested entity's state in ONE Redis round trip, then the engine
// evaluates each window at read time (a 1h count decays to 0 an hour after the last event, with no
// new event needed), and the answer is laid out the way Feast's serving proto does it.
import type { Redis } from 'ioredis';
import type { Definitions } from '../../shared/definitions/schema.ts';
import {
  type FeatureValue,
  newestEventTime,
  planView,
  readFeatures,
  readFloor,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { TesseraError } from '../../shared/errors.ts';
import { decodeStoredState, stateKey } from '../../shared/state-store/redis-state-store.ts';
import type { OnlineRequest } from './request.ts';

/** Feast's FieldStatus names, as its JSON responses spell them. */
export type FieldStatus = 'PRESENT' | 'NULL_VALUE' | 'NOT_FOUND' | 'OUTSIDE_MAX_AGE';

export interface FeatureVector {
  values: unknown[];
  statuses: FieldStatus[];
  event_timestamps: string[];
}

export interface OnlineResponse {
  metadata: { feature_names: string[] };
  results: FeatureVector[];
}

export interface LookupStats {
  /** Per view: how old the newest event of each found entity was at read time, in ms. */
  ages: { view: string; ms: number }[];
  /** Reads that asked for a time before the state can answer and were moved up to it. */
  clamped: number;
}

/** Feast's zero timestamp, sent for entity columns and missing rows. */
const EPOCH = '1970-01-01T00:00:00Z';

export class OnlineReader {
  private readonly plans = new Map<string, ViewPlan>();

  constructor(
    private readonly redis: Redis,
    definitions: Definitions,
    private readonly prefix: string,
  ) {
    for (const view of definitions.views) this.plans.set(view.name, planView(view));
  }

  async lookup(
    request: OnlineRequest,
    now: number,
  ): Promise<{ response: OnlineResponse; stats: LookupStats }> {
    // Plain commands, not a pipeline object: with ioredis' auto-pipelining (main.ts) the reads of
    // all lookups that arrive in one event-loop turn leave in one socket write.
    const reads: Promise<Buffer | null>[] = [];
    for (const v of request.views)
      for (const key of v.keys)
        reads.push(this.redis.hgetBuffer(stateKey(this.prefix, v.view.name, key), 's'));
    let blobs: (Buffer | null)[];
    try {
      blobs = await Promise.all(reads);
    } catch (cause) {
      throw unavailable(cause);
    }

    const t = request.asOf ?? now;
    const stats: LookupStats = { ages: [], clamped: 0 };
    const perView: FeatureVector[][] = [];
    let reply = 0;
    for (const v of request.views) {
      const plan = this.plans.get(v.view.name)!;
      const columns: FeatureVector[] = v.features.map(() => ({
        values: [],
        statuses: [],
        event_timestamps: [],
      }));
      for (let row = 0; row < v.keys.length; row++) {
        const blob = blobs[reply++] ?? null;
        if (blob === null) {
          for (const c of columns) push(c, null, 'NOT_FOUND', EPOCH);
          continue;
        }
        const state = decodeStoredState(plan, stateKey(this.prefix, v.view.name, v.keys[row]!), blob);
        const newest = newestEventTime(state);
        const stamp = newest === null ? EPOCH : feastTimestamp(newest);
        if (newest !== null && v.view.maxAgeMs !== null && newest < t - v.view.maxAgeMs) {
          for (const c of columns) push(c, null, 'OUTSIDE_MAX_AGE', stamp);
          continue;
        }
        let readAt = t;
        const floor = readFloor(plan, state);
        if (t < floor) {
          // An explicit as_of older than the state can answer is the caller's mistake (400); "now"
          // behind the state's clock means event times ahead of this server's clock: answer as of
          // the oldest exact time rather than fail the lookup, and count it.
          if (request.asOf !== undefined) readFeatures(plan, state, t); // throws AS_OF_OUT_OF_RANGE
          readAt = floor;
          stats.clamped++;
        }
        const values = readFeatures(plan, state, readAt);
        if (newest !== null) stats.ages.push({ view: v.view.name, ms: Math.max(0, t - newest) });
        v.features.forEach((f, i) => {
          const value = values[f.index] ?? null;
          push(columns[i]!, value, value === null ? 'NULL_VALUE' : 'PRESENT', stamp);
        });
      }
      perView.push(columns);
    }

    const names: string[] = [];
    const results: FeatureVector[] = [];
    for (const column of request.entityColumns) {
      names.push(column.name);
      results.push({
        values: column.values,
        statuses: column.values.map(() => 'PRESENT' as const),
        event_timestamps: column.values.map(() => EPOCH),
      });
    }
    for (const { view, feature } of request.order) {
      names.push(request.views[view]!.features[feature]!.outputName);
      results.push(perView[view]![feature]!);
    }
    return { response: { metadata: { feature_names: names }, results }, stats };
  }
}

function push(c: FeatureVector, value: FeatureValue, status: FieldStatus, stamp: string): void {
  c.values.push(value);
  c.statuses.push(status);
  c.event_timestamps.push(stamp);
}

/** RFC 3339 with Feast's precision rule: no fraction on whole seconds, else milliseconds. */
export function feastTimestamp(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-01-10T12:00:00.000Z
  return ms % 1000 === 0 ? `${iso.slice(0, 19)}Z` : iso;
}

function unavailable(cause: unknown): TesseraError {
  return new TesseraError(
    'SERVICE_UNAVAILABLE',
    'Redis did not answer the lookup; retry shortly (the server reconnects by itself) and check TESSERA_REDIS_URL if it persists',
    { retriable: true, cause },
  );
}
