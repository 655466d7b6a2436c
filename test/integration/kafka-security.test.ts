// Tessera against a Kafka that needs TLS and a login, as a managed Kafka does: a private broker with
// a SASL_SSL listener (SCRAM and PLAIN users) and an SSL listener that requires client certificates.
// The producer CLI and the real ingestor (with kafkajs' fast paths in place) go through it, and
// every entity's features in Redis equal the engine run offline; wrong credentials or an untrusted
// broker certificate end in a clear error, not in a hang. The same listener takes OAUTHBEARER: JWTs
// signed by a test IdP (oauth-idp.ts) and checked against its JWKS, from its client credentials
// token endpoint (tokens of 20 s, so a run of 30 s needs fresh ones) or from a token file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { type FraudEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import {
  type KafkaLogin,
  KafkaSecurityBroker,
  kafkaSecurityRun,
  USERS,
} from '../support/kafka-security-broker.ts';
import { OauthIdp } from '../support/oauth-idp.ts';
import { trackChild } from '../support/process-guard.ts';
import { stopAfter } from '../support/stop-after.ts';

const OAUTH = {
  clientId: 'tessera-ksec',
  clientSecret: `oauth-${randomUUID()}`,
  audience: 'tessera-kafka',
  expiresInSeconds: 20,
};

/** Runs the producer CLI to its end with the run's settings. */
async function producerCli(
  t: TestContext,
  run: TestRun,
  argv: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/producer/main.ts', ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...run.env },
  });
  trackChild(child, 'producer CLI');
  stopAfter(t, child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

/** The ingestor consumes the run's source topic to its end; every entity then equals the offline engine. */
async function ingestAndCompare(
  t: TestContext,
  run: TestRun,
  events: readonly FraudEvent[],
): Promise<string> {
  const ingestor = stopAfter(t, startIngestor(run));
  await ingestor.ready;
  await waitForCaughtUp(run, run.topic, 120_000);
  ingestor.child.kill('SIGTERM');
  assert.equal(await ingestor.exited, 0, `graceful stop failed:\n${ingestor.output()}`);
  const { entities, differences } = await differencesFromOffline(run, events);
  assert.ok(entities > 50, `only ${entities} entities`);
  assert.deepEqual(differences, [], `first differences among ${entities} entities`);
  return ingestor.output();
}

/** Whether a started ingestor got ready or exited first (60 s at most); it is killed either way. */
async function readyOrExited(ingestor: ReturnType<typeof startIngestor>): Promise<string> {
  const outcome = await Promise.race([
    ingestor.ready.then(
      () => 'ready',
      () => 'exited',
    ),
    new Promise<string>((r) => setTimeout(r, 60_000, 'neither')),
  ]);
  ingestor.child.kill('SIGKILL');
  return outcome;
}

describe('Kafka over TLS and SASL', { timeout: 600_000 }, () => {
  let broker: KafkaSecurityBroker;
  let idp: OauthIdp;
  const runs: TestRun[] = [];
  const newRun = (login: KafkaLogin, env: Record<string, string> = {}) => {
    // Event-time clock: the generated stream is historical.
    const run = kafkaSecurityRun({ ...broker.clientEnv(login), TESSERA_INGEST_CLOCK: 'event', ...env });
    runs.push(run);
    return run;
  };

  before(async () => {
    idp = await OauthIdp.start(OAUTH);
    broker = await KafkaSecurityBroker.start({
      jwksUrl: idp.jwksUrl,
      issuer: idp.issuer,
      audience: OAUTH.audience,
      // Sessions end with their token (20 s), well before this.
      reauthMs: 60_000,
    });
  });
  after(async () => {
    // While the broker runs: the runs' topics go with it anyway, their Redis keys do not.
    for (const run of runs) await cleanupRun(run).catch(() => undefined);
    broker?.remove();
    idp?.stop();
  });

  it('SCRAM-SHA-512 over TLS: the producer CLI and the ingestor, fast paths on, give the offline features', async (t) => {
    // Info level: the ingestor's start-up line says whether kafkajs' fast paths are in place.
    const run = newRun('scram-sha-512', { TESSERA_LOG_LEVEL: 'info' });
    await createSourceTopic(run, 3);
    const produced = await producerCli(t, run, ['--events', '4000', '--rate', '0', '--seed', '41']);
    assert.equal(produced.code, 0, produced.stderr);
    assert.match(produced.stdout, /4000/);
    const output = await ingestAndCompare(t, run, generateFraudEvents({ events: 4000, seed: 41 }));
    assert.match(output, /produce requests, request framing and record decoding replaced/);
    assert.ok(!output.includes(USERS.scram.password), 'the SASL password is in the ingestor output');
    assert.match(output, /TESSERA_KAFKA_SASL_PASSWORD = <redacted>/);
  });

  it('SCRAM-SHA-256 with the password from a file (a mounted Secret)', async (t) => {
    const passwordFile = broker.file('scram-password');
    writeFileSync(passwordFile, `${USERS.scram.password}\n`);
    const run = newRun('scram-sha-256', {
      TESSERA_KAFKA_SASL_PASSWORD: '',
      TESSERA_KAFKA_SASL_PASSWORD_FILE: passwordFile,
    });
    await createSourceTopic(run, 3);
    const produced = await producerCli(t, run, ['--events', '1500', '--rate', '0', '--seed', '43']);
    assert.equal(produced.code, 0, produced.stderr);
    await ingestAndCompare(t, run, generateFraudEvents({ events: 1500, seed: 43 }));
  });

  for (const login of ['plain', 'mtls'] as const)
    it(`${login === 'plain' ? 'PLAIN over TLS' : 'mutual TLS (client certificate)'}: the ingestor gives the offline features`, async (t) => {
      const run = newRun(login);
      await createSourceTopic(run, 3);
      const events = generateFraudEvents({ events: 1500, seed: 47 });
      const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      await producer.send({ topic: run.topic, messages: fraudMessages(events) });
      await producer.disconnect();
      await ingestAndCompare(t, run, events);
    });

  it('wrong credentials: the ingestor says authentication failed and never gets ready', async (t) => {
    const wrong = 'ksec-not-the-password';
    const run = newRun('scram-sha-512', { TESSERA_KAFKA_SASL_PASSWORD: wrong });
    const ingestor = stopAfter(t, startIngestor(run));
    const outcome = await readyOrExited(ingestor);
    assert.equal(
      outcome,
      'exited',
      `the ingestor did not stop on refused credentials:\n${ingestor.output()}`,
    );
    assert.equal(await ingestor.exited, 1);
    assert.match(
      ingestor.output(),
      /"hint":"the broker refused the login: check TESSERA_KAFKA_SASL_USERNAME[^\n]*"msg":"SASL SCRAM SHA512 authentication failed/,
      ingestor.output(),
    );
    assert.ok(!ingestor.output().includes(wrong), 'the password is in the output');

    const producer = await producerCli(t, run, ['--events', '10', '--rate', '0']);
    assert.equal(producer.code, 2, producer.stderr); // a usage error: no point retrying it
    assert.match(
      producer.stderr,
      /refused the login \(SASL SCRAM SHA512 authentication failed.*check TESSERA_KAFKA_SASL_USERNAME/,
    );
    assert.ok(!producer.stderr.includes(wrong), 'the password is in the producer output');
  });

  it('a broker certificate the CA file does not vouch for: a clear TLS error', async (t) => {
    // The client certificate is signed by the test CA but is no CA itself: nothing it signs is trusted.
    const run = newRun('scram-sha-512', { TESSERA_KAFKA_TLS_CA_FILE: broker.file('client.crt') });
    const ingestor = stopAfter(t, startIngestor(run));
    const outcome = await readyOrExited(ingestor);
    assert.equal(outcome, 'exited', ingestor.output());
    assert.match(ingestor.output(), /certificate.*"hint":"TLS failed: check TESSERA_KAFKA_TLS_CA_FILE/i);
    // The producer CLI says the same, not to check the brokers' address.
    const producer = await producerCli(t, run, ['--events', '10', '--rate', '0']);
    assert.equal(producer.code, 1, producer.stderr);
    assert.match(
      producer.stderr,
      /cannot reach Kafka at [^\n]*certificate[^\n]*\); TLS failed: check TESSERA_KAFKA_TLS_CA_FILE/i,
    );
  });

  const clientCredentials = (secret = OAUTH.clientSecret) => ({
    TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: idp.tokenUrl,
    TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID: OAUTH.clientId,
    TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: secret,
  });

  it('OAUTHBEARER client credentials, tokens of 20 s: a 30 s producer CLI run and the ingestor refresh them and give the offline features', async (t) => {
    const run = newRun('oauthbearer', { ...clientCredentials(), TESSERA_LOG_LEVEL: 'info' });
    await createSourceTopic(run, 3);
    const issuedBefore = (await idp.stats()).issued;
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    // 100 events a second: both processes stay connected past their first tokens' expiry, and the
    // broker ends each session when its token expires, so only re-authentication keeps them going.
    const started = Date.now();
    const produced = await producerCli(t, run, ['--events', '3000', '--rate', '100', '--seed', '53']);
    assert.equal(produced.code, 0, produced.stderr);
    assert.ok(Date.now() - started > 25_000, 'the producer run was shorter than a token');
    await waitForCaughtUp(run, run.topic, 120_000);
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0, `graceful stop failed:\n${ingestor.output()}`);
    const { entities, differences } = await differencesFromOffline(
      run,
      generateFraudEvents({ events: 3000, seed: 53 }),
    );
    assert.ok(entities > 50, `only ${entities} entities`);
    assert.deepEqual(differences, [], `first differences among ${entities} entities`);
    // Two processes, each with a first token and at least one refresh after 20 s.
    const issued = (await idp.stats()).issued - issuedBefore;
    assert.ok(issued >= 4, `the IdP issued only ${issued} tokens: nothing was refreshed`);
    const output = ingestor.output() + produced.stdout + produced.stderr;
    assert.ok(!output.includes(OAUTH.clientSecret), 'the client secret is in the output');
    assert.ok(!/eyJ[\w-]+\.eyJ/.test(output), 'a token is in the output');
    assert.match(ingestor.output(), /TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET = <redacted>/);
  });

  it('OAUTHBEARER from a token file (a sidecar keeps it fresh): the ingestor gives the offline features', async (t) => {
    const tokenFile = broker.file('oauth-token');
    writeFileSync(tokenFile, `${await idp.mint('tessera-file', 300)}\n`);
    const run = newRun('oauthbearer', { TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: tokenFile });
    await createSourceTopic(run, 3);
    const events = generateFraudEvents({ events: 1500, seed: 59 });
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: run.topic, messages: fraudMessages(events) });
    await producer.disconnect();
    await ingestAndCompare(t, run, events);
  });

  it('OAUTHBEARER with a wrong client secret: the ingestor and the producer CLI stop at once, naming the client id and secret', async (t) => {
    const wrong = 'ksec-not-the-client-secret';
    const run = newRun('oauthbearer', clientCredentials(wrong));
    const started = Date.now();
    const ingestor = stopAfter(t, startIngestor(run));
    assert.equal(await readyOrExited(ingestor), 'exited', ingestor.output());
    assert.equal(await ingestor.exited, 1);
    assert.ok(Date.now() - started < 20_000, `the ingestor took ${Date.now() - started} ms to give up`);
    assert.match(
      ingestor.output(),
      /token endpoint http:\/\/127\.0\.0\.1:\d+\/token refused the token request \(HTTP 401 invalid_client[^\n]*check TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID and TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET/,
    );
    assert.ok(!ingestor.output().includes(wrong), 'the client secret is in the output');

    const producer = await producerCli(t, run, ['--events', '10', '--rate', '0']);
    assert.equal(producer.code, 2, producer.stderr);
    assert.match(producer.stderr, /refused the token request \(HTTP 401 invalid_client/);
    assert.ok(!producer.stderr.includes(wrong), 'the client secret is in the producer output');
  });

  it('OAUTHBEARER with a token for another audience: the broker refusal is reported, not a lost broker', async (t) => {
    const tokenFile = broker.file('oauth-token-other');
    writeFileSync(tokenFile, await idp.mint('tessera-file', 300, 'another-service'));
    const run = newRun('oauthbearer', { TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: tokenFile });
    const producer = await producerCli(t, run, ['--events', '10', '--rate', '0']);
    assert.equal(producer.code, 2, producer.stderr);
    assert.match(
      producer.stderr,
      /the broker 127\.0\.0\.1:\d+ refused the token \(invalid_token\): its audience, issuer, expiry or signing key/,
    );
  });
});
