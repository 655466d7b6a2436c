// `tessera keys` on real Redis, one server and the stack's three-master cluster: states written by
// the state store under the current definitions, under changed ones (the same view, another
// layout), damaged ones, a view no longer defined, keys under the prefix that are not states, and
// another prefix's states. The report counts each kind exactly; a dry run deletes nothing; the
// deletes remove exactly what the flags name, and leave every current state readable.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { loadConfig } from '../../shared/config/index.ts';
import type { Definitions } from '../../shared/definitions/schema.ts';
import {
  applyEvent,
  emptyState,
  encodeState,
  planView,
  toEngineEvent,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { connectRedis, keyNodes, type RedisClient, sendAll } from '../../shared/state-store/redis-client.ts';
import { RedisStateStore, stateKey } from '../../shared/state-store/redis-state-store.ts';
import { changedDefinitions } from '../support/definitions-change.ts';

const run = promisify(execFile);
const VIEW = 'user_transaction_features';
const T0 = Date.now() - 3_600_000;

interface Report {
  views: {
    view: string;
    defined: boolean;
    counts: Record<string, number>;
    deleted: number;
  }[];
  untagged: number;
  seen: number;
  deleted: number;
  skipped: number;
}

/** Three in-order events of `user`, as the engine applies them, folded into a state of `plan`. */
function stateOf(plan: ViewPlan, user: number) {
  const state = emptyState(plan);
  for (let i = 0; i < 3; i++) {
    const ts = T0 + i * 60_000 + user;
    const record = { user_id: user, event_timestamp: ts, amount: 10 + user + i, merchant_id: `m${i}` };
    applyEvent(plan, state, toEngineEvent(plan, record, ts, 0, user * 10 + i));
  }
  return state;
}

async function saveStates(redis: RedisClient, definitions: Definitions, prefix: string, users: number[]) {
  const plan = planView(definitions.views[0]!);
  const store = new RedisStateStore(redis, plan, prefix);
  const { conflicts } = await store.saveMany(
    users.map((u) => ({ entity: String(u), version: 0, state: stateOf(plan, u) })),
  );
  assert.deepEqual(conflicts, []);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function keysCli(env: Record<string, string>, ...args: string[]) {
  return run(process.execPath, ['--import', 'tsx', 'services/keys/main.ts', ...args], {
    env: { ...process.env, ...env },
  });
}

async function report(env: Record<string, string>, ...args: string[]): Promise<Report> {
  const { stdout } = await keysCli(env, '--json', '--quiet', ...args);
  return JSON.parse(stdout) as Report;
}

function viewOf(r: Report, view: string) {
  const v = r.views.find((x) => x.view === view);
  assert.ok(v, `view ${view} in the report: ${JSON.stringify(r.views)}`);
  return v;
}

async function existing(redis: RedisClient, keys: string[]): Promise<number> {
  const replies = await sendAll(
    redis,
    keys.map((k) => ['exists', k] as const),
  );
  return replies.reduce((n, [error, reply]) => (error ? n : n + Number(reply)), 0);
}

for (const cluster of [false, true]) {
  describe(`tessera keys on ${cluster ? 'the Redis Cluster' : 'one Redis'}`, { timeout: 120_000 }, () => {
    const prefix = `it-keys-${randomUUID().slice(0, 8)}`;
    const other = `${prefix}-other`;
    const env: Record<string, string> = { TESSERA_REDIS_KEY_PREFIX: prefix, TESSERA_LOG_LEVEL: 'warn' };
    let redis: RedisClient;
    const { before: current, after: changed } = changedDefinitions();
    const key = (view: string, entity: number | string) => stateKey(prefix, view, String(entity));

    before(async () => {
      if (cluster) {
        const url = process.env.TESSERA_TEST_REDIS_CLUSTER_URL;
        assert.ok(
          url,
          'TESSERA_TEST_REDIS_CLUSTER_URL is not set: eval "$(scripts/stack env)" after scripts/stack start',
        );
        env.TESSERA_REDIS_URL = url;
        env.TESSERA_REDIS_CLUSTER = 'true';
      }
      redis = connectRedis(loadConfig({ argv: [], env: { ...process.env, ...env } }));
      if (cluster) assert.ok(redis instanceof Cluster);
      await saveStates(redis, current, prefix, range(1, 30));
      await saveStates(redis, changed, prefix, range(31, 45));
      await saveStates(redis, current, other, range(1, 5));
      // Damaged: a current state cut short after its header, and one whose first byte (the format
      // version) is no version Tessera wrote: corrupt, not another layout.
      const plan = planView(current.views[0]!);
      const bytes = Buffer.from(encodeState(plan, stateOf(plan, 46)));
      const badVersion = Buffer.from(bytes);
      badVersion[0] = 0x68;
      const replies = await sendAll(redis, [
        ...[46, 47, 48].map((u) => ['hset', key(VIEW, u), 'v', '7', 's', bytes.subarray(0, 7)] as const),
        ['hset', key(VIEW, 49), 'v', '2', 's', badVersion],
        ...range(1, 10).map((u) => ['hset', key('retired_view', u), 'v', '3', 's', bytes] as const),
        // A hash with a `v` but no state under a view tag no definitions have: not ours.
        ['hset', key('retired_view', 'session'), 'v', '1', 'user', 'bob'],
        ['set', key(VIEW, 'not-a-hash'), 'x'],
        ['hset', key(VIEW, 'no-version'), 'x', '1'],
        ['set', `${prefix}:{no-entity}`, 'x'],
      ]);
      for (const [error] of replies) assert.equal(error, null);
    });

    after(async () => {
      for (const node of keyNodes(redis)) {
        const keys = [...(await node.keys(`${prefix}:*`)), ...(await node.keys(`${other}:*`))];
        if (keys.length > 0)
          await sendAll(
            redis,
            keys.map((k) => ['del', k] as const),
          );
      }
      redis.disconnect();
    });

    it('counts every kind of key under the prefix, and only those', async () => {
      const r = await report(env);
      assert.equal(r.seen, 30 + 15 + 4 + 10 + 1 + 3);
      assert.equal(r.untagged, 1);
      assert.deepEqual(viewOf(r, VIEW), {
        view: VIEW,
        defined: true,
        counts: { current: 30, 'other-layout': 15, corrupt: 4, 'undefined-view': 0, foreign: 2 },
        deleted: 0,
      });
      assert.deepEqual(viewOf(r, 'retired_view').counts, {
        current: 0,
        'other-layout': 0,
        corrupt: 0,
        'undefined-view': 10,
        foreign: 1,
      });
      assert.equal(viewOf(r, 'retired_view').defined, false);
      assert.equal(r.deleted, 0);
    });

    it('has plan --redis exit 3 for states the definitions would refuse, though the files are the same', async () => {
      const file = 'definitions/fraud.yaml';
      const args = ['--import', 'tsx', 'shared/definitions/cli.ts', 'plan', file, file, '--redis'];
      const options = { env: { ...process.env, ...env } };
      const failed = await run(process.execPath, [...args, '--json'], options).then(
        () => assert.fail('plan exited 0 with refused states in Redis'),
        (error: { code: number; stdout: string }) => error,
      );
      assert.equal(failed.code, 3);
      const json = JSON.parse(failed.stdout) as { rebuildNeeded: boolean; redis: { refused: number } };
      assert.equal(json.redis.refused, 15 + 4);
      assert.equal(json.rebuildNeeded, true);
      const text = await run(process.execPath, args, options).catch((error: { stdout: string }) => error);
      assert.match(text.stdout, /15 they would refuse \(other layout\), 4 corrupt/);
      assert.match(text.stdout, /the ingestor exits 1 \(STATE_CORRUPT\) at the first refused state/);
      assert.match(text.stdout, /rebuild needed \(exit 3\)/);
    });

    it('deletes nothing in a dry run, and says what it would delete', async () => {
      const r = await report(
        env,
        '--dry-run',
        '--delete-other-layout',
        '--delete-undefined-views',
        '--delete-corrupt',
      );
      assert.equal(r.deleted, 15 + 10 + 4);
      const all = [
        ...range(1, 49).map((u) => key(VIEW, u)),
        ...range(1, 10).map((u) => key('retired_view', u)),
      ];
      assert.equal(await existing(redis, all), all.length);
    });

    it('deletes the states of other layouts, retired views and damage, and nothing else', async () => {
      const { stdout } = await keysCli(
        env,
        '--delete-other-layout',
        '--delete-undefined-views',
        '--delete-corrupt',
      );
      assert.match(stdout, /deleted 29 keys; 0 left/);
      assert.equal(
        await existing(
          redis,
          range(31, 49).map((u) => key(VIEW, u)),
        ),
        0,
      );
      assert.equal(
        await existing(
          redis,
          range(1, 10).map((u) => key('retired_view', u)),
        ),
        0,
      );
      assert.equal(
        await existing(redis, [
          key(VIEW, 'not-a-hash'),
          key(VIEW, 'no-version'),
          key('retired_view', 'session'),
          `${prefix}:{no-entity}`,
        ]),
        4,
      );
      assert.equal(
        await existing(
          redis,
          range(1, 5).map((u) => stateKey(other, VIEW, String(u))),
        ),
        5,
      );
      // The current states are all there and still read as they were written.
      const plan = planView(current.views[0]!);
      const loaded = await new RedisStateStore(redis, plan, prefix).loadMany(range(1, 30).map(String));
      assert.equal(loaded.size, 30);
      for (const [entity, { version, state }] of loaded) {
        assert.ok(version > 0, `entity ${entity} has its state`);
        assert.deepEqual(encodeState(plan, state), encodeState(plan, stateOf(plan, Number(entity))));
      }
      const r = await report(env);
      assert.deepEqual(viewOf(r, VIEW).counts, {
        current: 30,
        'other-layout': 0,
        corrupt: 0,
        'undefined-view': 0,
        foreign: 2,
      });
    });

    it('deletes every state of a named view, current ones too, but no foreign key', async () => {
      const r = await report(env, '--delete-view', VIEW);
      assert.equal(r.deleted, 30);
      assert.equal(
        await existing(
          redis,
          range(1, 30).map((u) => key(VIEW, u)),
        ),
        0,
      );
      assert.equal(await existing(redis, [key(VIEW, 'not-a-hash'), key(VIEW, 'no-version')]), 2);
      assert.equal(
        await existing(
          redis,
          range(1, 5).map((u) => stateKey(other, VIEW, String(u))),
        ),
        5,
      );
    });
  });
}

describe('delete-unchanged.lua', () => {
  it('deletes a state only at the version it was read at', async () => {
    const redis = connectRedis(loadConfig({ argv: [], env: process.env }));
    const k = `it-keys-lua-${randomUUID().slice(0, 8)}:{v:1}`;
    try {
      const lua = readFileSync('services/keys/delete-unchanged.lua', 'utf8');
      await redis.hset(k, 'v', '5', 's', 'x');
      assert.equal(await redis.eval(lua, 1, k, '4'), 0, 'a newer write is kept');
      assert.equal(await redis.exists(k), 1);
      assert.equal(await redis.eval(lua, 1, k, '5'), 1);
      assert.equal(await redis.exists(k), 0);
      assert.equal(await redis.eval(lua, 1, k, '5'), 0, 'a missing key is no error');
    } finally {
      await redis.del(k);
      redis.disconnect();
    }
  });
});

describe('tessera keys refuses what it cannot do', () => {
  it('exits 1 naming TESSERA_REDIS_URL when Redis is not there', async () => {
    await assert.rejects(
      keysCli({ TESSERA_REDIS_URL: 'redis://127.0.0.1:1' }),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 1);
        assert.match(
          error.stderr,
          /cannot reach Redis at redis:\/\/127\.0\.0\.1:1 .*ECONNREFUSED.*TESSERA_REDIS_URL/,
        );
        return true;
      },
    );
  });

  it('says when a view to delete has no states (a misspelt name)', async () => {
    const { stderr } = await keysCli(
      { TESSERA_REDIS_KEY_PREFIX: `it-keys-${randomUUID().slice(0, 8)}` },
      '--delete-view',
      'user_transaction_feature',
    );
    assert.match(stderr, /--delete-view user_transaction_feature: no states of that view/);
  });

  it('exits 2 on an unknown flag and on a dry run that deletes nothing', async () => {
    for (const args of [['--delete-everything'], ['--dry-run']]) {
      await assert.rejects(keysCli({}, ...args), (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 2, args.join(' '));
        assert.match(error.stderr, /usage: npx tsx services\/keys\/main\.ts/);
        return true;
      });
    }
  });
});
