// Tessera's services against a Redis that speaks TLS only, signed by a private CA and asking for
// client certificates (mutual TLS), as a self-managed or Kubernetes-operator Redis is set up:
// with TESSERA_REDIS_TLS_CA_FILE and the client certificate, the ingestor writes the states, the
// flusher snapshots them and the server's lookups equal the naive reference. Without the CA (or
// without the client certificate) the server does not hang: lookups and /ready answer 503 at once
// and the log says which variable to set. A client whose CA and certificate files are renewed
// (a Kubernetes-like ..data swap) reconnects with them to a Redis that trusts only the new CA.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createServerMetrics } from '../../services/server/metrics.ts';
import { forgetTlsFiles, startCertificateReload } from '../../shared/config/cert-reload.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { connectRedis, type RedisClient } from '../../shared/state-store/redis-client.ts';
import {
  cleanupStore,
  createFlusherTopics,
  drainThroughIngestorAndFlusher,
  type FlusherRun,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
  readTables,
} from '../support/flusher-process.ts';
import { cleanupRun, recentFraudEvents } from '../support/ingestor-process.ts';
import { naiveFraudValue, sameValue } from '../support/naive-reference.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';
import { type CertFiles, privateCa, signedCert } from '../support/tls-certs.ts';
import { TlsRedis } from '../support/tls-redis.ts';

const TOKEN = 'stls-redis-token-0123456789abcdef';
const REDIS_PORT = 19520;
const SERVER_PORT = 19521;
const NO_CA_PORT = 19522;
const NO_CLIENT_CERT_PORT = 19523;
const RENEW_PORT = 19524;

interface FeastResponse {
  results: { values: unknown[]; statuses: string[] }[];
}

describe('services on a TLS-only Redis with a private CA', { timeout: 300_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'stls-redis-test-'));
  const ca = privateCa(work, 'redis-ca');
  const serverCert = signedCert(work, ca, 'redis-server');
  const clientCert = signedCert(work, ca, 'tessera-client');
  const tlsEnv = {
    TESSERA_REDIS_URL: `rediss://127.0.0.1:${REDIS_PORT}`,
    TESSERA_REDIS_TLS_CA_FILE: ca.cert,
    TESSERA_REDIS_TLS_CERT_FILE: clientCert.cert,
    TESSERA_REDIS_TLS_KEY_FILE: clientCert.key,
  };
  const now = Date.now();
  const { events, users } = recentFraudEvents(now, { events: 500, users: 10, seed: 41 });
  let redis: TlsRedis;
  let run: FlusherRun;
  const servers: ServerProcess[] = [];

  const lookup = (url: string, asOf?: number) =>
    fetch(`${url}/get-online-features`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        features: run.view.features.map((f) => f.ref),
        entities: { user_id: users },
        ...(asOf === undefined ? {} : { as_of: new Date(asOf).toISOString() }),
      }),
    });

  const server = (env: Record<string, string>, port: number) => {
    const s = startServer({
      ...run.env,
      TESSERA_AUTH_TOKEN: TOKEN,
      TESSERA_SERVER_PUSH: 'false',
      ...env,
      TESSERA_HTTP_PORT: String(port),
    });
    servers.push(s);
    return s;
  };

  before(async () => {
    redis = await TlsRedis.start({
      port: REDIS_PORT,
      server: serverCert,
      caFile: ca.cert,
      clientAuth: 'yes',
      client: clientCert,
    });
    // The run's own Redis client (key cleanup) goes through the same options as the services'.
    run = newFlusherRun({ ...tlsEnv, TESSERA_OFFLINE_STORE: join(work, 'offline') });
    await createFlusherTopics(run, 1);
    await producePlacedEvents(run, placeEvents(events, 1));
  });

  after(async () => {
    try {
      await Promise.all(servers.map((s) => s.stop()));
      if (run) {
        await cleanupStore(run);
        await cleanupRun(run);
      }
    } finally {
      // Whatever failed above (a Redis the run's client could not reach), no redis-server outlives it.
      await redis?.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('lets the ingestor write and the flusher snapshot the states over mutual TLS', async () => {
    const { ingestor, flusher, exits } = await drainThroughIngestorAndFlusher(run, 60_000);
    assert.deepEqual(exits, [0, 0], `${ingestor.output().slice(-2000)}\n${flusher.output().slice(-2000)}`);
    const keys = await redis.client().keys(`${run.id}:*`);
    assert.ok(keys.length >= users.length, `${keys.length} state keys in the TLS Redis`);
    // The snapshot read every entity's state back from the TLS Redis.
    const snapshots = await readTables(run.store, `${run.view.name}/snapshots/`, (k) =>
      k.endsWith('.parquet'),
    );
    assert.ok(snapshots.length >= 1, 'a snapshot was written');
    assert.equal(snapshots.at(-1)!.rows, users.length, 'one snapshot row per entity');
  });

  it('answers lookups from the TLS Redis equal to the naive reference', async () => {
    const s = server(tlsEnv, SERVER_PORT);
    const url = await s.url;
    assert.equal((await fetch(`${url}/ready`)).status, 200);
    const t = now;
    const res = await lookup(url, t);
    assert.equal(res.status, 200);
    const body = (await res.json()) as FeastResponse;
    let present = 0;
    run.view.features.forEach((f, fi) => {
      users.forEach((user, row) => {
        assert.equal(body.results[fi + 1]!.statuses[row], 'PRESENT', `${f.name} of user ${user}`);
        const want = naiveFraudValue(events, user, f, t);
        const got = body.results[fi + 1]!.values[row];
        assert.ok(
          sameValue(f.aggregation, got, want),
          `${f.name} of user ${user}: ${got}, reference ${want}`,
        );
        present++;
      });
    });
    assert.equal(present, users.length * run.view.features.length);
    assert.doesNotMatch(s.output(), /redis connection error/);
  });

  for (const [what, env, port, hint] of [
    [
      'the CA',
      { TESSERA_REDIS_TLS_CA_FILE: '' },
      NO_CA_PORT,
      /certificate is not signed by a CA this client trusts; set TESSERA_REDIS_TLS_CA_FILE/,
    ],
    [
      'the client certificate',
      { TESSERA_REDIS_TLS_CERT_FILE: '', TESSERA_REDIS_TLS_KEY_FILE: '' },
      NO_CLIENT_CERT_PORT,
      /asks for client certificates \(tls-auth-clients\), set TESSERA_REDIS_TLS_CERT_FILE and TESSERA_REDIS_TLS_KEY_FILE/,
    ],
  ] as const)
    it(`answers 503 at once without ${what}, the log naming the variable to set`, async () => {
      const s = server({ ...tlsEnv, ...env }, port);
      // It waits up to 10 s for Redis, then listens anyway.
      const url = await s.url;
      const started = Date.now();
      const res = await lookup(url);
      assert.equal(res.status, 503, await res.text());
      assert.ok(Date.now() - started < 2000, `503 after ${Date.now() - started} ms`);
      const ready = await fetch(`${url}/ready`);
      assert.equal(ready.status, 503);
      assert.deepEqual(((await ready.json()) as { problems: string[] }).problems, ['redis: not answering']);
      assert.match(s.output(), hint);
      assert.equal(s.child.exitCode, null, 'still running, to connect once the setting is fixed');
    });
});

/** A certificate's not-after time as openssl prints it (Unix seconds): the oracle for the gauge. */
function opensslNotAfter(certFile: string): number {
  const out = execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-enddate'], { encoding: 'utf8' });
  return Date.parse(/notAfter=(.*)/.exec(out)![1]!) / 1000;
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('a Redis client renewing its CA and client certificate without a restart', {
  timeout: 120_000,
}, () => {
  const work = mkdtempSync(join(tmpdir(), 'stls-redis-renew-'));
  const ca1 = privateCa(work, 'renew-ca-1');
  const ca2 = privateCa(work, 'renew-ca-2');
  const server1 = signedCert(work, ca1, 'renew-server-1');
  const server2 = signedCert(work, ca2, 'renew-server-2');
  const client1 = signedCert(work, ca1, 'renew-client-1');
  const client2 = signedCert(work, ca2, 'renew-client-2');
  // A mounted Secret as kubelet lays it out: ca.crt, tls.crt, tls.key -> ..data/* -> ..<version>/*.
  const mount = join(work, 'secret');
  const version = (name: string, ca: CertFiles, client: CertFiles) => {
    mkdirSync(join(mount, name), { recursive: true });
    copyFileSync(ca.cert, join(mount, name, 'ca.crt'));
    copyFileSync(client.cert, join(mount, name, 'tls.crt'));
    copyFileSync(client.key, join(mount, name, 'tls.key'));
  };
  let redis: TlsRedis | undefined;
  let client: RedisClient | undefined;
  let stopReloads: (() => void) | undefined;
  const metrics = createServerMetrics();
  const sample = async (series: string) => {
    const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const ping = async () => {
    try {
      return (await client!.ping()) === 'PONG';
    } catch {
      return false;
    }
  };

  before(() => {
    // The other tests' clients watched files their after hooks deleted: not this test's business.
    forgetTlsFiles();
    version('..v1', ca1, client1);
    symlinkSync('..v1', join(mount, '..data'));
    for (const file of ['ca.crt', 'tls.crt', 'tls.key']) symlinkSync(`..data/${file}`, join(mount, file));
  });

  after(async () => {
    try {
      client?.disconnect();
      stopReloads?.();
      forgetTlsFiles();
    } finally {
      await redis?.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('reconnects with the renewed files to a Redis that trusts only the new CA, and shows their expiry', async () => {
    redis = await TlsRedis.start({
      port: RENEW_PORT,
      server: server1,
      caFile: ca1.cert,
      clientAuth: 'yes',
      client: client1,
    });
    const config = loadConfig({
      argv: [],
      env: {
        ...process.env,
        TESSERA_REDIS_URL: `rediss://127.0.0.1:${RENEW_PORT}`,
        TESSERA_REDIS_TLS_CA_FILE: join(mount, 'ca.crt'),
        TESSERA_REDIS_TLS_CERT_FILE: join(mount, 'tls.crt'),
        TESSERA_REDIS_TLS_KEY_FILE: join(mount, 'tls.key'),
      },
    });
    // As the server process connects (run.ts): no offline queue, fail fast, reconnect by itself.
    client = connectRedis(config, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    const errors: string[] = [];
    client.on('error', (error: Error) =>
      errors.push(`${(error as NodeJS.ErrnoException).code} ${error.message}`),
    );
    stopReloads = startCertificateReload({
      logger: pino({ level: 'silent' }),
      intervalMs: 100,
      metrics: { expiry: metrics.tlsCertificateExpiry, reloads: metrics.tlsReloads },
    });
    await eventually('PONG over mutual TLS with the first files', ping);
    const expiry = 'tessera_server_tls_certificate_expiry_timestamp_seconds';
    assert.equal(await sample(`${expiry}{use="redis_client"}`), opensslNotAfter(client1.cert));
    assert.equal(await sample(`${expiry}{use="redis_ca"}`), opensslNotAfter(ca1.cert));

    // Redis comes back with a certificate of the new CA and trusts only the new CA's clients: the
    // client, still on the old files, cannot reconnect.
    await redis.stop();
    redis = await TlsRedis.start({
      port: RENEW_PORT,
      server: server2,
      caFile: ca2.cert,
      clientAuth: 'yes',
      client: client2,
    });
    const before = errors.length;
    await eventually('a refused reconnect with the old files', async () =>
      errors.slice(before).some((e) => /certificate|SELF_SIGNED|UNABLE_TO_VERIFY|ECONNRESET/i.test(e)),
    );
    assert.equal(await ping(), false);

    // The Secret is renewed: the next reconnect shows the new client certificate and trusts the new CA.
    version('..v2', ca2, client2);
    symlinkSync('..v2', join(mount, '..data_tmp'));
    renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    await eventually('PONG after the renewal, from the same client', ping);
    const reloads = 'tessera_server_tls_reloads_total';
    assert.equal(await sample(`${reloads}{use="redis_client",outcome="reloaded"}`), 1);
    assert.equal(await sample(`${reloads}{use="redis_client",outcome="refused"}`), undefined);
    assert.equal(await sample(`${expiry}{use="redis_client"}`), opensslNotAfter(client2.cert));
    assert.equal(await sample(`${expiry}{use="redis_ca"}`), opensslNotAfter(ca2.cert));
  });
});
