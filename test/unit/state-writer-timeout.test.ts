// The state writers' Redis client (ingestor, flusher) against a Redis that stops answering but
// keeps the connection open: a save and a PING fail within the command timeout, as a retriable
// error the ingestor retries in place. They used to stay pending for good (found by an audit).
// The "Redis" is a TCP server that answers the client's ready check (INFO) and then nothing.
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { applyEvent, emptyState, planView, toEngineEvent } from '../../shared/engine/index.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { connectRedis, STATE_WRITER_OPTIONS } from '../../shared/state-store/redis-client.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';

describe('state writer client, Redis silent after the handshake', () => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    let answered = false;
    socket.on('data', (data) => {
      if (!answered && /info/i.test(data.toString())) {
        answered = true;
        const body = 'loading:0\r\n';
        socket.write(`$${body.length}\r\n${body}\r\n`);
      }
    });
  });
  let url = '';
  before(async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    url = `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });

  it('fails a save and a PING within the command timeout, retriable', async () => {
    const config = loadConfig({ argv: [], env: { TESSERA_REDIS_URL: url } });
    const redis = connectRedis(config, STATE_WRITER_OPTIONS);
    redis.on('error', () => undefined);
    try {
      const plan = planView(loadDefinitionsFile('definitions/fraud.yaml').views[0]!);
      const state = emptyState(plan);
      const ts = Date.UTC(2026, 0, 1);
      const record = { user_id: 1, event_timestamp: ts, amount: 5, merchant_id: 'm1' };
      const event = toEngineEvent(plan, record, ts, 0, 0);
      applyEvent(plan, state, event);
      const store = new RedisStateStore(redis, plan, 'unit-silent');
      const started = performance.now();
      const outcome = await Promise.race([
        store.saveMany([{ entity: '1', version: 0, state, applied: [event] }]).then(
          () => 'saved',
          (error: unknown) => error,
        ),
        new Promise((resolve) =>
          setTimeout(() => resolve('still pending'), 3 * STATE_WRITER_OPTIONS.commandTimeout),
        ),
      ]);
      const waited = performance.now() - started;
      assert.ok(isTesseraError(outcome, 'SERVICE_UNAVAILABLE'), `the save: ${String(outcome)}`);
      assert.equal(outcome.retriable, true);
      assert.match(outcome.message, /timed out/i);
      assert.ok(
        waited >= STATE_WRITER_OPTIONS.commandTimeout - 50,
        `failed after ${waited} ms, not before the timeout`,
      );
      await assert.rejects(redis.ping(), /timed out/i);
    } finally {
      redis.disconnect();
    }
  });
});
