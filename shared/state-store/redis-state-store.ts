// Per-entity engine state in Redis: one hash per (view, entity), hash-tagged on the entity so each
// update can be single-slot (Redis Cluster, TESSERA_REDIS_CLUSTER), with a TTL of the view's ttl.
// Reads are one pipelined round trip per batch; writes are one round trip of compare-and-set calls
// (cas-state.lua), each for up to 128 entities on one Redis server or one entity on a cluster.
// A save appends the events it applied as a delta record (shared/engine/delta.ts) while the
// records stay small next to the full state, and writes the full state again (folding them in)
// otherwise: a busy entity's save costs its new events, not its whole history.
// With a StateCache, a read reuses the decoded state this process saved last without a round trip
// (the common case for a partition this process owns); the compare-and-set on its version catches
// a copy another writer made stale. Only the others are fetched and decoded.
import { readFileSync } from 'node:fs';
import { Cluster } from 'ioredis';
import {
  applyDeltas,
  type BeforeEventReader,
  decodeState,
  type EngineEvent,
  type EntityState,
  emptyState,
  encodeDelta,
  encodeState,
  type ViewPlan,
} from '../engine/index.ts';
import { TesseraError } from '../errors.ts';
import { type Command, type RedisClient, sendAll } from './redis-client.ts';
import { NOTHING_STORED, StateCache, type StoredSize } from './state-cache.ts';

export type { StoredSize } from './state-cache.ts';

const CAS_SCRIPT = readFileSync(new URL('./cas-state.lua', import.meta.url), 'utf8');

/** The hash fields of a state key: version, full state, appended delta records. */
export const STATE_FIELDS = ['v', 's', 'd'] as const;

/**
 * When a save appends: while the key holds fewer than MAX_DELTA_RECORDS records and the records
 * stay within a quarter of the full state's bytes. A full write re-encodes the whole state, so
 * the share sets how often each event is encoded again (about 1/share times); readers replay the
 * records (an event replayed costs about three read from the state's bytes on the server), so it
 * also caps what a read pays. Simulated over the ingest bench's stream (250k events, batches of
 * 500): an eighth re-encoded 29 MB, a quarter 17 MB (encodeState was 13 % of the ingestor's CPU at
 * 10k events/s), with 6 % and 12 % of the live events in records. Small states, cheap to rewrite,
 * are always written in full.
 */
export const MAX_DELTA_RECORDS = 64;
const DELTA_SHARE = 1 / 4;

/** Negative results of the Lua scripts, mapped in one place. */
export enum ScriptResult {
  VersionConflict = -1,
}

export interface LoadedState {
  /** 0 when the entity had no state. */
  version: number;
  state: EntityState;
  /** How Redis holds it (undefined: unknown, the next save writes the full state). */
  stored?: StoredSize;
  /**
   * The before-event reader the last batch built over this very state object, kept with it in the
   * cache (given back by saveMany's `reader`): its typed mirror carries over to the next batch.
   * Kept beside the state rather than in a WeakMap keyed by it: a WeakMap of tens of thousands of
   * entries is ephemeron work in every full GC's pause (seen: up to 7 ms of a 15 ms pause).
   */
  reader?: BeforeEventReader;
}

export interface SaveRequest {
  entity: string;
  /** As loaded. */
  version: number;
  /** As loaded: with `applied`, lets the save append a delta record instead of the full state. */
  stored?: StoredSize;
  /** The state after `applied`. */
  state: EntityState;
  /** The events applied to the loaded state, in order, each with `now` (what a delta records). */
  applied?: readonly EngineEvent[];
  now?: number;
  /** The state's before-event reader, cached with it once saved (LoadedState.reader). */
  reader?: BeforeEventReader;
}

/** `tesseraCasStates(numberOfKeys, ...keys, ttlMs, ...[version, bytes, first, mode] per key)`. */
type CasArg = string | number | Buffer;

/**
 * Entities per cas-state.lua call on one Redis server. A call costs the client about as much as
 * one command, so 128 entities cost a fraction of 128 calls; and a call blocks Redis while it
 * runs (~1 ms for 128 appends), which bounds what it adds to a concurrent online read.
 */
const KEYS_PER_CALL = 128;

/** Running totals over every loadMany and saveMany of this store, for metrics. */
export interface LoadStats {
  /** Entities taken from the cache: no round trip, nothing decoded (a stale one then loses its write). */
  cached: number;
  /** Entities fetched from Redis and decoded. */
  fetched: number;
  /** Saves that appended a delta record. */
  appended: number;
  /** Saves that wrote the full state. */
  full: number;
}

/**
 * The state a key holds: field `s` decoded, then the delta records of field `d` (if any) replayed.
 * Bytes that do not decode are STATE_CORRUPT, naming the key.
 */
export function decodeStoredState(
  plan: ViewPlan,
  key: string,
  base: Buffer,
  delta: Buffer | null,
): EntityState {
  return decodeStored(plan, key, base, delta).state;
}

function decodeStored(
  plan: ViewPlan,
  key: string,
  base: Buffer,
  delta: Buffer | null,
): { state: EntityState; records: number } {
  try {
    // A Buffer is a Uint8Array over the same bytes: the engine reads it as is.
    const state = decodeState(plan, base);
    const records = delta === null || delta.length === 0 ? 0 : applyDeltas(plan, state, delta);
    return { state, records };
  } catch (cause) {
    throw new TesseraError(
      'STATE_CORRUPT',
      `state of ${key} cannot be decoded: delete the key to rebuild it`,
      {
        cause,
        context: { key },
      },
    );
  }
}

/** The Redis key of an entity's state: `<prefix>:{<view>:<entity>}`. */
export function stateKey(prefix: string, view: string, entity: string): string {
  return `${prefix}:{${view}:${entity}}`;
}

export class RedisStateStore {
  private readonly redis: RedisClient;
  private readonly keysPerCall: number;
  readonly stats: LoadStats = { cached: 0, fetched: 0, appended: 0, full: 0 };

  constructor(
    redis: RedisClient,
    private readonly plan: ViewPlan,
    private readonly prefix: string,
    /** Decoded states saved by this process; none by default (every load fetches and decodes). */
    private readonly cache: StateCache = new StateCache(0),
    /** Redis Cluster: one key per script call (each call then stays in one hash slot). */
    cluster = redis instanceof Cluster,
  ) {
    if (!('tesseraCasStates' in redis)) redis.defineCommand('tesseraCasStates', { lua: CAS_SCRIPT });
    // The same script for one key, declared so: ioredis' auto-pipelining on a Cluster routes a
    // command by its first argument, which for a script of variable key count is the count.
    if (!('tesseraCasState' in redis))
      redis.defineCommand('tesseraCasState', { lua: CAS_SCRIPT, numberOfKeys: 1 });
    this.redis = redis;
    this.keysPerCall = cluster ? 1 : KEYS_PER_CALL;
  }

  key(entity: string): string {
    return stateKey(this.prefix, this.plan.view.name, entity);
  }

  /**
   * Loads the states of many entities (missing ones get an empty state) in at most one round trip.
   * A cached state is used as is, without asking Redis: it carries the version this process saved,
   * and the compare-and-set of saveMany() checks that version, so a copy made stale by another
   * writer loses its write and is loaded afresh (applyBatch re-applies). The caller owns the
   * returned states: a cached one leaves the cache until saveMany() stores it again, so a batch
   * that fails halfway cannot leave a half-applied state behind.
   */
  async loadMany(entities: readonly string[]): Promise<Map<string, LoadedState>> {
    const out = new Map<string, LoadedState>();
    const missing: string[] = [];
    for (const entity of entities) {
      const hit = this.cache.take(entity);
      if (hit) out.set(entity, hit);
      else missing.push(entity);
    }
    if (missing.length > 0) {
      const replies = await sendAll(
        this.redis,
        missing.map((entity): Command => ['hmgetBuffer', this.key(entity), ...STATE_FIELDS]),
      );
      missing.forEach((entity, i) => {
        const [error, value] = replies[i] ?? [new Error('no reply'), null];
        if (error) throw redisError('read', error, entity);
        const [v, s, d] = value as [Buffer | null, Buffer | null, Buffer | null];
        out.set(entity, this.decode(entity, v, s, d));
      });
    }
    this.stats.cached += entities.length - missing.length;
    this.stats.fetched += missing.length;
    return out;
  }

  private decode(entity: string, v: Buffer | null, s: Buffer | null, d: Buffer | null): LoadedState {
    if (v === null || s === null) return { version: 0, state: emptyState(this.plan), stored: NOTHING_STORED };
    const { state, records } = decodeStored(this.plan, this.key(entity), s, d);
    return {
      version: Number(v.toString()),
      state,
      stored: { base: s.length, delta: d?.length ?? 0, records },
    };
  }

  /**
   * Compare-and-set many states in one round trip, each as a delta record or in full (see
   * MAX_DELTA_RECORDS), up to KEYS_PER_CALL per script call (one on Redis Cluster); returns the
   * entities whose write lost a race and the new versions.
   */
  async saveMany(
    requests: readonly SaveRequest[],
  ): Promise<{ conflicts: string[]; versions: Map<string, number> }> {
    const calls: Command[] = [];
    const written: StoredSize[] = [];
    const modes: ('full' | 'append')[] = [];
    for (let from = 0; from < requests.length; from += this.keysPerCall) {
      const chunk = requests.slice(from, from + this.keysPerCall);
      const keys: string[] = [];
      const args: CasArg[] = [this.plan.view.ttlMs];
      for (const r of chunk) {
        const { mode, bytes, stored } = this.encode(r);
        written.push(stored);
        modes.push(mode);
        keys.push(this.key(r.entity));
        args.push(r.version, asBuffer(bytes), 1 + Math.floor(Math.random() * 1e12), mode);
      }
      calls.push(
        keys.length === 1 && this.keysPerCall === 1
          ? ['tesseraCasState', keys[0]!, ...args]
          : ['tesseraCasStates', keys.length, ...keys, ...args],
      );
    }
    const replies = await sendAll(this.redis, calls);
    const conflicts: string[] = [];
    const versions = new Map<string, number>();
    requests.forEach((r, i) => {
      const [error, value] = replies[Math.floor(i / this.keysPerCall)] ?? [new Error('no reply'), null];
      if (error) throw redisError('write', error, r.entity);
      const version = Array.isArray(value) ? value[i % this.keysPerCall] : undefined;
      if (typeof version !== 'number')
        throw redisError('write', new Error(`cas-state.lua answered ${String(value)}`), r.entity);
      if (version === ScriptResult.VersionConflict) {
        conflicts.push(r.entity);
      } else {
        versions.set(r.entity, version);
        // Counted once saved: a save that lost the compare-and-set wrote nothing.
        if (modes[i] === 'append') this.stats.appended++;
        else this.stats.full++;
        this.cache.put(r.entity, version, r.state, written[i]!, r.reader);
      }
    });
    return { conflicts, versions };
  }

  /** A delta record while the stored records stay within bounds, else the full state. */
  private encode(r: SaveRequest): { mode: 'full' | 'append'; bytes: Uint8Array; stored: StoredSize } {
    const { base, delta, records } = r.stored ?? NOTHING_STORED;
    if (r.version > 0 && base > 0 && records < MAX_DELTA_RECORDS && r.applied && r.applied.length > 0) {
      const bytes = encodeDelta(this.plan, r.applied, r.now);
      if (delta + bytes.length <= base * DELTA_SHARE)
        return { mode: 'append', bytes, stored: { base, delta: delta + bytes.length, records: records + 1 } };
    }
    const bytes = encodeState(this.plan, r.state);
    return { mode: 'full', bytes, stored: { base: bytes.length, delta: 0, records: 0 } };
  }
}

/** A Buffer over the same bytes (Buffer.from(Uint8Array) would copy them). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function redisError(op: string, cause: unknown, entity: string): TesseraError {
  // The cause in the message: a Redis Cluster's MOVED looked like an outage in the log.
  const why = cause instanceof Error ? ` (${cause.message.split('\n')[0]})` : '';
  return new TesseraError(
    'SERVICE_UNAVAILABLE',
    `Redis ${op} failed for entity ${entity}${why}: check TESSERA_REDIS_URL and that Redis is up`,
    {
      retriable: true,
      cause,
      context: { entity },
    },
  );
}
