// The state blobs of a lookup's entities in one Redis round trip: one call of read-states.lua for
// a batch, and for single entities one command shared by every lookup that arrives in the same
// event-loop turn (one HMGET when it is alone). Measured with ioredis 6: ~5.5 µs of client CPU per
// command, so a batch of 100 HGETs cost ~550 µs before any decoding; the script call costs ~135 µs.
import { readFileSync } from 'node:fs';
import { Cluster, type Redis } from 'ioredis';
import { TesseraError } from '../../shared/errors.ts';
import { type RedisClient, sendAll } from '../../shared/state-store/redis-client.ts';

const READ_STATES = readFileSync(new URL('./read-states.lua', import.meta.url), 'utf8');

type ReadStatesRedis = (Redis | Cluster) & {
  tesseraReadStatesBuffer(count: number, ...keys: string[]): Promise<(Buffer | null)[]>;
};

interface PendingRead {
  key: string;
  resolve: (fields: (Buffer | null)[]) => void;
  reject: (error: unknown) => void;
}

export class StateReads {
  private readonly redis: ReadStatesRedis;
  /** Single-entity reads of this event-loop turn, sent together by flush. */
  private pending: PendingRead[] = [];

  /**
   * `observe`: called with each read's duration in ms (the latency probe,
   * TESSERA_SERVER_LATENCY_PROBE), from sending the command to the caller continuing.
   */
  constructor(
    redis: RedisClient,
    private readonly observe: ((ms: number) => void) | null = null,
  ) {
    // Defined once per client (EVALSHA, loaded on first use).
    if (!('tesseraReadStates' in redis)) redis.defineCommand('tesseraReadStates', { lua: READ_STATES });
    this.redis = redis as ReadStatesRedis;
  }

  /**
   * Two entries per key, in order: its `s` field (the full state) and its `d` field (delta
   * records to replay after it), each null where absent (`s` null: the key does not exist).
   */
  async read(keys: readonly string[]): Promise<(Buffer | null)[]> {
    if (keys.length === 0) return [];
    const started = this.observe === null ? 0 : performance.now();
    const replies = keys.length === 1 ? await this.readOne(keys[0]!) : await this.readMany(keys);
    this.observe?.(performance.now() - started);
    return replies;
  }

  private async readMany(keys: readonly string[]): Promise<(Buffer | null)[]> {
    // On a Cluster the keys sit in different slots, which one script call cannot read: one HMGET
    // each, sent together per node.
    if (this.redis instanceof Cluster) return this.readEach(keys);
    const replies = await this.redis.tesseraReadStatesBuffer(keys.length, ...keys);
    if (!Array.isArray(replies) || replies.length !== 2 * keys.length)
      throw new TesseraError(
        'INTERNAL',
        `read-states.lua answered ${describe(replies)} for ${keys.length} keys; is TESSERA_REDIS_URL a Redis server?`,
      );
    return replies;
  }

  private async readEach(keys: readonly string[]): Promise<(Buffer | null)[]> {
    const replies = await sendAll(
      this.redis,
      keys.map((key) => ['hmgetBuffer', key, 's', 'd'] as const),
    );
    return replies.flatMap(([error, fields]) => {
      if (error) throw error;
      return fields as (Buffer | null)[];
    });
  }

  /**
   * Single lookups that arrive together (a burst read in one poll phase) share one command,
   * flushed after the turn's I/O callbacks as ioredis' auto-pipelining does, but without its
   * Pipeline object per flush: with auto-pipelining, about half the server's young-generation
   * garbage at 5,000 lookups/s, so half its scavenge pauses (measured with the latency probe).
   */
  private readOne(key: string): Promise<(Buffer | null)[]> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ key, resolve, reject }) === 1) setImmediate(this.flush);
    });
  }

  private readonly flush = (): void => {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 1) {
      const only = batch[0]!;
      this.redis.hmgetBuffer(only.key, 's', 'd').then(only.resolve, only.reject);
      return;
    }
    this.readMany(batch.map((read) => read.key)).then(
      (replies) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve([replies[2 * i]!, replies[2 * i + 1]!]);
      },
      (error: unknown) => {
        // Redis answered the shared call with an error (a key of another type under the prefix,
        // say): each lookup reads on its own, so only the bad key's lookup fails. A connection
        // error fails them all, as it would each.
        if (error instanceof Error && error.name === 'ReplyError')
          for (const read of batch)
            this.redis.hmgetBuffer(read.key, 's', 'd').then(read.resolve, read.reject);
        else for (const read of batch) read.reject(error);
      },
    );
  };
}

function describe(reply: unknown): string {
  return Array.isArray(reply) ? `${reply.length} replies` : typeof reply;
}
