// The services' Redis client: one server, or a Redis Cluster (TESSERA_REDIS_CLUSTER), and the one
// way every multi-key step talks to either in a round trip per node (sendAll).
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redisOptions } from '../config/clients.ts';
import type { Config } from '../config/schema.ts';

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
export function connectRedis(config: Config, extra: Partial<RedisOptions> = {}): RedisClient {
  const options: RedisOptions = { ...redisOptions(config), ...extra };
  if (!config.redisCluster) return new Redis(options);
  const { host, port, db: _db, enableAutoPipelining: _auto, enableOfflineQueue, ...perNode } = options;
  return new Cluster([{ host: host ?? '127.0.0.1', port: port ?? 6379 }], {
    redisOptions: perNode,
    enableAutoPipelining: true,
    enableOfflineQueue: enableOfflineQueue ?? true,
    slotsRefreshTimeout: 2000,
  });
}

/**
 * Sends the commands in one round trip per Redis node and answers `[error, reply]` per command,
 * in order (a failed command does not reject the others). On one server: a pipeline. On a
 * Cluster, keys of different hash slots live on different nodes and a pipeline must stay on one,
 * so each command goes on its own and the client's auto-pipelining batches them per node (and
 * follows MOVED/ASK redirections command by command).
 */
export async function sendAll(
  redis: RedisClient,
  commands: readonly Command[],
): Promise<[Error | null, unknown][]> {
  if (commands.length === 0) return [];
  if (redis instanceof Cluster) {
    const target = redis as unknown as Dispatch;
    return Promise.all(
      commands.map(([method, ...args]) =>
        (target[method]!(...args) as Promise<unknown>).then(
          (reply): [Error | null, unknown] => [null, reply],
          (error: unknown): [Error | null, unknown] => [asError(error), null],
        ),
      ),
    );
  }
  const pipeline = redis.pipeline();
  const target = pipeline as unknown as Dispatch;
  for (const [method, ...args] of commands) target[method]!(...args);
  return (
    (await pipeline.exec()) ?? commands.map((): [Error | null, unknown] => [new Error('no reply'), null])
  );
}

/** The nodes that hold keys: the cluster's masters, or the one server. */
export function keyNodes(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
