// The latency floors of server-bench.ts: a bare node:http server that does only what every HTTP
// lookup server in Node must do. It reads each POST body, parses it as JSON, and answers with a
// fixed response: Tessera's own answer to one single-entity lookup, the same bytes and headers
// shape. It does no auth check and no feature computation.
//
// With a Redis URL (the "Redis floor"), it also reads the looked-up entity's stored state first:
// one HMGET of the same key and fields Tessera's server reads (`<prefix>:{<view>:<entity>}`, s and
// d), over one ioredis connection, and answers once the reply is in. That is the least any lookup
// server in Node that keeps its features in Redis does: the gap between it and Tessera is
// Tessera's own code, the gap between it and the plain floor the Redis round trip.
//
// Loaded beside Tessera's server, at the same rate and by the same loader in the same round, it
// shows what the machine allows at that moment. On this shared 2-core VM, the p99 of the plain
// floor alone at 5,000/s moved from 0.6 to 9.9 ms between three consecutive 10 s runs, so an
// absolute p99 only means something next to it (docs/benchmarks.md, "Online server").
//
//   node --import tsx loadtest/floor-server.ts <port> <response file> [<redis url> <key prefix> <view>]
//   GET /health answers 200 once it listens (and, with Redis, once Redis answered a PING).
import { readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { stateKey } from '../shared/state-store/redis-state-store.ts';

const [portArg, responseFile, redisUrl, keyPrefix, view] = process.argv.slice(2);
if (portArg === undefined || responseFile === undefined || (redisUrl !== undefined && view === undefined)) {
  process.stderr.write('usage: floor-server.ts <port> <response file> [<redis url> <key prefix> <view>]\n');
  process.exit(2);
}
const answer = readFileSync(responseFile);
const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': answer.length };
const redis = redisUrl === undefined ? null : new Redis(redisUrl, { lazyConnect: true });

/** The entity of a single lookup's body, or undefined when the body is not one. */
function entityOf(body: unknown): string | undefined {
  const ids = (body as { entities?: Record<string, unknown> } | null)?.entities;
  const first = ids === undefined || ids === null ? undefined : Object.values(ids)[0];
  return Array.isArray(first) && first.length > 0 ? String(first[0]) : undefined;
}

function respond(res: ServerResponse, body: unknown): void {
  if (redis === null) {
    res.writeHead(200, headers).end(answer);
    return;
  }
  const entity = entityOf(body);
  if (entity === undefined) {
    res.writeHead(400).end();
    return;
  }
  redis.hmgetBuffer(stateKey(keyPrefix!, view!, entity), 's', 'd').then(
    () => res.writeHead(200, headers).end(answer),
    () => res.writeHead(503).end(),
  );
}

const server = createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(req.url === '/health' ? 200 : 404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    respond(res, body);
  });
});
server.keepAliveTimeout = 60_000;
if (redis !== null) await redis.connect();
server.listen(Number(portArg), '127.0.0.1');
process.once('SIGTERM', () =>
  server.close(() => {
    redis?.disconnect();
    process.exit(0);
  }),
);
