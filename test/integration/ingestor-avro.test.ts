// The ingestor on a source in the Confluent wire format (magic byte, schema id, Avro body): schemas
// resolved from TESSERA_SCHEMA_DIR, or from a schema registry over HTTP (TESSERA_SCHEMA_REGISTRY_URL,
// a small registry served here on loopback). Every entity must equal the engine run offline over the
// same events, and a frame with a schema id nobody knows is a dead letter, not a crash.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { produceEvents } from '../../services/producer/produce.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  newTestRun,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { opsUrl, scrapeMetrics } from '../support/ops-endpoint.ts';
import { stopAfter } from '../support/stop-after.ts';

const EVENTS = 3000;
const SEED = 17;
const SCHEMA = readFileSync('definitions/schemas/transaction.avsc', 'utf8');

describe('ingestor: avro-confluent sources', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-avro-'));
  const schemaDir = join(dir, 'schemas');
  const definitions = join(dir, 'fraud-confluent.yaml');
  let registry: Server;
  let registryUrl = '';
  let registryRequests = 0;
  /** While true the registry answers 503, as one being restarted does. */
  let registryDown = false;

  before(async () => {
    writeFileSync(
      definitions,
      readFileSync('definitions/fraud.yaml', 'utf8').replace('format: json', 'format: avro-confluent'),
    );
    mkdirSync(schemaDir);
    writeFileSync(join(schemaDir, '1.avsc'), SCHEMA);
    registry = createServer((req, res) => {
      registryRequests++;
      if (registryDown) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error_code: 50302, message: 'restarting' }));
      } else if (req.url === '/schemas/ids/1') {
        res.writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
        res.end(JSON.stringify({ schema: SCHEMA }));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
      }
    });
    await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
    registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
  });

  /** Generated fraud events to the run's topic, as Confluent frames of schema id 1. */
  const produceConfluent = (run: ReturnType<typeof newTestRun>, events: number, seed: number) => {
    const source = loadDefinitionsFile(definitions).sources[0]!;
    assert.equal(source.format, 'avro-confluent');
    return produceEvents({
      config: run.config,
      topic: run.topic,
      source,
      definitionsDir: dir,
      schemaDir,
      schemaId: 1,
      events,
      seed,
      rate: 0,
    });
  };

  after(async () => {
    await new Promise((resolve) => registry.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const where of ['schema directory', 'schema registry'] as const) {
    it(`resolves schema ids from a ${where}; an unknown id is dead-lettered`, async (t) => {
      const run = newTestRun({
        TESSERA_DEFINITIONS: definitions,
        TESSERA_INGEST_CLOCK: 'event',
        ...(where === 'schema directory'
          ? { TESSERA_SCHEMA_DIR: schemaDir }
          : { TESSERA_SCHEMA_REGISTRY_URL: registryUrl }),
      });
      const requestsBefore = registryRequests;
      try {
        await createSourceTopic(run, 3);
        const summary = await produceConfluent(run, EVENTS, SEED);
        assert.equal(summary.sent, EVENTS);
        // A well-formed frame whose schema id (99) neither the directory nor the registry knows.
        const producer = run.kafka.producer();
        await producer.connect();
        const frame = Buffer.alloc(5 + 4);
        frame.writeUInt8(0, 0);
        frame.writeUInt32BE(99, 1);
        await producer.send({ topic: run.topic, messages: [{ key: '1', value: frame }] });
        await producer.disconnect();

        const ingestor = stopAfter(t, startIngestor(run));
        await ingestor.ready;
        await waitForCaughtUp(run, run.topic, 120_000);
        const metrics = await scrapeMetrics(ingestor.output());
        ingestor.child.kill('SIGTERM');
        assert.equal(await ingestor.exited, 0);

        assert.match(
          metrics,
          /tessera_ingestor_dlq_events_total\{topic="[^"]+",reason="undecodable"\} 1\n/,
          'the unknown schema id went to the DLQ',
        );
        const { entities, differences } = await differencesFromOffline(
          run,
          generateFraudEvents({ events: EVENTS, seed: SEED }),
        );
        assert.ok(entities > 100);
        assert.deepEqual(differences, [], `first differences among ${entities} entities`);
        if (where === 'schema registry')
          assert.ok(registryRequests > requestsBefore, 'the registry was asked for the schema');
      } finally {
        await cleanupRun(run);
      }
    });
  }

  it('holds a batch (its partitions paused and fetched again) while the registry is down: no consumer crash, /ready says why, nothing lost', async () => {
    // Handed to kafkajs, the registry's retriable error crashed the consumer five times in 40 s,
    // each crash a rebalance of the whole group, while /ready mostly said ready.
    const run = newTestRun({
      TESSERA_DEFINITIONS: definitions,
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_SCHEMA_REGISTRY_URL: registryUrl,
    });
    try {
      await createSourceTopic(run, 2);
      await produceConfluent(run, 500, SEED + 1);
      registryDown = true;
      const ingestor = startIngestor(run);
      try {
        await ingestor.ready;
        const url = opsUrl(ingestor.output());
        const ready: number[] = [];
        let reason = '';
        // Until /ready names the held batch (the group join and a fetch come first: a moment, longer
        // on a busy machine), then 12 answers 500 ms apart, every one 503: a crash loop said ready at
        // each rejoin.
        const deadline = Date.now() + 30_000;
        while (!/keeps failing/.test(reason)) {
          assert.ok(
            Date.now() < deadline,
            `/ready named no held batch in 30 s: ${ready.join(' ')} ${reason}`,
          );
          const res = await fetch(`${url}/ready`);
          ready.push(res.status);
          if (res.status !== 200) reason = await res.text();
          if (!/keeps failing/.test(reason)) await new Promise((resolve) => setTimeout(resolve, 250));
        }
        const first = ready.length - 1;
        reason = '';
        for (let i = 0; i < 12; i++) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          const res = await fetch(`${url}/ready`);
          ready.push(res.status);
          if (res.status !== 200) reason = await res.text();
        }
        assert.ok(
          ready.slice(first).every((s) => s === 503),
          `/ready while the registry is down (from the first answer naming it): ${ready.join(' ')}`,
        );
        assert.match(reason, /keeps failing/);
        registryDown = false;
        await waitForCaughtUp(run, run.topic, 60_000);
        const metrics = await scrapeMetrics(ingestor.output());
        assert.match(metrics, /tessera_ingestor_consumer_crashes_total\{cause="batch"\} 0\n/);
        assert.match(metrics, /tessera_ingestor_consumer_crashes_total\{cause="kafka"\} 0\n/);
        const failures = Number(/tessera_ingestor_schema_registry_errors_total (\d+)/.exec(metrics)?.[1]);
        assert.ok(failures >= 3, `registry failures counted: ${failures}`);
        assert.equal((await fetch(`${url}/ready`)).status, 200);
      } finally {
        registryDown = false;
        ingestor.child.kill('SIGTERM');
        assert.equal(await ingestor.exited, 0);
      }
      const { entities, differences } = await differencesFromOffline(
        run,
        generateFraudEvents({ events: 500, seed: SEED + 1 }),
      );
      assert.ok(entities > 10);
      assert.deepEqual(differences, [], `first differences among ${entities} entities`);
    } finally {
      await cleanupRun(run);
    }
  });
});
