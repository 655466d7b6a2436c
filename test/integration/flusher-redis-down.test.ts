// A flusher whose Redis is out of reach still writes the offline store: the entity snapshot (the one
// thing that needs Redis) is skipped, counted and logged, and /ready names Redis. The snapshot used
// to run inside every flush: with Redis down each flush failed and was retried forever (no raw log,
// no training rows, no latest/, no Kafka commit), /ready blamed the offline store, and SIGTERM
// hung until the 60 s guard.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupStore,
  createFlusherTopics,
  expectedRows,
  freePort,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
  readTables,
  rowMessage,
  type ServiceProcess,
  startFlusher,
  waitForGroup,
} from '../support/flusher-process.ts';
import { cleanupRun } from '../support/ingestor-process.ts';
import { opsUrl, scrapeMetrics } from '../support/ops-endpoint.ts';
import { PrivateRedis } from '../support/private-redis.ts';

const PARTITIONS = 2;
const run = newFlusherRun({ TESSERA_FLUSH_INTERVAL_MS: '1000' });
const hash = loadDefinitionsFile(run.config.definitions).hash;
const events = placeEvents(
  generateFraudEvents({ events: 400, seed: 23, partitions: PARTITIONS }),
  PARTITIONS,
);
const expected = expectedRows(run.view, events);
const view = run.view.name;

describe('flusher with Redis out of reach', { timeout: 120_000 }, () => {
  let flusher: ServiceProcess;
  let ready = { status: 0, body: '' };
  let metrics = '';
  let exitCode: number | null = null;
  let stopSeconds = 0;
  let redis: PrivateRedis | undefined;
  let readyAfter = { status: 0, body: '' };

  before(async () => {
    await createFlusherTopics(run, PARTITIONS);
    await producePlacedEvents(run, events);
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: run.rowsTopic,
      messages: [...expected.values()].map((r) => rowMessage(run, hash, r)),
    });
    await producer.disconnect();

    // A port nothing listens on (bound, then released).
    const closed = await freePort();
    flusher = startFlusher(run, { TESSERA_REDIS_URL: `redis://127.0.0.1:${closed}` });
    try {
      await flusher.ready;
      // The group commits only after a flush is recorded in the store.
      await waitForGroup(run.kafka, run.flusherGroup, [run.topic, run.rowsTopic], 45_000);
      await flusher.waitFor('entity snapshot failed');
      const res = await fetch(`${opsUrl(flusher.output())}/ready`);
      ready = { status: res.status, body: await res.text() };
      metrics = await scrapeMetrics(flusher.output());
      // Redis comes back with nothing new to flush, so no snapshot is taken: /ready must still
      // stop blaming Redis.
      redis = await PrivateRedis.start(closed);
      const url = opsUrl(flusher.output());
      const deadline = Date.now() + 20_000;
      do {
        await new Promise((resolve) => setTimeout(resolve, 250));
        const res = await fetch(`${url}/ready`);
        readyAfter = { status: res.status, body: await res.text() };
      } while (readyAfter.status !== 200 && Date.now() < deadline);
    } finally {
      const stopping = performance.now();
      flusher.child.kill('SIGTERM');
      exitCode = await flusher.exited;
      stopSeconds = (performance.now() - stopping) / 1000;
    }
  });
  after(async () => {
    if (flusher?.child.exitCode === null) flusher.child.kill('SIGKILL');
    await redis?.remove();
    await cleanupStore(run);
    await cleanupRun(run);
  });

  it('writes every training row once and points latest/ at a complete version', async () => {
    const files = await readTables(run.store, `${view}/v_`, (k) => k.endsWith('/features.parquet'));
    const offsets = files.flatMap((f) =>
      f.columns.source_offset!.map((o, i) => `${f.columns.source_partition![i]}:${o}`),
    );
    assert.equal(offsets.length, expected.size);
    assert.deepEqual(new Set(offsets), new Set(expected.keys()));
    const marker = Buffer.from(await run.store.get(`${view}/latest/_VERSION`))
      .toString()
      .trim();
    const meta = JSON.parse(Buffer.from(await run.store.get(`${view}/${marker}/metadata.json`)).toString());
    assert.equal(meta.version, marker);
    const raw = await readTables(run.store, 'raw/', (k) => k.endsWith('.parquet'));
    assert.equal(
      raw.reduce((n, f) => n + f.rows, 0),
      events.length,
    );
  });

  it('writes no snapshot, and reports the failure: metric, log line, /ready naming Redis', async () => {
    assert.deepEqual(await run.store.list(`${view}/snapshots/`), []);
    const failures = new RegExp(
      `^tessera_flusher_snapshot_failures_total\\{view="${view}"\\} (\\d+)$`,
      'm',
    ).exec(metrics)?.[1];
    assert.ok(Number(failures) >= 1, `snapshot failures counted: ${failures}`);
    assert.match(
      flusher.output(),
      /"err":"TesseraError: Redis \(TESSERA_REDIS_URL\) is not connected[^"]*".*"msg":"entity snapshot failed/,
    );
    assert.equal(ready.status, 503, ready.body);
    const problems = (JSON.parse(ready.body) as { problems: string[] }).problems;
    assert.ok(
      problems.some((p) => p.startsWith(`redis: the entity snapshot of ${view} failed`)),
      ready.body,
    );
    assert.ok(!problems.some((p) => p.includes('the last flush failed')), ready.body);
  });

  it('is ready again once Redis is back, with no new rows to snapshot', () => {
    assert.equal(readyAfter.status, 200, readyAfter.body);
  });

  it('stops promptly on SIGTERM', () => {
    assert.equal(exitCode, 0, flusher.output().slice(-3000));
    assert.ok(stopSeconds < 20, `stopped in ${stopSeconds.toFixed(1)} s`);
  });
});
