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
  newestEventBefore,
  newestEventTime,
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

describe('as_of before the newest event', () => {
  const MIN = 60_000;
  type Answer = { values: unknown[]; statuses: string[]; event_timestamps: string[] };
  /** One user's state in a stand-in Redis; the answer of a lookup at as_of. */
  async function lookupAt(defs: typeof definitions, state: EntityState, asOf: number) {
    const v = defs.views[0]!;
    const p = planView(v);
    const store = new Map([[stateKey(PREFIX, v.name, '1'), [Buffer.from(encodeState(p, state)), null]]]);
    const reader = new OnlineReader(fakeRedis(store as Map<string, [Buffer, Buffer | null]>), defs, PREFIX);
    const request = parseOnlineRequest(
      { feature_service: 'fraud_model_v1', entities: { user_id: [1] }, as_of: asOf },
      defs,
      1000,
    );
    const { body } = await reader.lookup(request, T0 + DAY);
    return (JSON.parse(body) as { results: Answer[] }).results.slice(1);
  }
  const stateOf = (p: typeof plan, times: number[]) => {
    const state = emptyState(p);
    times.forEach((ts, i) => {
      applyEvent(p, state, { ...event(i, ts), values: p.columns.map(() => 5.5) });
    });
    return state;
  };

  it('stamps the newest event before as_of, not a later one, and reads values there', async () => {
    // The audit's case: events at 15:12:10 and 15:17:10.5, as_of 15:13:10 once answered 15:17:10.500Z.
    const first = T0 - 5 * MIN;
    const state = stateOf(plan, [first, T0 + 500]);
    for (const asOf of [T0 - 4 * MIN, T0 + 500]) {
      // At exactly the second event's time it is still outside every window [t - W, t).
      const answer = await lookupAt(definitions, state, asOf);
      plan.features.forEach((f, i) => {
        assert.equal(Date.parse(answer[i]!.event_timestamps[0]!), first, `${f.def.name} at ${asOf}`);
        assert.equal(answer[i]!.statuses[0], 'PRESENT');
        assert.deepEqual(answer[i]!.values[0], readFeatures(plan, state, asOf)[f.index]);
      });
    }
    // After it, the second event is the newest.
    const later = await lookupAt(definitions, state, T0 + 501);
    assert.equal(Date.parse(later[0]!.event_timestamps[0]!), T0 + 500);
  });

  it('answers OUTSIDE_MAX_AGE when the newest event before as_of is older than max_age', async () => {
    const maxAge = view.maxAgeMs!;
    const old = T0 - maxAge - 31 * MIN;
    const answer = await lookupAt(definitions, stateOf(plan, [old, T0]), T0 - 30 * MIN);
    for (const column of answer) {
      assert.equal(column.statuses[0], 'OUTSIDE_MAX_AGE');
      assert.equal(column.values[0], null);
      assert.equal(Date.parse(column.event_timestamps[0]!), old);
    }
  });

  it('answers no event time when the state holds none before as_of', async () => {
    const answer = await lookupAt(definitions, stateOf(plan, [T0 - 10 * MIN, T0]), T0 - 20 * MIN);
    assert.equal(answer[0]!.event_timestamps[0], '1970-01-01T00:00:00Z');
    assert.equal(answer[0]!.values[0], 0, 'the 1h count before any event');
  });

  it('stamps the start of the newest tile before as_of when the events before it are folded', async () => {
    const tiledDefs = loadDefinitionsFile('definitions/fraud.yaml', { mode: 'tiled' });
    const tiled = planView(tiledDefs.views[0]!);
    // 100 events three days ago, then 300 in the last 20 minutes: over the fold threshold, so the
    // old ones are folded into tiles and every raw event is after the as_of.
    const oldTimes = Array.from({ length: 100 }, (_, i) => T0 - 3 * DAY + i * 7 * MIN + 1234);
    const recent = Array.from({ length: 300 }, (_, i) => T0 - 20 * MIN + i * 4000);
    const state = stateOf(tiled, [...oldTimes, ...recent]);
    assert.ok(
      state.tiles.some((group) => group.length > 0),
      'the old events are in tiles',
    );
    const asOf = T0 - 30 * MIN;
    const lastOld = oldTimes.at(-1)!;
    const stamp = newestEventBefore(state, asOf)!;
    // Known by its tile's start: never after the event, at most a tile before it (1 h: the 5-minute
    // tiles keep no window's worth that old).
    assert.ok(stamp <= lastOld && stamp > lastOld - HOUR, `stamp ${stamp}, event ${lastOld}`);
    assert.equal(stamp % (5 * MIN), 0, 'a tile start');
    assert.equal(newestEventBefore(state, T0 + DAY), newestEventTime(state), 'unbounded: the newest');
    const answer = await lookupAt(tiledDefs, state, asOf);
    assert.equal(Date.parse(answer[0]!.event_timestamps[0]!), stamp);
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
