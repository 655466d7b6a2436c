// The online server serving HTTPS itself (TESSERA_SERVER_TLS_CERT_FILE / _KEY_FILE) with a
// self-signed certificate openssl makes here, over state the real ingestor wrote: lookups over
// HTTPS answer what a plain-HTTP server over the same Redis answers and the naive reference, plain
// HTTP to the TLS port gets no answer, the request timeout still holds, Feast's own SDK reads our
// values through a generated repo's `cert`, and unusable certificate files stop the start. And
// renewal without a restart: files rewritten in place or swapped as Kubernetes swaps a Secret's
// `..data` link, and SIGHUP, reach new connections; a broken renewal keeps the certificate in use.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import {
  cleanupRun,
  createSourceTopic,
  fraudMessages,
  newTestRun,
  recentFraudEvents,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { naiveFraudValue, sameValue } from '../support/naive-reference.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';
import { stopAfter, stopProcess } from '../support/stop-after.ts';
import { type CertFiles, httpsRequest, selfSignedCert } from '../support/tls-certs.ts';

const execFileAsync = promisify(execFile);
const TOKEN = 'stls-server-token-0123456789abcdef';
const TOKEN_VAR = 'STLS_FEAST_TOKEN';
const VIEW = 'user_transaction_features';
/** Ports of this test's servers (its own range, so parallel tests never meet them). */
const TLS_PORT = 19510;
const PLAIN_PORT = 19511;
const REFUSED_PORT = 19512;

interface FeastResponse {
  metadata: { feature_names: string[] };
  results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[];
}

/** The URL a server prints once listening (server-process.ts waits for http:// only), or its exit. */
async function listening(server: ServerProcess, scheme: 'http' | 'https'): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = new RegExp(`server listening on (${scheme}://\\S+)`).exec(server.output());
    if (m) return m[1]!;
    if (server.child.exitCode !== null)
      throw new Error(`server exited before listening:\n${server.output()}`);
    if (Date.now() > deadline) throw new Error(`server not listening after 30 s:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('online server over HTTPS', { timeout: 300_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const definitions = loadDefinitionsFile(run.config.definitions);
  const view = definitions.views.find((v) => v.name === VIEW)!;
  const refs = view.features.map((f) => f.ref);
  const now = Date.now();
  const { events, users } = recentFraudEvents(now, { events: 600, users: 12, seed: 31 });
  const work = mkdtempSync(join(tmpdir(), 'stls-server-'));
  const cert = selfSignedCert(work, 'tessera-server');
  const ca = readFileSync(cert.cert);
  const serverEnv = {
    ...run.env,
    TESSERA_AUTH_TOKEN: TOKEN,
    TESSERA_SERVER_PUSH: 'false',
    TESSERA_LOG_LEVEL: 'info',
  };
  let tlsServer: ServerProcess;
  let plainServer: ServerProcess;
  let tlsUrl: string;
  let plainUrl: string;

  const lookupBody = (ids: number[], asOf?: number) =>
    JSON.stringify({
      features: refs,
      entities: { user_id: ids },
      ...(asOf === undefined ? {} : { as_of: new Date(asOf).toISOString() }),
    });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` };

  before(async () => {
    await createSourceTopic(run, 1);
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: fraudMessages(events) });
    await producer.disconnect();
    const ingestor = startIngestor(run);
    try {
      await ingestor.ready;
      await waitForCaughtUp(run, run.topic, 60_000);
    } finally {
      await stopProcess(ingestor);
    }
    tlsServer = startServer({
      ...serverEnv,
      TESSERA_HTTP_PORT: String(TLS_PORT),
      TESSERA_SERVER_TLS_CERT_FILE: cert.cert,
      TESSERA_SERVER_TLS_KEY_FILE: cert.key,
      TESSERA_SERVER_REQUEST_TIMEOUT_MS: '1000',
    });
    plainServer = startServer({ ...serverEnv, TESSERA_HTTP_PORT: String(PLAIN_PORT) });
    [tlsUrl, plainUrl] = await Promise.all([listening(tlsServer, 'https'), listening(plainServer, 'http')]);
  });

  after(async () => {
    await tlsServer?.stop();
    await plainServer?.stop();
    await cleanupRun(run);
    rmSync(work, { recursive: true, force: true });
  });

  it('answers lookups over HTTPS as the plain-HTTP server over the same Redis does, and as the reference', async () => {
    assert.equal(tlsUrl, `https://127.0.0.1:${TLS_PORT}`);
    const t = now; // as_of pins the read time: both answers and the reference are for the same t
    const overTls = await httpsRequest(`${tlsUrl}/get-online-features`, {
      ca,
      method: 'POST',
      headers,
      body: lookupBody(users, t),
    });
    assert.equal(overTls.status, 200, overTls.body);
    const plain = await fetch(`${plainUrl}/get-online-features`, {
      method: 'POST',
      headers,
      body: lookupBody(users, t),
    });
    assert.equal(plain.status, 200);
    assert.equal(overTls.body, await plain.text(), 'the same bytes over HTTPS and over HTTP');
    const body = JSON.parse(overTls.body) as FeastResponse;
    let present = 0;
    view.features.forEach((f, fi) => {
      users.forEach((user, row) => {
        if (body.results[fi + 1]!.statuses[row] !== 'PRESENT') return;
        const want = naiveFraudValue(events, user, f, t);
        const got = body.results[fi + 1]!.values[row];
        assert.ok(
          sameValue(f.aggregation, got, want),
          `${f.name} of user ${user}: ${got}, reference ${want}`,
        );
        present++;
      });
    });
    assert.ok(present >= (users.length * refs.length) / 2, `only ${present} values were PRESENT`);
    assert.ok(
      body.results[1]!.values.some((v) => (v as number) > 0),
      'real counts, not only zeros',
    );
  });

  it('serves /health, /ready and /metrics on the same HTTPS port, and auth still applies', async () => {
    for (const path of ['/health', '/ready', '/metrics']) {
      const res = await httpsRequest(`${tlsUrl}${path}`, { ca });
      assert.equal(res.status, 200, `${path}: ${res.body}`);
    }
    const metrics = await httpsRequest(`${tlsUrl}/metrics`, { ca });
    assert.match(
      metrics.body,
      /tessera_server_request_duration_seconds_count\{route="\/get-online-features",status="200"\} [1-9]/,
    );
    const noToken = await httpsRequest(`${tlsUrl}/get-online-features`, {
      ca,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: lookupBody(users),
    });
    assert.equal(noToken.status, 401);
  });

  it('answers nothing to plain HTTP on the TLS port, and is refused by a client that trusts only the system CAs', async () => {
    await assert.rejects(fetch(`http://127.0.0.1:${TLS_PORT}/health`), TypeError);
    await assert.rejects(
      fetch(`${tlsUrl}/health`),
      (error: Error) => /self[- ]signed/i.test(String((error.cause as Error | undefined)?.message)),
      'the certificate is checked, not skipped',
    );
    // The server is unharmed by either.
    assert.equal((await httpsRequest(`${tlsUrl}/health`, { ca })).status, 200);
  });

  it('still answers 408 to a request that does not arrive whole in time over TLS', async () => {
    const started = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: TLS_PORT, ca }, () => {
        // Headers announcing a body that never comes.
        socket.write(
          `POST /get-online-features HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
        );
      });
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        got += chunk;
      });
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
      setTimeout(() => socket.destroy(new Error(`no answer within 10 s: ${got}`)), 10_000).unref();
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /TESSERA_SERVER_REQUEST_TIMEOUT_MS/);
    assert.ok(Date.now() - started < 5000, `408 after ${Date.now() - started} ms, the timeout is 1 s`);
  });

  it("gives Feast's SDK our values over HTTPS through a generated repo's online_store.cert", async () => {
    const python = process.env.TESSERA_PYTHON;
    assert.ok(python, 'TESSERA_PYTHON is unset: eval "$(scripts/stack env)"');
    const repo = join(work, 'repo');
    await execFileAsync(
      process.execPath,
      [
        '--import',
        'tsx',
        'shared/definitions/feast-repo.ts',
        run.config.definitions,
        '--out',
        repo,
        '--offline-store',
        join(work, 'offline'),
        '--server',
        tlsUrl,
        '--server-cert',
        cert.cert,
        '--token-env-var',
        TOKEN_VAR,
      ],
      { env: { ...process.env, ...run.env } },
    );
    assert.match(
      readFileSync(join(repo, 'feature_store.yaml'), 'utf8'),
      /^ {2}cert: ".*tessera-server\.crt"$/m,
    );
    await execFileAsync(join(dirname(python), 'feast'), ['-c', repo, 'apply'], { timeout: 180_000 });
    const ids = users.slice(0, 6);
    const serverValues = async () => {
      const res = await httpsRequest(`${tlsUrl}/get-online-features`, {
        ca,
        method: 'POST',
        headers,
        body: lookupBody(ids),
      });
      assert.equal(res.status, 200, res.body);
      return (JSON.parse(res.body) as FeastResponse).results.slice(1).map((r) => r.values);
    };
    const request = join(work, 'request.json');
    writeFileSync(
      request,
      JSON.stringify({ online: { features: refs }, entity_rows: ids.map((id) => ({ user_id: id })) }),
    );
    const before1 = await serverValues();
    const { stdout } = await execFileAsync(python, ['test/compat/feast_generated_repo.py', repo, request], {
      timeout: 180_000,
      // No REQUESTS_CA_BUNDLE or the like: the repo's cert line is the only trust Feast has.
      env: { ...process.env, [TOKEN_VAR]: TOKEN, REQUESTS_CA_BUNDLE: '', SSL_CERT_FILE: '' },
    });
    const after1 = await serverValues();
    const answer = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown[]>;
    assert.deepEqual(answer.user_id, ids);
    view.features.forEach((f, j) => {
      ids.forEach((id, row) => {
        // Feast read the server between the two reads: either one's value is right.
        const got = answer[f.name]?.[row];
        assert.ok(
          [before1, after1].some((v) => v[j]![row] === got),
          `${f.name} of user ${id}: Feast ${String(got)}, server ${String(before1[j]![row])}`,
        );
      });
    });
    assert.ok(
      before1.flat().some((v) => typeof v === 'number' && v > 1),
      'the users have real values',
    );
    // The cert line is what made it work: without it Feast refuses the self-signed certificate.
    const yaml = join(repo, 'feature_store.yaml');
    const withCert = readFileSync(yaml, 'utf8');
    writeFileSync(yaml, withCert.replace(/^ {2}cert: .*\n/m, ''));
    await assert.rejects(
      execFileAsync(python, ['test/compat/feast_generated_repo.py', repo, request], {
        timeout: 180_000,
        env: { ...process.env, [TOKEN_VAR]: TOKEN },
      }),
      (error: Error & { stderr?: string }) => /CERTIFICATE_VERIFY_FAILED/.test(error.stderr ?? ''),
    );
    writeFileSync(yaml, withCert);
  });

  it('refuses to start with a certificate file it cannot use, naming the variable and never the key', async (t) => {
    const other = selfSignedCert(work, 'other');
    const keyLines = readFileSync(other.key, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----'));
    for (const [env, why] of [
      [
        { TESSERA_SERVER_TLS_CERT_FILE: cert.cert },
        /TESSERA_SERVER_TLS_KEY_FILE \(default\) = "": is needed with TESSERA_SERVER_TLS_CERT_FILE/,
      ],
      [
        { TESSERA_SERVER_TLS_CERT_FILE: cert.cert, TESSERA_SERVER_TLS_KEY_FILE: join(work, 'missing.key') },
        /TESSERA_SERVER_TLS_KEY_FILE = .*missing\.key: cannot read it \(ENOENT\)/,
      ],
      [
        { TESSERA_SERVER_TLS_CERT_FILE: cert.cert, TESSERA_SERVER_TLS_KEY_FILE: other.key },
        /TESSERA_SERVER_TLS_CERT_FILE, TESSERA_SERVER_TLS_KEY_FILE: not usable together/,
      ],
    ] as const) {
      const refused = stopAfter(
        t,
        startServer({ ...serverEnv, TESSERA_HTTP_PORT: String(REFUSED_PORT), ...env }),
      );
      assert.equal(await refused.exited, 1, refused.output());
      assert.match(refused.output(), why);
      assert.doesNotMatch(refused.output(), /server listening/);
      for (const line of keyLines)
        assert.ok(!refused.output().includes(line), 'a line of the key was printed');
    }
  });
});

/** A certificate's SHA-256 fingerprint and not-after time as openssl prints them: the oracle. */
function opensslFacts(certFile: string): { fingerprint: string; notAfter: number } {
  const out = execFileSync(
    'openssl',
    ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256', '-enddate'],
    { encoding: 'utf8' },
  );
  return {
    fingerprint: /Fingerprint=([0-9A-Fa-f:]+)/.exec(out)![1]!.toUpperCase(),
    notAfter: Date.parse(/notAfter=(.*)/.exec(out)![1]!) / 1000,
  };
}

/** A new TLS connection to the port, certificate unchecked: what matters is which one it gets. */
function openTls(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(socket));
    socket.once('error', reject);
  });
}

async function servedFingerprint(port: number): Promise<string> {
  const socket = await openTls(port);
  const fingerprint = socket.getPeerCertificate().fingerprint256;
  socket.destroy();
  return fingerprint;
}

/** One keep-alive GET /health on an open socket: its status line. */
function healthOn(socket: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer) => {
      got += chunk.toString('utf8');
      if (/\r\n\r\n[\s\S]*\}/.test(got)) {
        socket.off('data', onData);
        resolve(got.split('\r\n')[0]!);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
  });
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('online server renewing its HTTPS certificate without a restart', { timeout: 180_000 }, () => {
  const run = newTestRun({}, 'stls-renew');
  const work = mkdtempSync(join(tmpdir(), 'stls-renew-'));
  const a = selfSignedCert(work, 'renew-a');
  const b = selfSignedCert(work, 'renew-b');
  const c = selfSignedCert(work, 'renew-c');
  const facts = { a: opensslFacts(a.cert), b: opensslFacts(b.cert), c: opensslFacts(c.cert) };
  /** Trusts every certificate the servers may serve, for /metrics. */
  const anyCa = Buffer.concat([a.cert, b.cert, c.cert].map((f) => readFileSync(f)));
  const servers: ServerProcess[] = [];

  const start = async (files: CertFiles, intervalMs: number) => {
    const server = startServer({
      ...run.env,
      TESSERA_AUTH_TOKEN: TOKEN,
      TESSERA_SERVER_PUSH: 'false',
      TESSERA_LOG_LEVEL: 'info',
      TESSERA_SERVER_TLS_CERT_FILE: files.cert,
      TESSERA_SERVER_TLS_KEY_FILE: files.key,
      TESSERA_TLS_RELOAD_INTERVAL_MS: String(intervalMs),
    });
    servers.push(server);
    const url = await listening(server, 'https');
    return { server, url, port: Number(new URL(url).port) };
  };
  /** A sample of the server's /metrics, by metric name and labels as written in the text. */
  const metric = async (url: string, series: string): Promise<number | undefined> => {
    const text = (await httpsRequest(`${url}/metrics`, { ca: anyCa })).body;
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const reloaded = 'tessera_server_tls_reloads_total{use="server",outcome="reloaded"}';
  const refused = 'tessera_server_tls_reloads_total{use="server",outcome="refused"}';
  const expiry = 'tessera_server_tls_certificate_expiry_timestamp_seconds{use="server"}';
  /** Copies a certificate pair over the served files (in place: same paths, same inodes). */
  const rewrite = (served: CertFiles, from: CertFiles) => {
    writeFileSync(served.cert, readFileSync(from.cert));
    writeFileSync(served.key, readFileSync(from.key));
  };

  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await cleanupRun(run);
    rmSync(work, { recursive: true, force: true });
  });

  it('serves a pair rewritten in place to new connections, keeps open ones, and refuses a broken one', async () => {
    const served = { cert: join(work, 'inplace.crt'), key: join(work, 'inplace.key') };
    rewrite(served, a);
    const { server, url, port } = await start(served, 200);
    assert.equal(await servedFingerprint(port), facts.a.fingerprint);
    assert.equal(await metric(url, expiry), facts.a.notAfter);
    assert.equal(await metric(url, reloaded), undefined, 'no reload before the files change');
    const open = await openTls(port);
    assert.match(await healthOn(open), /^HTTP\/1\.1 200/);

    rewrite(served, b);
    await eventually(
      'a new connection gets B',
      async () => (await servedFingerprint(port)) === facts.b.fingerprint,
    );
    assert.equal(await metric(url, reloaded), 1);
    assert.equal(await metric(url, expiry), facts.b.notAfter, 'the gauge follows the new certificate');
    // The connection opened before goes on, with the certificate it was opened with.
    assert.match(await healthOn(open), /^HTTP\/1\.1 200/);
    assert.equal(open.getPeerCertificate().fingerprint256, facts.a.fingerprint);
    open.destroy();

    // Half-written (the certificate cut short), then a certificate with another's key: both refused.
    const bCert = readFileSync(b.cert, 'utf8');
    writeFileSync(served.cert, bCert.slice(0, bCert.length / 2));
    await eventually('the cut certificate is refused', async () => (await metric(url, refused)) === 1);
    writeFileSync(served.cert, readFileSync(c.cert));
    await eventually('the mismatched pair is refused', async () => (await metric(url, refused)) === 2);
    await new Promise((resolve) => setTimeout(resolve, 600)); // three more looks: counted once each
    assert.equal(await metric(url, refused), 2, 'a refused content is counted once, not at every look');
    assert.equal(await servedFingerprint(port), facts.b.fingerprint, 'still serving B');
    assert.equal(await metric(url, expiry), facts.b.notAfter);
    assert.equal(server.child.exitCode, null, 'still running');
    assert.match(
      server.output(),
      /TESSERA_SERVER_TLS_CERT_FILE, TESSERA_SERVER_TLS_KEY_FILE: not usable together/,
    );
    assert.match(server.output(), /renewed TLS files refused: still using the certificate loaded before/);
    for (const line of readFileSync(b.key, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----')))
      assert.ok(!server.output().includes(line), 'a line of the key was logged');

    // Mended: the next change is tried again, and taken.
    writeFileSync(served.key, readFileSync(c.key));
    await eventually(
      'a new connection gets C',
      async () => (await servedFingerprint(port)) === facts.c.fingerprint,
    );
    assert.equal(await metric(url, reloaded), 2);
    assert.equal(await metric(url, refused), 2);
  });

  it('serves the pair a Kubernetes-like ..data symlink swap puts in place', async () => {
    // kubelet's layout for a mounted Secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/,
    // renewed by writing a new timestamped directory and renaming a new link over ..data.
    const mount = join(work, 'secret');
    const version = (name: string, from: CertFiles) => {
      mkdirSync(join(mount, name), { recursive: true });
      copyFileSync(from.cert, join(mount, name, 'tls.crt'));
      copyFileSync(from.key, join(mount, name, 'tls.key'));
    };
    version('..2025_01_01_00_00_00.1', a);
    symlinkSync('..2025_01_01_00_00_00.1', join(mount, '..data'));
    symlinkSync('..data/tls.crt', join(mount, 'tls.crt'));
    symlinkSync('..data/tls.key', join(mount, 'tls.key'));
    const { url, port } = await start({ cert: join(mount, 'tls.crt'), key: join(mount, 'tls.key') }, 200);
    assert.equal(await servedFingerprint(port), facts.a.fingerprint);

    version('..2025_02_01_00_00_00.2', b);
    symlinkSync('..2025_02_01_00_00_00.2', join(mount, '..data_tmp'));
    renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    rmSync(join(mount, '..2025_01_01_00_00_00.1'), { recursive: true });
    await eventually(
      'a new connection gets B',
      async () => (await servedFingerprint(port)) === facts.b.fingerprint,
    );
    assert.equal(await metric(url, reloaded), 1);
    assert.equal(await metric(url, refused), undefined);
    assert.equal(await metric(url, expiry), facts.b.notAfter);
  });

  it('reloads on SIGHUP, with the periodic look off', async () => {
    const served = { cert: join(work, 'hup.crt'), key: join(work, 'hup.key') };
    rewrite(served, a);
    const { server, url, port } = await start(served, 0);
    rewrite(served, b);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(await servedFingerprint(port), facts.a.fingerprint, 'no look without SIGHUP');
    server.child.kill('SIGHUP');
    await eventually(
      'a new connection gets B',
      async () => (await servedFingerprint(port)) === facts.b.fingerprint,
    );
    assert.equal(await metric(url, reloaded), 1);
    assert.equal(server.child.exitCode, null, 'SIGHUP did not end it');
    assert.equal((await httpsRequest(`${url}/health`, { ca: anyCa })).status, 200);
  });
});
