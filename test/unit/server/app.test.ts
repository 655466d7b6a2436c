// The fastify app over stand-ins (no port opened: app.inject): what an audit found a client could
// do to it, or read from it without a token.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { buildApp, REQUEST_TIMEOUT_MS } from '../../../services/server/app.ts';
import { createAuthenticator } from '../../../services/server/auth.ts';
import { createServerMetrics } from '../../../services/server/metrics.ts';
import { Pusher } from '../../../services/server/push.ts';
import { loadConfig } from '../../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import { stateKey } from '../../../shared/state-store/redis-state-store.ts';

const TOKEN = 'app-test-token-0123456789abcdef';
const definitions = loadDefinitionsFile('definitions/fraud.yaml');

/** The server's log lines, parsed: what an operator sees under a request id. */
function captureLog() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { lines, logger };
}

function app(
  redis: Partial<Redis> = {},
  requestTimeoutMs?: number,
  extra: Partial<Parameters<typeof buildApp>[0]> = {},
) {
  const config = loadConfig({ argv: [], env: { TESSERA_AUTH_TOKEN: TOKEN } });
  return buildApp({
    definitions,
    redis: {
      tesseraReadStates: true,
      defineCommand() {},
      async ping() {
        return 'PONG';
      },
      ...redis,
    } as unknown as Redis,
    redisKeyPrefix: 'app-test',
    authenticate: createAuthenticator(config, [TOKEN]),
    metrics: createServerMetrics(),
    logger: pino({ level: 'silent' }),
    maxEntities: 1000,
    bodyLimitBytes: 1024 * 1024,
    ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
    ...extra,
  });
}

/** Sends raw bytes on a new connection; resolves with everything the server wrote before it closed. */
function exchange(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(data));
    let reply = '';
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(reply));
  });
}

/** A raw HTTP/1.1 response: status, headers (lower-case names) and the JSON body. */
function parseReply(reply: string) {
  const [head, body] = [
    reply.slice(0, reply.indexOf('\r\n\r\n')),
    reply.slice(reply.indexOf('\r\n\r\n') + 4),
  ];
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
  );
  return { status: Number(statusLine!.split(' ')[1]), headers, json: JSON.parse(body) as ErrorBody };
}

interface ErrorBody {
  error: { code: string; message: string; field?: string };
  request_id: string;
}

/** The documented error shape, its request id the one in x-request-id. */
function assertErrorShape(headers: Record<string, unknown>, json: ErrorBody) {
  assert.deepEqual(Object.keys(json).sort(), ['error', 'request_id']);
  assert.equal(typeof json.error.code, 'string');
  assert.equal(typeof json.error.message, 'string');
  assert.match(json.request_id, /^[A-Za-z0-9._:-]{1,128}$/);
  assert.equal(headers['x-request-id'], json.request_id);
}

/** Sends a request's head, then its body a byte every `dripMs`; resolves with what came back and when. */
function slowClient(port: number, dripMs: number): Promise<{ reply: string; ms: number }> {
  const body = JSON.stringify({
    features: ['user_features:transaction_count_1h'],
    entities: { user_id: [1] },
  });
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    let sent = 0;
    const drip = setInterval(() => {
      if (sent < body.length && !socket.destroyed) socket.write(body[sent++]!);
    }, dripMs);
    socket.on('connect', () => {
      socket.write(
        `POST /get-online-features HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
    });
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
    });
    socket.on('error', (error) => {
      clearInterval(drip);
      reject(error);
    });
    socket.on('close', () => {
      clearInterval(drip);
      resolve({ reply, ms: Date.now() - started });
    });
  });
}

describe('server app', () => {
  it('takes at most REQUEST_TIMEOUT_MS for a request to arrive, and closes after a 401', async () => {
    const a = app();
    await a.ready();
    // fastify's default (0) had turned Node's own request timeout off.
    assert.equal(a.server.requestTimeout, REQUEST_TIMEOUT_MS);
    const res = await a.inject({ method: 'POST', url: '/get-online-features', payload: {} });
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers.connection, 'close');
    await a.close();
  });

  it('answers a client whose request takes longer than TESSERA_SERVER_REQUEST_TIMEOUT_MS with 408, and closes', {
    timeout: 15_000,
  }, async () => {
    const a = app({}, 400);
    await a.listen({ host: '127.0.0.1', port: 0 });
    const port = (a.server.address() as { port: number }).port;
    // The body needs ~9 s at a byte per 100 ms; the server must cut it at 400 ms (Node's deadline
    // check runs every 50 ms here), not at its 30 s default nor after Node's 30 s check interval.
    const { reply, ms } = await slowClient(port, 100);
    assert.match(reply, /^HTTP\/1\.1 408 /);
    assert.ok(ms >= 350 && ms < 2000, `closed after ${ms} ms`);
    // In the documented error shape with a request id (once fastify's own {"error":"Request Timeout",...}).
    const { status, headers, json } = parseReply(reply);
    assert.equal(status, 408);
    assertErrorShape(headers, json);
    assert.equal(json.error.code, 'REQUEST_TIMEOUT');
    assert.match(json.error.message, /within 400 ms \(TESSERA_SERVER_REQUEST_TIMEOUT_MS\)/);
    assert.equal(headers.connection, 'close');
    // A client that sends in time is unaffected.
    const ok = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(ok.status, 200);
    await a.close();
  });

  it('answers what the HTTP parser refuses in the error shape with a request id, counts it, and closes', async () => {
    const metrics = createServerMetrics();
    const { lines, logger } = captureLog();
    const a = app({}, undefined, { metrics, logger });
    await a.listen({ host: '127.0.0.1', port: 0 });
    const port = (a.server.address() as { port: number }).port;
    const auth = `Authorization: Bearer ${TOKEN}\r\n`;
    const cases = [
      {
        request: 'POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
        status: 400,
        message: /not a valid HTTP\/1\.1 request \(HPE_INVALID_CONTENT_LENGTH/,
      },
      {
        request: `POST /get-online-features HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n`,
        status: 400,
        message: /HPE_INVALID_CHUNK_SIZE/,
      },
      { request: 'GARBAGE\r\n\r\n', status: 400, message: /HPE_INVALID_METHOD/ },
      {
        request: `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        status: 431,
        message: /^request headers over \d+ bytes/,
      },
      {
        // As Node itself answers it: 413, not 400.
        request: `POST /get-online-features HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n1;${'e'.repeat(20_000)}\r\n{\r\n`,
        status: 413,
        message: /^chunk extensions over 16 KiB/,
      },
    ];
    for (const c of cases) {
      const { status, headers, json } = parseReply(await exchange(port, c.request));
      assert.equal(status, c.status, c.request.slice(0, 40));
      assertErrorShape(headers, json);
      assert.match(json.error.message, c.message);
      assert.equal(headers.connection, 'close');
      // The operator finds it in the log under the same id.
      assert.ok(lines.some((l) => l.reqId === json.request_id && l.status === c.status));
    }
    const text = await metrics.registry.getSingleMetricAsString('tessera_server_request_duration_seconds');
    assert.match(text, /_count\{route="unmatched",status="400"\} 3$/m);
    assert.match(text, /_count\{route="unmatched",status="431"\} 1$/m);
    assert.match(text, /_count\{route="unmatched",status="413"\} 1$/m);
    // The server still serves.
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
    await a.close();
  });

  it("keeps the caller's request id on a 408", { timeout: 10_000 }, async () => {
    const a = app({}, 300);
    await a.listen({ host: '127.0.0.1', port: 0 });
    const port = (a.server.address() as { port: number }).port;
    const reply = await exchange(
      port,
      `POST /get-online-features HTTP/1.1\r\nHost: x\r\nx-request-id: mine-408\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 60\r\n\r\n{',
    );
    const { status, headers, json } = parseReply(reply);
    assert.equal(status, 408);
    assertErrorShape(headers, json);
    assert.equal(json.request_id, 'mine-408');
    await a.close();
  });

  it('gives a 408 the id fastify gave the request when the caller sent none', {
    timeout: 10_000,
  }, async () => {
    const a = app({}, 300);
    // The id fastify gave the request, as anything logging under request.id would use it.
    const seen: string[] = [];
    a.addHook('onRequest', (request, _reply, done) => {
      seen.push(request.id);
      done();
    });
    await a.listen({ host: '127.0.0.1', port: 0 });
    const port = (a.server.address() as { port: number }).port;
    const reply = await exchange(
      port,
      `POST /get-online-features HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 60\r\n\r\n{',
    );
    const { status, json } = parseReply(reply);
    assert.equal(status, 408);
    assert.equal(seen.length, 1);
    assert.equal(json.request_id, seen[0]);
    await a.close();
  });

  it('says a body is refused for its "__proto__" key, not that it is not JSON', async () => {
    const a = app();
    const send = (payload: string) =>
      a.inject({
        method: 'POST',
        url: '/get-online-features',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        payload,
      });
    for (const payload of [
      '{"__proto__": {"polluted": 1}, "entities": {"user_id": [1]}}',
      '{"entities": {"user_id": [1]}, "features": [], "x": {"constructor": {"prototype": {}}}}',
    ]) {
      const res = await send(payload);
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error.field, 'body');
      assert.match(res.json().error.message, /"__proto__".* is refused/);
      assert.doesNotMatch(res.json().error.message, /not valid JSON/);
    }
    // Broken JSON is still named as such.
    const broken = await send('{"entities": ');
    assert.equal(broken.statusCode, 400);
    assert.match(broken.json().error.message, /not valid JSON/);
    await a.close();
  });

  it("reads int64 ids beyond 2^53 sent as bare JSON numbers (as Feast's SDK sends them) exactly", async () => {
    const asked: string[] = [];
    const a = app({
      async tesseraReadStatesBuffer(count: number, ...keys: string[]) {
        asked.push(...keys.slice(0, count));
        return keys.flatMap(() => [null, null]);
      },
    } as unknown as Partial<Redis>);
    const res = await a.inject({
      method: 'POST',
      url: '/get-online-features',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      // JSON.parse alone reads 9007199254740993 as 9007199254740992 (and the server refused it).
      payload: `{"features": ["${definitions.views[0]!.name}:transaction_count_1h"], "entities": {"user_id": [9007199254740993, -9223372036854775808, 7, "9007199254740995"]}, "as_of": "2026-01-01T00:00:00Z"}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    const view = definitions.views[0]!.name;
    assert.deepEqual(
      asked,
      ['9007199254740993', '-9223372036854775808', '7', '9007199254740995'].map((u) =>
        stateKey('app-test', view, u),
      ),
    );
    // Echoed as the exact numbers they were (the body's text, not a double's).
    assert.match(res.body, /"values":\[9007199254740993,-9223372036854775808,7,9007199254740995\]/);
    // An int64 out of range is still refused, not read as some other id.
    const out = await a.inject({
      method: 'POST',
      url: '/get-online-features',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      payload: `{"features": ["${view}:transaction_count_1h"], "entities": {"user_id": [9223372036854775808]}}`,
    });
    assert.equal(out.statusCode, 400, out.body);
    assert.match(out.json().error.message, /entities\.user_id\[0\]: "9223372036854775808" is not an int64/);
    await a.close();
  });

  it('answers a 500 with a generic message and the request id; the detail goes to the log under it', async () => {
    const { lines, logger } = captureLog();
    const corruptKey = stateKey('app-test', definitions.views[0]!.name, '7');
    const replyError = Object.assign(
      new Error(
        'WRONGTYPE Operation against a key holding the wrong kind of value script: 0123456789abcdef0123456789abcdef01234567, on @user_script:16.',
      ),
      { name: 'ReplyError' },
    );
    const a = app(
      {
        async hmgetBuffer(key: string) {
          if (key === corruptKey) return [Buffer.from([1, 2, 3]), null];
          throw replyError;
        },
      } as unknown as Partial<Redis>,
      undefined,
      { logger },
    );
    for (const [user, code, detail] of [
      [7, 'STATE_CORRUPT', /cannot be decoded/],
      [8, 'INTERNAL', /WRONGTYPE.*@user_script:16/],
    ] as const) {
      const res = await a.inject({
        method: 'POST',
        url: '/get-online-features',
        headers: { authorization: `Bearer ${TOKEN}`, 'x-request-id': `req-${user}` },
        payload: {
          features: [`${definitions.views[0]!.name}:transaction_count_1h`],
          entities: { user_id: [user] },
        },
      });
      assert.equal(res.statusCode, 500);
      const json = res.json() as ErrorBody;
      assertErrorShape(res.headers, json);
      assert.equal(json.error.code, code);
      // Once the key layout with "delete the key to rebuild it", or the script's digest and line.
      assert.equal(
        json.error.message,
        'the server could not answer this request; the server log has the details under this request id',
      );
      const logged = lines.find((l) => l.reqId === `req-${user}`);
      assert.ok(logged, 'a log line under the request id');
      assert.match(`${logged.err} ${logged.cause}`, detail);
    }
    await a.close();
  });

  it('tells a push Kafka refused for good that rows may be written, not the topic or the broker error', async () => {
    const { lines, logger } = captureLog();
    const config = loadConfig({ argv: [], env: { TESSERA_AUTH_TOKEN: TOKEN } });
    const refused = Object.assign(new Error('Not authorized to access topics'), {
      retriable: false,
      type: 'TOPIC_AUTHORIZATION_FAILED',
    });
    const producer = {
      events: { DISCONNECT: 'producer.disconnect' },
      on() {},
      async connect() {},
      async send() {
        throw refused;
      },
    } as unknown as ConstructorParameters<typeof Pusher>[0];
    const a = app({}, undefined, {
      logger,
      pusher: new Pusher(producer, config, definitions, 'definitions'),
    });
    const res = await a.inject({
      method: 'POST',
      url: '/push',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: {
        push_source_name: 'transactions',
        df: {
          user_id: [1],
          event_timestamp: [new Date().toISOString()],
          amount: [1.5],
          merchant_id: ['m'],
        },
      },
    });
    assert.equal(res.statusCode, 500);
    const json = res.json() as ErrorBody;
    assertErrorShape(res.headers, json);
    assert.match(json.error.message, /rows before the refused one may be written already/);
    assert.match(json.error.message, /the server log has the details under this request id$/);
    assert.doesNotMatch(json.error.message, /TOPIC_AUTHORIZATION_FAILED|transactions/);
    assert.match(String(lines.find((l) => l.reqId === json.request_id)?.err), /TOPIC_AUTHORIZATION_FAILED/);
    await a.close();
  });

  it('counts Redis refusing a read (a 500) in tessera_server_redis_errors_total, and says so in its help', async () => {
    const metrics = createServerMetrics();
    const a = app(
      {
        async hmgetBuffer() {
          throw Object.assign(new Error('WRONGTYPE Operation against a key'), { name: 'ReplyError' });
        },
      } as unknown as Partial<Redis>,
      undefined,
      { metrics },
    );
    const res = await a.inject({
      method: 'POST',
      url: '/get-online-features',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: {
        features: [`${definitions.views[0]!.name}:transaction_count_1h`],
        entities: { user_id: [1] },
      },
    });
    assert.equal(res.statusCode, 500);
    const text = await metrics.registry.getSingleMetricAsString('tessera_server_redis_errors_total');
    assert.match(text, /^tessera_server_redis_errors_total 1$/m);
    // Its help once said "answered 503" only.
    assert.match(text, /^# HELP tessera_server_redis_errors_total .*\(answered 503\).*\(answered 500\)/m);
    await a.close();
  });

  it('counts a request refused before routing (a malformed path) in the request histogram, once', async () => {
    const metrics = createServerMetrics();
    const a = buildApp({
      definitions,
      redis: { defineCommand() {} } as unknown as Redis,
      redisKeyPrefix: 'app-test',
      authenticate: null,
      metrics,
      logger: pino({ level: 'silent' }),
      maxEntities: 1000,
      bodyLimitBytes: 1024 * 1024,
    });
    const res = await a.inject({ method: 'GET', url: '/%zz' });
    assert.equal(res.statusCode, 400);
    const text = await metrics.registry.getSingleMetricAsString('tessera_server_request_duration_seconds');
    assert.match(
      text,
      /^tessera_server_request_duration_seconds_count\{route="unmatched",status="400"\} 1$/m,
    );
    await a.close();
  });

  it("tells /ready's open callers that Redis does not answer, not how it failed", async () => {
    const a = app({
      async ping() {
        throw new Error('connect ECONNREFUSED 10.20.30.40:6379');
      },
    });
    const res = await a.inject({ method: 'GET', url: '/ready' });
    assert.equal(res.statusCode, 503);
    assert.deepEqual(res.json().problems, ['redis: not answering']);
    assert.doesNotMatch(res.body, /10\.20\.30\.40/);
    await a.close();
  });

  it('documents /push as off without a producer, and names no file path', async () => {
    const a = app();
    const doc = (await a.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      info: { description: string };
      paths: Record<string, { post: { summary: string } }>;
      components: { schemas: { PushRequest: { properties: { push_source_name: { enum: string[] } } } } };
    };
    assert.match(doc.paths['/push']!.post.summary, /^Off: this server runs with TESSERA_SERVER_PUSH=false/);
    assert.deepEqual(doc.components.schemas.PushRequest.properties.push_source_name.enum, []);
    assert.doesNotMatch(JSON.stringify(doc), /fraud\.yaml/);
    // Off on purpose (TESSERA_SERVER_PUSH=false): not found, not a 503 a client would retry.
    const push = await a.inject({
      method: 'POST',
      url: '/push',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { push_source_name: 'transactions', df: { user_id: [1] } },
    });
    assert.equal(push.statusCode, 404);
    assert.match(push.json().error.message, /TESSERA_SERVER_PUSH=false/);
    await a.close();
  });
  // Contract fuzzing (schemathesis) found these: a route asked with another method answered 404,
  // as if it did not exist, and an Expect header got Node's own bare 417 without a request id.
  it('answers a known path asked with another method 405, naming the methods it takes in Allow', async () => {
    const a = app();
    const auth = { authorization: `Bearer ${TOKEN}` };
    const cases = [
      { method: 'GET', url: '/get-online-features', allow: 'POST' },
      { method: 'PUT', url: '/push?x=1', allow: 'POST' },
      { method: 'POST', url: '/health', allow: 'GET, HEAD' },
      { method: 'DELETE', url: '/openapi.json', allow: 'GET, HEAD' },
    ] as const;
    for (const c of cases) {
      const res = await a.inject({ method: c.method, url: c.url, headers: auth });
      assert.equal(res.statusCode, 405, `${c.method} ${c.url}`);
      assert.equal(res.headers.allow, c.allow);
      const json = res.json() as ErrorBody;
      assertErrorShape(res.headers, json);
      assert.equal(json.error.code, 'METHOD_NOT_ALLOWED');
    }
    // A path no route has is still a 404.
    const unknown = await a.inject({ method: 'GET', url: '/get-online-features/', headers: auth });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.headers.allow, undefined);
    await a.close();
  });
  it("answers Feast's routes it does not serve 501, saying what to do instead", async () => {
    const config = loadConfig({ argv: [], env: { TESSERA_AUTH_TOKEN: TOKEN } });
    const producer = { events: {}, on() {} } as unknown as ConstructorParameters<typeof Pusher>[0];
    const withPush = app({}, undefined, { pusher: new Pusher(producer, config, definitions, 'definitions') });
    const pushOff = app();
    const auth = { authorization: `Bearer ${TOKEN}` };
    const cases = [
      { a: withPush, url: '/write-to-online-store', says: /POST them to \/push/ },
      { a: pushOff, url: '/write-to-online-store', says: /source topic \(this server has \/push off/ },
      { a: pushOff, url: '/materialize', says: /nothing to materialize/ },
      { a: withPush, url: '/materialize-incremental?x=1', says: /nothing to materialize/ },
      { a: pushOff, url: '/retrieve-online-documents', says: /not vector search/ },
    ];
    for (const c of cases) {
      const res = await c.a.inject({ method: 'POST', url: c.url, headers: auth, payload: {} });
      assert.equal(res.statusCode, 501, c.url);
      const json = res.json() as ErrorBody;
      assertErrorShape(res.headers, json);
      assert.equal(json.error.code, 'NOT_IMPLEMENTED');
      assert.match(json.error.message, /a route of Feast's feature server that Tessera does not serve/);
      assert.match(json.error.message, c.says);
    }
    await withPush.close();
    await pushOff.close();
  });

  it('answers an Expect header other than 100-continue with 417 in the error shape, with a request id', async () => {
    const metrics = createServerMetrics();
    const a = app({}, undefined, { metrics });
    await a.listen({ host: '127.0.0.1', port: 0 });
    const port = (a.server.address() as { port: number }).port;
    const reply = await exchange(
      port,
      `POST /get-online-features HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nX-Request-Id: my-req.1\r\n` +
        'Expect: something-else\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
    );
    const { status, headers, json } = parseReply(reply);
    assert.equal(status, 417);
    assertErrorShape(headers, json);
    assert.equal(json.request_id, 'my-req.1');
    assert.equal(json.error.code, 'EXPECTATION_FAILED');
    assert.match(json.error.message, /Expect: "something-else" is not supported/);
    assert.match(
      await metrics.registry.metrics(),
      /tessera_server_request_duration_seconds_count\{route="unmatched",status="417"\} 1/,
    );
    // Expect: 100-continue still goes through to the route.
    const ok = await exchange(
      port,
      'GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n',
    );
    assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    await a.close();
  });
});
