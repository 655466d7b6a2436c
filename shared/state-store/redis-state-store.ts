// Per-entity engine state in Redis: one hash per (view, entity), hash-tagged on the entity so each
// update is single-slot (Redis Cluster works), with a TTL of the view's ttl. Reads are one
// pipelined round trip per batch; writes are one pipelined compare-and-set (cas-state.lua) per batch.
// With a StateCache, a read reuses the decoded state this process saved last without a round trip
// (the common case for a partition this process owns); the compare-and-set on its version catches
// a copy another writer made stale. Only the others are fetched and decoded.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { decodeState, type EntityState, emptyState, encodeState, type ViewPlan } from '../engine/index.ts';
import { TesseraError } from '../errors.ts';
import { StateCache } from './state-cache.ts';

const CAS_SCRIPT = readFileSync(new URL('./cas-state.lua', import.meta.url), 'utf8');

/** Negative results of the Lua scripts, mapped in one place. */
export enum ScriptResult {
  VersionConflict = -1,
}

export interface LoadedState {
  /** 0 when the entity had no state. */
  version: number;
  state: EntityState;
}

export interface SaveRequest {
  entity: string;
  version: number;
  state: EntityState;
}

interface CasRedis extends Redis {
  tesseraCasState(key: string, version: number, blob: Buffer, ttlMs: number, first: number): Promise<number>;
}

/** Running totals over every loadMany of this store, for metrics. */
export interface LoadStats {
  /** Entities taken from the cache: no round trip, nothing decoded (a stale one then loses its write). */
  cached: number;
  /** Entities fetched from Redis and decoded. */
  fetched: number;
}

/** Decodes the `s` field of a state key; a blob that does not decode is STATE_CORRUPT, naming the key. */
export function decodeStoredState(plan: ViewPlan, key: string, blob: Buffer): EntityState {
  try {
    return decodeState(plan, new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength));
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
  private readonly redis: CasRedis;
  readonly stats: LoadStats = { cached: 0, fetched: 0 };

  constructor(
    redis: Redis,
    private readonly plan: ViewPlan,
    private readonly prefix: string,
    /** Decoded states saved by this process; none by default (every load fetches and decodes). */
    private readonly cache: StateCache = new StateCache(0),
  ) {
    if (!('tesseraCasState' in redis))
      redis.defineCommand('tesseraCasState', { numberOfKeys: 1, lua: CAS_SCRIPT });
    this.redis = redis as CasRedis;
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
      const pipeline = this.redis.pipeline();
      for (const entity of missing) pipeline.hmgetBuffer(this.key(entity), 'v', 's');
      const replies = (await pipeline.exec()) ?? [];
      missing.forEach((entity, i) => {
        const [error, value] = replies[i] ?? [new Error('no reply'), null];
        if (error) throw redisError('read', error, entity);
        const [v, s] = value as [Buffer | null, Buffer | null];
        out.set(entity, this.decode(entity, v, s));
      });
    }
    this.stats.cached += entities.length - missing.length;
    this.stats.fetched += missing.length;
    return out;
  }

  private decode(entity: string, v: Buffer | null, s: Buffer | null): LoadedState {
    if (v === null || s === null) return { version: 0, state: emptyState(this.plan) };
    return { version: Number(v.toString()), state: decodeStoredState(this.plan, this.key(entity), s) };
  }

  /** Compare-and-set many states in one round trip; returns the entities whose write lost a race. */
  async saveMany(
    requests: readonly SaveRequest[],
  ): Promise<{ conflicts: string[]; versions: Map<string, number> }> {
    const pipeline = this.redis.pipeline() as unknown as {
      tesseraCasState(key: string, version: number, blob: Buffer, ttlMs: number, first: number): void;
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    for (const r of requests) {
      pipeline.tesseraCasState(
        this.key(r.entity),
        r.version,
        asBuffer(encodeState(this.plan, r.state)),
        this.plan.view.ttlMs,
        1 + Math.floor(Math.random() * 1e12),
      );
    }
    const replies = (await pipeline.exec()) ?? [];
    const conflicts: string[] = [];
    const versions = new Map<string, number>();
    requests.forEach((r, i) => {
      const [error, value] = replies[i] ?? [new Error('no reply'), null];
      if (error) throw redisError('write', error, r.entity);
      if (value === ScriptResult.VersionConflict) {
        conflicts.push(r.entity);
      } else {
        versions.set(r.entity, Number(value));
        this.cache.put(r.entity, Number(value), r.state);
      }
    });
    return { conflicts, versions };
  }
}

/** A Buffer over the same bytes (Buffer.from(Uint8Array) would copy them). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function redisError(op: string, cause: unknown, entity: string): TesseraError {
  return new TesseraError(
    'SERVICE_UNAVAILABLE',
    `Redis ${op} failed for entity ${entity}: check TESSERA_REDIS_URL and that Redis is up`,
    {
      retriable: true,
      cause,
      context: { entity },
    },
  );
}
