// OnlineReader.lookup over a stand-in Redis: entities read straight from their bytes, delta records
// included, answer the engine's values, and the decoding path (what the byte reader refuses) still
// names corrupt keys and refuses an as_of the state cannot answer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { OnlineReader } from '../../../services/server/lookup.ts';
import { parseOnlineRequest } from '../../../services/server/request.ts';
import { StateReads } from '../../../services/server/state-reads.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import {
  applyEvent,
  type EngineEvent,
  type EntityState,
  emptyState,
  encodeDelta,
  encodeState,
  planView,
  readFeatures,
} from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { stateKey } from '../../../shared/state-store/redis-state-store.ts';
import { DAY, HOUR, T0 } from '../../support/engine-fixtures.ts';

const definitions = loadDefinitionsFile('definitions/fraud.yaml');
const view = definitions.views[0]!;
const plan = planView(view);
const PREFIX = 'lookup-test';

/** The two fields of each key, as read-states.lua and HMGET answer them. */
function fakeRedis(store: Map<string, [Buffer, Buffer | null]>): Redis {
  const fields = (key: string) => store.get(key) ?? [null, null];
  return {
    tesseraReadStates: true,
    defineCommand() {},
    async hmgetBuffer(key: string) {
      return fields(key);
    },
    async tesseraReadStatesBuffer(_count: number, ...keys: string[]) {
      return keys.flatMap(fields);
    },
  } as unknown as Redis;
}

function event(i: number, ts: number): EngineEvent {
  return {
    ts,
    partition: i % 2,
    offset: i,
    values: plan.columns.map((c) => (c === 'amount' ? ((i * 37) % 500) + 0.25 : `m_${i % 5}`)),
  };
}

describe('online lookup', () => {
  const store = new Map<string, [Buffer, Buffer | null]>();
  const writers = new Map<number, EntityState>();
  // Users 1..6: events over the last 10 days; even users also hold delta records after their base.
  for (let user = 1; user <= 6; user++) {
    const state = emptyState(plan);
    const events = Array.from({ length: 5 + user * 3 }, (_, i) => event(i, T0 - 10 * DAY + i * 7 * HOUR));
    const split = user % 2 === 0 ? events.length - 3 : events.length;
    for (const e of events.slice(0, split)) applyEvent(plan, state, e);
    const base = Buffer.from(encodeState(plan, state));
    const deltas: Buffer[] = [];
    for (const e of events.slice(split)) {
      applyEvent(plan, state, e);
      deltas.push(Buffer.from(encodeDelta(plan, [e])));
    }
    writers.set(user, state);
    store.set(stateKey(PREFIX, view.name, String(user)), [
      base,
      deltas.length > 0 ? Buffer.concat(deltas) : null,
    ]);
  }
  const reader = new OnlineReader(fakeRedis(store), definitions, PREFIX);
  const request = (users: number[], extra: Record<string, unknown> = {}) =>
    parseOnlineRequest(
      { feature_service: 'fraud_model_v1', entities: { user_id: users }, ...extra },
      definitions,
      1000,
    );

  it('answers the engine values whether an entity is read from its bytes or decoded', async () => {
    const users = [1, 2, 3, 4, 5, 6, 99];
    const { body, stats } = await reader.lookup(request(users), T0);
    const parsed = JSON.parse(body) as { results: { values: unknown[]; statuses: string[] }[] };
    plan.features.forEach((f, i) => {
      const column = parsed.results[1 + i]!;
      users.forEach((user, row) => {
        const writer = writers.get(user);
        const expected = writer ? readFeatures(plan, writer, T0)[f.index] : null;
        assert.deepEqual(column.values[row], expected, `${f.def.name} of user ${user}`);
        assert.equal(column.statuses[row], writer ? 'PRESENT' : 'NOT_FOUND');
      });
    });
    assert.equal(stats.decoded, 0, 'users with delta records are read from their bytes too');
    // A single entity (HMGET) takes the same paths.
    const single = await reader.lookup(request([3]), T0);
    assert.equal(single.stats.decoded, 0);
    assert.deepEqual(JSON.parse(single.body).results[1].values, [readFeatures(plan, writers.get(3)!, T0)[0]]);
  });

  it('reads and evaluates a repeated entity once, and answers every row of it', async () => {
    const asked: string[][] = [];
    const counting = fakeRedis(store) as unknown as { tesseraReadStatesBuffer: (...a: unknown[]) => unknown };
    const read = counting.tesseraReadStatesBuffer;
    counting.tesseraReadStatesBuffer = (count: unknown, ...keys: unknown[]) => {
      asked.push(keys as string[]);
      return read(count, ...keys);
    };
    const users = [2, 2, 5, 2, 99, 99, 5];
    const { body } = await new OnlineReader(counting as unknown as Redis, definitions, PREFIX).lookup(
      request(users),
      T0,
    );
    // Once 7 keys; a 3 KB request of 1,000 rows of one hot entity read its state 1,000 times.
    assert.deepEqual(
      asked.map((keys) => keys.length),
      [3],
    );
    const parsed = JSON.parse(body) as { results: { values: unknown[]; statuses: string[] }[] };
    users.forEach((user, row) => {
      const writer = writers.get(user);
      assert.deepEqual(
        parsed.results[1]!.values[row],
        writer ? readFeatures(plan, writer, T0)[0] : null,
        `row ${row}`,
      );
      assert.equal(parsed.results[1]!.statuses[row], writer ? 'PRESENT' : 'NOT_FOUND');
    });
  });

  it('refuses an as_of older than the state answers, from the bytes as when decoded', async () => {
    for (const user of [1, 2]) {
      const asOf = T0 - 20 * DAY;
      await assert.rejects(reader.lookup(request([user], { as_of: asOf }), T0), (error: unknown) => {
        assert.ok(isTesseraError(error, 'AS_OF_OUT_OF_RANGE'), String(error));
        assert.equal(error.context?.field, 'as_of', 'the 400 names the field');
        assert.match(error.message, /^as_of: cannot read view/);
        return true;
      });
    }
  });

  it('moves a read at a "now" behind the state clock up to the read floor, and counts it', async () => {
    const now = T0 - 10 * DAY;
    const { body, stats } = await reader.lookup(request([3]), now);
    assert.equal(stats.clamped, 1);
    const writer = writers.get(3)!;
    const floor = (writer.clock as number) - plan.latenessMs;
    assert.deepEqual(JSON.parse(body).results[1].values, [readFeatures(plan, writer, floor)[0]]);
  });

  it('names the key of bytes that do not decode (STATE_CORRUPT)', async () => {
    const key = stateKey(PREFIX, view.name, '7');
    store.set(key, [Buffer.from([1, 2, 3]), null]);
    try {
      await assert.rejects(reader.lookup(request([7]), T0), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'STATE_CORRUPT');
        assert.match(error.message, new RegExp(key.replace(/[{}]/g, '\\$&')));
        return true;
      });
    } finally {
      store.delete(key);
    }
  });
});

describe('single lookups sharing one Redis call', () => {
  it('fail alone when Redis refuses one key, not every lookup of the same turn', async () => {
    const state = emptyState(plan);
    applyEvent(plan, state, event(1, T0 - HOUR));
    const good = stateKey(PREFIX, view.name, '1');
    const bad = stateKey(PREFIX, view.name, '2');
    const replyError = () =>
      Object.assign(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'), {
        name: 'ReplyError',
      });
    const redis = {
      tesseraReadStates: true,
      defineCommand() {},
      async hmgetBuffer(key: string) {
        if (key === bad) throw replyError();
        return [Buffer.from(encodeState(plan, state)), null];
      },
      async tesseraReadStatesBuffer() {
        throw replyError(); // the script stops at the bad key
      },
    } as unknown as Redis;
    const reads = new StateReads(redis);
    const results = await Promise.allSettled([reads.read([good]), reads.read([bad]), reads.read([good])]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    // A connection error still fails every lookup that shared the call.
    const down = {
      ...redis,
      async tesseraReadStatesBuffer() {
        throw new Error('Connection is closed.');
      },
    } as unknown as Redis;
    const shared = new StateReads(down);
    const failed = await Promise.allSettled([shared.read([good]), shared.read([good])]);
    assert.deepEqual(
      failed.map((r) => r.status),
      ['rejected', 'rejected'],
    );
  });
});
