// Tessera against a Kafka that needs TLS and a login, as a managed Kafka does: a private broker with
// a SASL_SSL listener (SCRAM and PLAIN users) and an SSL listener that requires client certificates.
// The producer CLI and the real ingestor (with kafkajs' fast paths in place) go through it, and
// every entity's features in Redis equal the engine run offline; wrong credentials or an untrusted
// broker certificate end in a clear error, not in a hang.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
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

/** Runs the producer CLI to its end with the run's settings. */
async function producerCli(
  run: TestRun,
  argv: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/producer/main.ts', ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...run.env },
  });
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
async function ingestAndCompare(run: TestRun, events: readonly FraudEvent[]): Promise<string> {
  const ingestor = startIngestor(run);
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
  const runs: TestRun[] = [];
  const newRun = (login: KafkaLogin, env: Record<string, string> = {}) => {
    // Event-time clock: the generated stream is historical.
    const run = kafkaSecurityRun({ ...broker.clientEnv(login), TESSERA_INGEST_CLOCK: 'event', ...env });
    runs.push(run);
    return run;
  };

  before(async () => {
    broker = await KafkaSecurityBroker.start();
  });
  after(async () => {
    // While the broker runs: the runs' topics go with it anyway, their Redis keys do not.
    for (const run of runs) await cleanupRun(run).catch(() => undefined);
    broker?.remove();
  });

  it('SCRAM-SHA-512 over TLS: the producer CLI and the ingestor, fast paths on, give the offline features', async () => {
    // Info level: the ingestor's start-up line says whether kafkajs' fast paths are in place.
    const run = newRun('scram-sha-512', { TESSERA_LOG_LEVEL: 'info' });
    await createSourceTopic(run, 3);
    const produced = await producerCli(run, ['--events', '4000', '--rate', '0', '--seed', '41']);
    assert.equal(produced.code, 0, produced.stderr);
    assert.match(produced.stdout, /4000/);
    const output = await ingestAndCompare(run, generateFraudEvents({ events: 4000, seed: 41 }));
    assert.match(output, /produce requests, request framing and record decoding replaced/);
    assert.ok(!output.includes(USERS.scram.password), 'the SASL password is in the ingestor output');
    assert.match(output, /TESSERA_KAFKA_SASL_PASSWORD = <redacted>/);
  });

  it('SCRAM-SHA-256 with the password from a file (a mounted Secret)', async () => {
    const passwordFile = broker.file('scram-password');
    writeFileSync(passwordFile, `${USERS.scram.password}\n`);
    const run = newRun('scram-sha-256', {
      TESSERA_KAFKA_SASL_PASSWORD: '',
      TESSERA_KAFKA_SASL_PASSWORD_FILE: passwordFile,
    });
    await createSourceTopic(run, 3);
    const produced = await producerCli(run, ['--events', '1500', '--rate', '0', '--seed', '43']);
    assert.equal(produced.code, 0, produced.stderr);
    await ingestAndCompare(run, generateFraudEvents({ events: 1500, seed: 43 }));
  });

  for (const login of ['plain', 'mtls'] as const)
    it(`${login === 'plain' ? 'PLAIN over TLS' : 'mutual TLS (client certificate)'}: the ingestor gives the offline features`, async () => {
      const run = newRun(login);
      await createSourceTopic(run, 3);
      const events = generateFraudEvents({ events: 1500, seed: 47 });
      const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      await producer.send({ topic: run.topic, messages: fraudMessages(events) });
      await producer.disconnect();
      await ingestAndCompare(run, events);
    });

  it('wrong credentials: the ingestor says authentication failed and never gets ready', async () => {
    const wrong = 'ksec-not-the-password';
    const run = newRun('scram-sha-512', { TESSERA_KAFKA_SASL_PASSWORD: wrong });
    const ingestor = startIngestor(run);
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

    const producer = await producerCli(run, ['--events', '10', '--rate', '0']);
    assert.equal(producer.code, 2, producer.stderr); // a usage error: no point retrying it
    assert.match(
      producer.stderr,
      /refused the login \(SASL SCRAM SHA512 authentication failed.*check TESSERA_KAFKA_SASL_USERNAME/,
    );
    assert.ok(!producer.stderr.includes(wrong), 'the password is in the producer output');
  });

  it('a broker certificate the CA file does not vouch for: a clear TLS error', async () => {
    // The client certificate is signed by the test CA but is no CA itself: nothing it signs is trusted.
    const run = newRun('scram-sha-512', { TESSERA_KAFKA_TLS_CA_FILE: broker.file('client.crt') });
    const ingestor = startIngestor(run);
    const outcome = await readyOrExited(ingestor);
    assert.equal(outcome, 'exited', ingestor.output());
    assert.match(ingestor.output(), /certificate.*"hint":"TLS failed: check TESSERA_KAFKA_TLS_CA_FILE/i);
  });
});
