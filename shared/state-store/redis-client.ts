// The services' Redis client: one server, or a Redis Cluster (TESSERA_REDIS_CLUSTER), and the one
// way every multi-key step talks to either in a round trip per node (sendAll).
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redisOptions } from '../config/clients.ts';
import type { Config } from '../config/schema.ts';
import { TesseraError } from '../errors.ts';

export type RedisClient = Redis | Cluster;

/** One command by its ioredis method name: `hmgetBuffer`, `publish`, a defineCommand'd script... */
export type Command = readonly [method: string, ...args: (string | number | Buffer)[]];

type Dispatch = Record<string, (...args: (string | number | Buffer)[]) => unknown>;

/**
 * Connects as the configuration says. With `redisCluster`, TESSERA_REDIS_URL names one node (the
 * client learns the others and the slot map from it) and `extra` applies to each node's
 * connection. A Cluster client always auto-pipelines: the per-key commands of sendAll then leave
 * in one write per node. `enableOfflineQueue` is a cluster-wide option there.
 */
/**
 * Options of the state writers' clients (the ingestor, the flusher): a command fails after two
 * reconnect attempts, or when no answer has come in 5 s. Without the timeout, a Redis that stopped
 * answering but kept the connection open (paused, swapping, a network black hole) left a batch's
 * save, and `/ready`'s PING, pending for good: no error, so no retry in place, no heartbeat, no
 * 503. A save that timed out after running is safe to send again: it meets a newer version (a
 * conflict), and its events are duplicates on the reload.
 */
export const STATE_WRITER_OPTIONS = {
  maxRetriesPerRequest: 2,
  commandTimeout: 5000,
} as const satisfies Partial<RedisOptions>;

export function connectRedis(config: Config, extra: Partial<RedisOptions> = {}): RedisClient {
  const options: RedisOptions = { ...redisOptions(config), ...extra };
  if (!config.redisCluster) return new Redis(options);
  const { host, port, db: _db, enableAutoPipelining: _auto, enableOfflineQueue, ...perNode } = options;
  return new Cluster([{ host: host ?? '127.0.0.1', port: port ?? 6379 }], {
    redisOptions: perNode,
    enableAutoPipelining: true,
    enableOfflineQueue: enableOfflineQueue ?? true,
    slotsRefreshTimeout: 2000,
    // A safety net beside the refresh sendAll does on MOVED: a client that never meets a MOVED
    // (a flusher scanning its known masters) still learns a changed cluster.
    slotsRefreshInterval: 5000,
  });
}

/**
 * Errors of a command the cluster did not run because its slot is (being) served elsewhere:
 * MOVED (moved: the client's slot map is stale), ASK and TRYAGAIN (migrating now), CLUSTERDOWN.
 * Sent again, it is run once. Also retriable for the callers (isClusterRedirect).
 */
const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;
/** Rounds of sending redirected commands again (the waits add up to 0.75 s) before answering. */
const REDIRECT_ROUNDS = 5;

/** True for a reply error a cluster gives while its slots move (the command was not run). */
export function isClusterRedirect(error: unknown): boolean {
  return error instanceof Error && REDIRECTED.test(error.message);
}

/**
 * Sends the commands in one round trip per Redis node and answers `[error, reply]` per command,
 * in order (a failed command does not reject the others). On one server: a pipeline. On a
 * Cluster, keys of different hash slots live on different nodes and a pipeline must stay on one,
 * so each command goes on its own and the client's auto-pipelining batches them per node.
 *
 * Redirections are followed here: ioredis retries a node's auto-pipeline on MOVED only when every
 * error in it is the same and every command read-only, so after a resharding the writes (and any
 * batch spanning two moved slots) got MOVED for good, the slot map was never refreshed, and the
 * ingestor retried one batch forever. A MOVED now refreshes the slot map and the redirected
 * commands go again; ASK and TRYAGAIN (a slot migrating now) wait a little and go again; what
 * still fails after REDIRECT_ROUNDS is answered, retriable for the callers.
 */
export async function sendAll(
  redis: RedisClient,
  commands: readonly Command[],
): Promise<[Error | null, unknown][]> {
  if (commands.length === 0) return [];
  if (redis instanceof Cluster) {
    const results = await sendEach(redis, commands);
    for (let round = 1; round <= REDIRECT_ROUNDS; round++) {
      const again = results.flatMap(([error], i) => (isClusterRedirect(error) ? [i] : []));
      if (again.length === 0) break;
      if (again.some((i) => results[i]![0]!.message.startsWith('MOVED'))) await refreshSlots(redis);
      else await new Promise((resolve) => setTimeout(resolve, 50 * round));
      const retried = await sendEach(
        redis,
        again.map((i) => commands[i]!),
      );
      again.forEach((i, k) => {
        results[i] = retried[k]!;
      });
    }
    return results;
  }
  const pipeline = redis.pipeline();
  const target = pipeline as unknown as Dispatch;
  for (const [method, ...args] of commands) target[method]!(...args);
  return (
    (await pipeline.exec()) ?? commands.map((): [Error | null, unknown] => [new Error('no reply'), null])
  );
}

/** Each command on its own (auto-pipelined per node), `[error, reply]` per command. */
function sendEach(cluster: Cluster, commands: readonly Command[]): Promise<[Error | null, unknown][]> {
  const target = cluster as unknown as Dispatch;
  return Promise.all(
    commands.map(([method, ...args]) =>
      (target[method]!(...args) as Promise<unknown>).then(
        (reply): [Error | null, unknown] => [null, reply],
        (error: unknown): [Error | null, unknown] => [asError(error), null],
      ),
    ),
  );
}

/** The slot map asked again of the cluster (its nodes re-learned); an error only when all fail. */
function refreshSlots(cluster: Cluster): Promise<void> {
  return new Promise((resolve, reject) =>
    cluster.refreshSlotsCache((error) => (error ? reject(error) : resolve())),
  );
}

/** The nodes that hold keys: the cluster's masters as the client knows them, or the one server. */
export function keyNodes(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

/**
 * Every node that holds keys, checked: on a Cluster the slot map is asked again first, and every
 * one of the 16,384 slots must have a master the client is connected to. ioredis drops a node
 * from its pool when its connection ends and learns it again only from a refresh: a flusher
 * scanning `keyNodes` after a master's restart left out its third of the entities, without an
 * error, in every snapshot after.
 */
export async function allKeyNodes(redis: RedisClient): Promise<Redis[]> {
  if (!(redis instanceof Cluster)) return [redis];
  await refreshSlots(redis);
  const masters = new Map(redis.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
  const needed = new Set<string>();
  for (let slot = 0; slot < 16384; slot++) {
    const master = redis.slots[slot]?.[0];
    if (master === undefined)
      throw new TesseraError('SERVICE_UNAVAILABLE', `Redis Cluster slot ${slot} has no master`, {
        retriable: true,
      });
    needed.add(master);
  }
  // Known, not necessarily connected yet (nodes connect on their first command): a master that
  // cannot be reached fails the scan that follows, loudly.
  const missing = [...needed].filter((key) => !masters.has(key));
  if (missing.length > 0)
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `Redis Cluster master ${missing.join(', ')} is not known to the client; the cluster's keys cannot all be read`,
      { retriable: true },
    );
  return [...needed].map((key) => masters.get(key)!);
}

/**
 * The keys matching a SCAN pattern, a page (up to ~`count`) at a time, from every node that holds
 * keys (allKeyNodes: on a Cluster every slot's master, checked). A key may come twice (SCAN's own
 * guarantee during a rehash); keys written or deleted during the scan may or may not come.
 */
export async function* scanKeys(redis: RedisClient, pattern: string, count = 1000): AsyncGenerator<string[]> {
  for (const node of await allKeyNodes(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== '0');
  }
}

/** `s` with the glob characters of SCAN's MATCH (`* ? [ ] \`) escaped, to match them literally. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
