// The online server against real Redis, with state written by the real ingestor from real Kafka:
// values equal an independent naive reference at read time (windows decay without new events),
// Feast's response layout and statuses, auth on by default, bad requests named, /push through Kafka.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { StateReads } from '../../services/server/state-reads.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { stateKey } from '../../shared/state-store/redis-state-store.ts';
import {
  cleanupRun,
  createSourceTopic,
  fraudMessages,
  type IngestorProcess,
  newTestRun,
  recentFraudEvents,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { naiveFraudValue, sameValue } from '../support/naive-reference.ts';
import { type ServerProcess, startServer, twoEventPush } from '../support/server-process.ts';
import { stopAfter } from '../support/stop-after.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TOKEN = 'test-token-0123456789abcdef';
const VIEW = 'user_transaction_features';

interface FeastResponse {
  metadata: { feature_names: string[] };
  results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[];
}

describe('online server', { timeout: 180_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const definitions = loadDefinitionsFile(run.config.definitions);
  const view = definitions.views.find((v) => v.name === VIEW)!;
  const now = Date.now();
  // 40 users over the last 20 days, the newest event a minute ago.
  const { events, users } = recentFraudEvents(now, { events: 3000, users: 40, seed: 7 });
  // And one user idle for the last 7 days (its 7-day averages are the default 0.0), which the
  // generated users, all active this week, do not give.
  const idleUser = Math.max(...users) + 1;
  for (const [days, amount] of [
    [12, 25.5],
    [9, 40],
  ] as const)
    events.push({
      user_id: idleUser,
      event_timestamp: now - days * 86_400_000,
      amount,
      merchant_id: 'm_idle',
      partition: 0,
      offset: 0,
    });
  users.push(idleUser);
  let ingestor: IngestorProcess;
  let server: ServerProcess;
  let url: string;

  const post = async (path: string, body: unknown, token: string | null = TOKEN, headers = {}) => {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
  };

  const expected = (user: number, featureName: string, t: number): unknown =>
    naiveFraudValue(events, user, view.features.find((f) => f.name === featureName)!, t);

  before(async () => {
    await createSourceTopic(run, 3);
    const producer = run.kafka.producer();
    await producer.connect();
    ingestor = startIngestor(run);
    await ingestor.ready;
    // Most events first, then the rest in small rounds: the ingestor then appends delta records to
    // the states it wrote in full, and the server must replay them.
    const messages = fraudMessages(events);
    for (const [from, to] of [
      [0, 2400],
      [2400, 2600],
      [2600, 2800],
      [2800, messages.length],
    ]) {
      await producer.send({ topic: run.topic, messages: messages.slice(from, to) });
      await waitForCaughtUp(run, run.topic, 60_000);
    }
    await producer.disconnect();
    server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
    url = await server.url;
  });

  after(async () => {
    ingestor?.child.kill('SIGTERM');
    await ingestor?.exited;
    await server?.stop();
    await cleanupRun(run);
  });

  it('reads states the ingestor wrote as delta records', async () => {
    const keys = users.map((user) => stateKey(run.id, VIEW, String(user)));
    const withRecords = (await Promise.all(keys.map((k) => run.redis.hexists(k, 'd')))).filter(Boolean);
    assert.ok(
      withRecords.length >= 5,
      `only ${withRecords.length} of ${keys.length} states hold delta records`,
    );
  });

  it('answers every user and feature equal to the naive reference, in Feast layout', async () => {
    const t = now; // as_of pins the read time, so the expectation cannot race the clock
    const refs = view.features.map((f) => f.ref);
    const { status, json, headers } = await post('/get-online-features', {
      features: refs,
      entities: { user_id: users },
      as_of: new Date(t).toISOString(),
    });
    assert.equal(status, 200, JSON.stringify(json));
    assert.ok(headers.get('x-request-id'));
    const body = json as unknown as FeastResponse;
    assert.deepEqual(body.metadata.feature_names, ['user_id', ...view.features.map((f) => f.name)]);
    assert.deepEqual(body.results[0]!.values, users, 'entity column echoed first');
    let compared = 0;
    const newestOf = (user: number) =>
      Math.max(...events.filter((e) => e.user_id === user).map((e) => e.event_timestamp));
    view.features.forEach((f, fi) => {
      const column = body.results[fi + 1]!;
      users.forEach((user, row) => {
        if (newestOf(user) < t - view.maxAgeMs!) {
          assert.equal(column.statuses[row], 'OUTSIDE_MAX_AGE', `${f.name} of user ${user}`);
          assert.equal(column.values[row], null);
          return;
        }
        assert.equal(column.statuses[row], 'PRESENT', `${f.name} of user ${user}`);
        const want = expected(user, f.name, t);
        assert.ok(
          sameValue(f.aggregation, column.values[row], want),
          `${f.name} of user ${user}: server ${column.values[row]}, reference ${want}`,
        );
        compared++;
      });
    });
    assert.ok(compared >= (users.length * view.features.length) / 2, `only ${compared} values were PRESENT`);
    // event_timestamps: the user's newest event, RFC 3339 like Feast.
    const newest = Math.max(...events.filter((e) => e.user_id === users[0]).map((e) => e.event_timestamp));
    assert.equal(Date.parse(body.results[1]!.event_timestamps[0]!), newest);
  });

  it('stamps an as_of lookup with the newest event before as_of, never a later one', async () => {
    // A user with at least two events within the allowed lateness of its newest (an as_of earlier
    // than that is refused): read between the last two, the last one once leaked into the answer.
    const lateness = view.allowedLatenessMs;
    const times = (user: number) =>
      [...new Set(events.filter((e) => e.user_id === user).map((e) => e.event_timestamp))].sort(
        (a, b) => a - b,
      );
    const user = users.find((u) => {
      const t = times(u);
      return t.length >= 2 && t.at(-1)! - t.at(-2)! > 1 && t.at(-1)! - t.at(-2)! < lateness;
    });
    assert.ok(user !== undefined, 'a user with two events within the lateness');
    const [previous, newest] = times(user).slice(-2) as [number, number];
    const asOf = previous + Math.floor((newest - previous) / 2);
    const { status, json } = await post('/get-online-features', {
      features: [`${VIEW}:transaction_count_1h`],
      entities: { user_id: [user] },
      as_of: asOf,
    });
    assert.equal(status, 200, JSON.stringify(json));
    const body = json as unknown as FeastResponse;
    assert.equal(
      Date.parse(body.results[1]!.event_timestamps[0]!),
      previous,
      `as_of ${asOf}, newest ${newest}`,
    );
    assert.ok(
      sameValue('count', body.results[1]!.values[0], expected(user, 'transaction_count_1h', asOf)),
      'the value at as_of',
    );
  });

  it("reads a batch with read-states.lua: each key's state and delta bytes in order, null where missing", async () => {
    const reads = new StateReads(run.redis);
    const [a, b] = [users[0]!, users[1]!].map((user) => stateKey(run.id, VIEW, String(user)));
    const missing = stateKey(run.id, VIEW, '999999999');
    // Delta bytes on b, so both fields are read (they need not decode here); b's own come back after.
    const own = await run.redis.hgetBuffer(b!, 'd');
    await run.redis.hset(b!, 'd', Buffer.from([0xd1, 1, 2, 3]));
    const [sa, da] = await run.redis.hmgetBuffer(a!, 's', 'd');
    const [sb, db] = await run.redis.hmgetBuffer(b!, 's', 'd');
    assert.ok(sa && sa.length > 0 && sb, 'the ingestor wrote both states');
    assert.deepEqual(db, Buffer.from([0xd1, 1, 2, 3]));
    try {
      assert.deepEqual(await reads.read([a!, missing, b!]), [sa, da, null, null, sb, db]);
      assert.deepEqual(await reads.read([missing, missing]), [null, null, null, null]);
      assert.deepEqual(await reads.read([b!]), [sb, db]);
    } finally {
      if (own === null) await run.redis.hdel(b!, 'd');
      else await run.redis.hset(b!, 'd', own);
    }
  });

  it('sends the single reads of one event-loop turn as one command, each answered with its own fields', async () => {
    const reads = new StateReads(run.redis);
    const keys = [
      ...users.slice(0, 5).map((user) => stateKey(run.id, VIEW, String(user))),
      stateKey(run.id, VIEW, '999999999'),
    ];
    const want = await Promise.all(keys.map((key) => run.redis.hmgetBuffer(key, 's', 'd')));
    assert.ok(want.slice(0, 5).every(([state]) => state != null && state.length > 0));
    // Count the commands this client sends while the reads run (instrumentation, not a stand-in).
    const client = run.redis as unknown as Record<string, (...args: unknown[]) => unknown>;
    const counted = { tesseraReadStatesBuffer: 0, hmgetBuffer: 0 };
    const originals = new Map<string, (...args: unknown[]) => unknown>();
    for (const name of Object.keys(counted) as (keyof typeof counted)[]) {
      const original = client[name]!;
      originals.set(name, original);
      client[name] = (...args: unknown[]) => {
        counted[name]++;
        return original.apply(run.redis, args);
      };
    }
    try {
      assert.deepEqual(await Promise.all(keys.map((key) => reads.read([key]))), want);
      assert.deepEqual(
        counted,
        { tesseraReadStatesBuffer: 1, hmgetBuffer: 0 },
        'one script call for six reads',
      );
      assert.deepEqual(await reads.read([keys[0]!]), want[0], 'a lone read');
      assert.deepEqual(counted, { tesseraReadStatesBuffer: 1, hmgetBuffer: 1 }, 'a lone read is one HMGET');
    } finally {
      for (const [name, original] of originals) client[name] = original;
    }
  });

  it('serves the latency probe only when it is on, behind auth, counting the lookups it saw', async () => {
    const off = await fetch(`${url}/debug/latency`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(off.status, 404, 'off by default');
    const probed = startServer({
      ...run.env,
      TESSERA_AUTH_TOKEN: TOKEN,
      TESSERA_SERVER_LATENCY_PROBE: 'true',
    });
    try {
      const at = await probed.url;
      const auth = { authorization: `Bearer ${TOKEN}` };
      assert.equal((await fetch(`${at}/debug/latency`)).status, 401);
      await fetch(`${at}/debug/latency?reset=1`, { headers: auth });
      const body = JSON.stringify({
        features: [`${VIEW}:transaction_count_1h`],
        entities: { user_id: [users[0]] },
      });
      for (let i = 0; i < 7; i++) {
        const res = await fetch(`${at}/get-online-features`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body,
        });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      const snapshot = (await (await fetch(`${at}/debug/latency?reset=1`, { headers: auth })).json()) as {
        request: { count: number; p50: number; max: number };
        redis: { count: number };
        cpuMs: number;
      };
      assert.equal(snapshot.request.count, 7);
      assert.equal(snapshot.redis.count, 7);
      assert.ok(snapshot.request.p50 > 0 && snapshot.request.max >= snapshot.request.p50);
      assert.ok(snapshot.cpuMs > 0);
      const after = (await (await fetch(`${at}/debug/latency`, { headers: auth })).json()) as {
        request: { count: number };
      };
      assert.equal(after.request.count, 0, 'reset starts a new window');
    } finally {
      await probed.stop();
    }
  });

  it('evaluates windows at read time: the 1h count decays to 0 with no new event', async () => {
    const user = users[0]!;
    const last = Math.max(...events.filter((e) => e.user_id === user).map((e) => e.event_timestamp));
    const ask = async (t: number) => {
      const { json } = await post('/get-online-features', {
        features: [`${VIEW}:transaction_count_1h`, `${VIEW}:transaction_count_24h`],
        entities: { user_id: [user] },
        as_of: t,
      });
      const body = json as unknown as FeastResponse;
      return [body.results[1]!.values[0], body.results[2]!.values[0]];
    };
    const [soon1h] = await ask(last + 1);
    assert.ok((soon1h as number) >= 1, 'the last event counts right after it');
    const [later1h, later24h] = await ask(last + 2 * HOUR);
    assert.equal(later1h, 0);
    assert.equal(later24h, expected(user, 'transaction_count_24h', last + 2 * HOUR));
    assert.ok((later24h as number) >= 1);
  });

  it('serves a feature service, full feature names, and NOT_FOUND for unknown users', async () => {
    const { status, json } = await post('/get-online-features', {
      feature_service: 'fraud_model_v1',
      entities: { user_id: [users[1], 999_999_999] },
      full_feature_names: true,
    });
    assert.equal(status, 200);
    const body = json as unknown as FeastResponse;
    assert.equal(body.metadata.feature_names[1], `${VIEW}__transaction_count_1h`);
    for (const column of body.results.slice(1)) {
      assert.equal(column.statuses[0], 'PRESENT');
      assert.equal(column.statuses[1], 'NOT_FOUND');
      assert.equal(column.values[1], null);
      assert.equal(column.event_timestamps[1], '1970-01-01T00:00:00Z');
    }
  });

  it('answers OUTSIDE_MAX_AGE when the newest event is older than the view max_age', async () => {
    const user = users[2]!;
    const last = Math.max(...events.filter((e) => e.user_id === user).map((e) => e.event_timestamp));
    const { json } = await post('/get-online-features', {
      features: [`${VIEW}:transaction_count_24h`],
      entities: { user_id: [user] },
      as_of: last + (view.maxAgeMs ?? 0) + HOUR,
    });
    const body = json as unknown as FeastResponse;
    assert.equal(body.results[1]!.statuses[0], 'OUTSIDE_MAX_AGE');
    assert.equal(body.results[1]!.values[0], null);
  });

  it('observes served freshness for reads at now only, not for as_of lookups', async () => {
    const ages = async () =>
      Number(
        new RegExp(`^tessera_server_feature_age_seconds_count\\{view="${VIEW}"\\} (\\d+)$`, 'm').exec(
          await (await fetch(`${url}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const body = { features: [`${VIEW}:transaction_count_24h`], entities: { user_id: [users[3]] } };
    const before = await ages();
    // An as_of hours ahead once added those hours to the served-age histogram.
    const ahead = await post('/get-online-features', { ...body, as_of: Date.now() + 7 * HOUR });
    assert.equal(ahead.status, 200, JSON.stringify(ahead.json));
    assert.equal(await ages(), before);
    assert.equal((await post('/get-online-features', body)).status, 200);
    assert.equal(await ages(), before + 1);
  });

  it('refuses requests without the right bearer token, and keeps probes open', async () => {
    const body = { features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [users[0]] } };
    for (const token of [null, 'wrong-token-0123456789abcdef', TOKEN.slice(0, -1)]) {
      const res = await post('/get-online-features', body, token);
      assert.equal(res.status, 401, `token ${token}`);
      assert.equal((res.json.error as { code: string }).code, 'UNAUTHENTICATED');
      // Closed, not kept reading the rest of an unauthenticated body.
      assert.equal(res.headers.get('connection'), 'close');
      assert.ok(typeof res.json.request_id === 'string');
    }
    for (const path of ['/health', '/ready', '/metrics', '/openapi.json']) {
      const res = await fetch(`${url}${path}`);
      assert.equal(res.status, 200, path);
    }
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string; paths: object };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok('/get-online-features' in doc.paths);
  });

  it('answers 400 naming the field for bad requests, with no stack trace', async () => {
    const cases: { body: unknown; field: RegExp }[] = [
      { body: '{"features": [', field: /^body/ },
      {
        body: { features: [`${VIEW}:nope`], entities: { user_id: [1] } },
        field: /features\[0\].*no feature "nope"/,
      },
      { body: { features: ['nope:x'], entities: { user_id: [1] } }, field: /unknown feature view "nope"/ },
      {
        body: { features: [`${VIEW}:transaction_count_1h`], entities: { user_id: ['abc'] } },
        field: /entities\.user_id\[0\].*not an int64/,
      },
      {
        // A column no view is keyed by is ignored (as Feast does), so the needed one is missing.
        body: { features: [`${VIEW}:transaction_count_1h`], entities: { merchant: [1] } },
        field: /entities: give the requested views' entity columns, e\.g\. \{"user_id"/,
      },
      {
        body: {
          features: [`${VIEW}:transaction_count_1h`],
          entities: { user_id: Array.from({ length: 1001 }, (_, i) => i) },
        },
        field: /over the limit of 1000/,
      },
      { body: { entities: { user_id: [1] } }, field: /^features/ },
      {
        body: { features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [1] }, bogus: 1 },
        field: /unknown field/,
      },
      {
        body: { features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [1] }, as_of: 'yesterday' },
        field: /as_of/,
      },
      // Outside Date's range: once a 500 (the out-of-range message could not print the time).
      {
        body: { features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [1] }, as_of: -1e16 },
        field: /as_of/,
      },
    ];
    for (const c of cases) {
      const res = await post('/get-online-features', c.body);
      const text = JSON.stringify(res.json);
      assert.equal(res.status, 400, text);
      assert.match((res.json.error as { message: string }).message, c.field);
      assert.doesNotMatch(text, /at .*\.ts:\d+/, 'no stack trace');
    }
    const big = await post('/get-online-features', {
      features: [],
      entities: { user_id: ['x'.repeat(2_000_000)] },
    });
    assert.equal(big.status, 413);
  });

  it('answers 500 when Redis refuses a read (a key of another type), single and batch, the cause in the log only', async () => {
    // Once reported as 503 "Redis did not answer": a retry cannot help, and it is not an outage.
    const user = 77_777_999;
    const redisErrors = async () =>
      Number(
        /^tessera_server_redis_errors_total (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ??
          0,
      );
    const before = await redisErrors();
    await run.redis.set(stateKey(run.id, VIEW, String(user)), 'not a hash');
    try {
      for (const users of [[user], [1, user]]) {
        const res = await post('/get-online-features', {
          features: [`${VIEW}:transaction_count_1h`],
          entities: { user_id: users },
        });
        assert.equal(res.status, 500, JSON.stringify(res.json));
        const error = res.json.error as { code: string; message: string };
        assert.equal(error.code, 'INTERNAL');
        // The body once carried Redis' reply (a batch's: the script's digest and line).
        assert.equal(
          error.message,
          'the server could not answer this request; the server log has the details under this request id',
        );
        const id = res.json.request_id as string;
        assert.equal(res.headers.get('x-request-id'), id);
        // The child's log line may arrive a moment after the response (seconds on a busy machine).
        const loggedLine = () =>
          server
            .output()
            .split('\n')
            .find((line) => line.includes(`"reqId":"${id}"`));
        for (const deadline = Date.now() + 10_000; loggedLine() === undefined && Date.now() < deadline; )
          await new Promise((resolve) => setTimeout(resolve, 20));
        const logged = loggedLine();
        assert.match(
          logged ?? '',
          /Redis refused the lookup's read \(WRONGTYPE.*TESSERA_REDIS_KEY_PREFIX/,
          'the operator finds the cause under the request id',
        );
      }
      assert.equal(await redisErrors(), before + 2, 'both refusals are counted as Redis errors');
    } finally {
      await run.redis.del(stateKey(run.id, VIEW, String(user)));
    }
  });

  it('answers what fastify refuses before routing in the same error shape, with a request id', async () => {
    // A path with malformed percent-encoding: once fastify's own body, without a request id.
    const badUrl = await fetch(`${url}/%zz`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const badUrlBody = (await badUrl.json()) as {
      error: { code: string; field: string };
      request_id: string;
    };
    assert.equal(badUrl.status, 400);
    assert.equal(badUrlBody.error.code, 'INVALID_ARGUMENT');
    assert.equal(badUrlBody.error.field, 'url');
    assert.equal(badUrl.headers.get('x-request-id'), badUrlBody.request_id);
    // A body that is not JSON: 415 (fastify parsed text/plain and gave a 400 about a string).
    const text = await fetch(`${url}/get-online-features`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [1] } }),
    });
    const textBody = (await text.json()) as { error: { code: string }; request_id: string };
    assert.equal(text.status, 415, JSON.stringify(textBody));
    assert.equal(textBody.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    assert.ok(text.headers.get('x-request-id'));
  });

  it('takes a Feast push, validates it, and its rows reach Redis through Kafka and the ingestor', async () => {
    const user = 77_777_001;
    const ts = now - 30 * 60_000;
    const bad = await post('/push', {
      push_source_name: 'transactions',
      df: {
        user_id: [user],
        event_timestamp: [new Date(ts).toISOString()],
        amount: ['lots'],
        merchant_id: ['m'],
      },
    });
    assert.equal(bad.status, 400);
    assert.match((bad.json.error as { message: string }).message, /row 0.*amount/);
    const ok = await post('/push', { ...twoEventPush(user, ts), to: 'online_and_offline' });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json.rows, 2);
    // Produced with kafkajs' fast paths in place (the server warns at start otherwise).
    assert.doesNotMatch(server.output(), /runs without Tessera's faster/);
    await waitForCaughtUp(run, run.topic, 30_000);
    const { json } = await post('/get-online-features', {
      features: [`${VIEW}:transaction_count_1h`, `${VIEW}:avg_transaction_amount_7d`],
      entities: { user_id: [user] },
      as_of: ts + 2000,
    });
    const body = json as unknown as FeastResponse;
    assert.deepEqual([body.results[1]!.values[0], body.results[2]!.values[0]], [2, 10]);
  });

  it("gives Feast's own Python SDK (remote online store) the reference values", async () => {
    const python = process.env.TESSERA_PYTHON;
    assert.ok(
      python,
      'TESSERA_PYTHON is not set: run `eval "$(scripts/stack env)"` (scripts/stack install makes the venv)',
    );
    const fresh = users.filter(
      (u) =>
        Math.max(...events.filter((e) => e.user_id === u).map((e) => e.event_timestamp)) > now - 20 * DAY,
    );
    // With a user whose 7-day window is empty: its averages are the default 0.0, which the server
    // once wrote as `0`, so the SDK typed them int.
    const idle = fresh.find(
      (u) => !events.some((e) => e.user_id === u && e.event_timestamp >= now - 7 * DAY),
    );
    assert.ok(idle !== undefined, 'the data has a user with an empty 7-day window');
    const sample = [...new Set([idle, ...fresh.slice(0, 5)])];
    assert.ok(sample.length >= 3);
    const t1 = Date.now();
    const out = execFileSync(
      python,
      ['test/compat/feast_online_client.py', url, 'TESSERA_FEAST_TOKEN', sample.join(',')],
      { env: { ...process.env, TESSERA_FEAST_TOKEN: TOKEN }, encoding: 'utf8', timeout: 120_000 },
    );
    const t2 = Date.now();
    const {
      __types__: types,
      __write__: write,
      ...sdk
    } = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown[]> & {
      __types__: Record<string, string[]>;
      __write__: string;
    };
    // write_to_online_store: refused with the server's reason and what to do instead.
    assert.match(write, /Tessera does not serve.*POST them to \/push/s, write);
    assert.deepEqual(sdk.user_id, sample);
    // Float64 features reach Python as floats, Int64 ones as ints, as from Feast's own server.
    for (const f of view.features)
      assert.deepEqual(
        types[f.name],
        [['count', 'count_distinct'].includes(f.aggregation) ? 'int' : 'float'],
        `${f.name}: the SDK typed its values ${types[f.name]}`,
      );
    for (const f of view.features) {
      sample.forEach((user, row) => {
        // The SDK read "now" somewhere in [t1, t2]: either end's reference value is right.
        const got = sdk[f.name]![row];
        const ok = [t1, t2].some((t) => sameValue(f.aggregation, got, expected(user, f.name, t)));
        assert.ok(
          ok,
          `${f.name} of user ${user}: Feast SDK got ${got}, reference ${expected(user, f.name, t1)}`,
        );
      });
    }
  });

  it('refuses to start without a token unless the dev flag is set on loopback', async (t) => {
    const noToken = stopAfter(t, startServer({ ...run.env, TESSERA_AUTH_TOKEN: '' }));
    assert.notEqual(await noToken.exited, 0);
    assert.match(noToken.output(), /requires bearer-token auth/);
    const devOutside = stopAfter(
      t,
      startServer({
        ...run.env,
        TESSERA_AUTH_TOKEN: '',
        TESSERA_DEV_NO_AUTH: 'true',
        TESSERA_HTTP_HOST: '0.0.0.0',
      }),
    );
    assert.notEqual(await devOutside.exited, 0);
    assert.match(devOutside.output(), /only allowed on a loopback address/);
    const dev = stopAfter(
      t,
      startServer({ ...run.env, TESSERA_AUTH_TOKEN: '', TESSERA_DEV_NO_AUTH: 'true' }),
    );
    const devUrl = await dev.url;
    const res = await fetch(`${devUrl}/get-online-features`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        features: [`${VIEW}:transaction_count_24h`],
        entities: { user_id: [users[0]] },
      }),
    });
    assert.equal(res.status, 200);
    await dev.stop();
  });
});
