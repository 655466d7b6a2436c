// Per-entity engine state in Redis: one hash per (view, entity), hash-tagged on the entity so each
// update is single-slot (Redis Cluster works), with a TTL of the view's ttl. Reads are one
// pipelined HMGET per batch; writes are one pipelined compare-and-set (cas-state.lua) per batch.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { decodeState, type EntityState, emptyState, encodeState, type ViewPlan } from '../engine/index.ts';
import { TesseraError } from '../errors.ts';

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
  tesseraCasState(key: string, version: number, blob: Buffer, ttlMs: number): Promise<number>;
}

/** The Redis key of an entity's state: `<prefix>:{<view>:<entity>}`. */
export function stateKey(prefix: string, view: string, entity: string): string {
  return `${prefix}:{${view}:${entity}}`;
}

export class RedisStateStore {
  private readonly redis: CasRedis;

  constructor(
    redis: Redis,
    private readonly plan: ViewPlan,
    private readonly prefix: string,
  ) {
    if (!('tesseraCasState' in redis))
      redis.defineCommand('tesseraCasState', { numberOfKeys: 1, lua: CAS_SCRIPT });
    this.redis = redis as CasRedis;
  }

  key(entity: string): string {
    return stateKey(this.prefix, this.plan.view.name, entity);
  }

  /** Loads the states of many entities in one round trip; missing entities get an empty state. */
  async loadMany(entities: readonly string[]): Promise<Map<string, LoadedState>> {
    const pipeline = this.redis.pipeline();
    for (const entity of entities) pipeline.hmgetBuffer(this.key(entity), 'v', 's');
    const replies = (await pipeline.exec()) ?? [];
    const out = new Map<string, LoadedState>();
    entities.forEach((entity, i) => {
      const [error, value] = replies[i] ?? [new Error('no reply'), null];
      if (error) throw redisError('read', error, entity);
      const [v, s] = value as [Buffer | null, Buffer | null];
      if (v === null || s === null) {
        out.set(entity, { version: 0, state: emptyState(this.plan) });
        return;
      }
      let state: EntityState;
      try {
        state = decodeState(this.plan, new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
      } catch (cause) {
        throw new TesseraError(
          'STATE_CORRUPT',
          `state of ${this.key(entity)} cannot be decoded: delete the key to rebuild it`,
          {
            cause,
            context: { key: this.key(entity) },
          },
        );
      }
      out.set(entity, { version: Number(v.toString()), state });
    });
    return out;
  }

  /** Compare-and-set many states in one round trip; returns the entities whose write lost a race. */
  async saveMany(
    requests: readonly SaveRequest[],
  ): Promise<{ conflicts: string[]; versions: Map<string, number> }> {
    const pipeline = this.redis.pipeline() as unknown as {
      tesseraCasState(key: string, version: number, blob: Buffer, ttlMs: number): void;
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    for (const r of requests) {
      pipeline.tesseraCasState(
        this.key(r.entity),
        r.version,
        Buffer.from(encodeState(this.plan, r.state)),
        this.plan.view.ttlMs,
      );
    }
    const replies = (await pipeline.exec()) ?? [];
    const conflicts: string[] = [];
    const versions = new Map<string, number>();
    requests.forEach((r, i) => {
      const [error, value] = replies[i] ?? [new Error('no reply'), null];
      if (error) throw redisError('write', error, r.entity);
      if (value === ScriptResult.VersionConflict) conflicts.push(r.entity);
      else versions.set(r.entity, Number(value));
    });
    return { conflicts, versions };
  }
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
