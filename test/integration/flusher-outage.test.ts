// S3 goes away (a private S3Proxy of this test, killed; the shared one is never touched): the
// flusher keeps retrying with backoff, stops consuming once its buffer is full instead of growing
// without bound, commits nothing, and shows it in its metrics; when S3 comes back on the same port
// it catches up and every source offset ends up written exactly once.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupStore,
  createFlusherTopics,
  expectedRows,
  type FlusherRun,
  freePort,
  newFlusherRun,
  PrivateS3,
  placeEvents,
  readTables,
  rowMessage,
  type ServiceProcess,
  startFlusher,
  waitForGroup,
} from '../support/flusher-process.ts';
import { cleanupRun } from '../support/ingestor-process.ts';
import { opsUrl, scrapeMetrics } from '../support/ops-endpoint.ts';

const PARTITIONS = 3;
const LIMIT = 2000;
const FIRST = 3000;
const events = placeEvents(
  generateFraudEvents({ events: 9_000, seed: 21, partitions: PARTITIONS }),
  PARTITIONS,
);

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

describe('flusher rides out an S3 outage with bounded memory and catches up', { timeout: 120_000 }, () => {
  let s3: PrivateS3;
  let dir: string;
  let run: FlusherRun;
  let flusher: ServiceProcess;
  const children: ChildProcess[] = [];
  const during: Record<string, number> = {};
  const afterRecovery: Record<string, number> = {};
  let lastSuccessBefore = 0;
  let expected: ReturnType<typeof expectedRows>;

  const scrape = () => scrapeMetrics(flusher.output());

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flusher-s3-'));
    s3 = new PrivateS3(await freePort(), dir);
    await s3.start('tessera-offline');
    run = newFlusherRun({
      TESSERA_S3_ENDPOINT: s3.endpoint,
      TESSERA_FLUSH_INTERVAL_MS: '500',
      TESSERA_FLUSH_MAX_BUFFERED_ROWS: String(LIMIT),
      TESSERA_FLUSH_SNAPSHOTS: 'false',
    });
    expected = expectedRows(run.view, events);
    const hash = loadDefinitionsFile(run.config.definitions).hash;
    await createFlusherTopics(run, PARTITIONS);
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const produce = async (from: number, to: number) => {
      for (let i = from; i < to; i += 1000) {
        const chunk = events.slice(i, Math.min(to, i + 1000));
        await producer.send({
          topic: run.topic,
          messages: chunk.map((e) => ({
            key: String(e.user_id),
            partition: e.partition,
            value: JSON.stringify({ ...e, event_timestamp: new Date(e.event_timestamp).toISOString() }),
          })),
        });
        const rows = chunk
          .map((e) => expected.get(`${e.partition}:${e.offset}`))
          .filter((r) => r !== undefined);
        await producer.send({ topic: run.rowsTopic, messages: rows.map((r) => rowMessage(run, hash, r)) });
      }
    };

    const t0 = Date.now();
    const phase = (name: string) => console.log(`# ${name} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await produce(0, FIRST);
    flusher = startFlusher(run);
    children.push(flusher.child);
    await flusher.ready;
    await waitForGroup(run.kafka, run.flusherGroup, [run.topic, run.rowsTopic], 30_000);
    lastSuccessBefore = metric(await scrape(), 'tessera_flusher_last_success_timestamp_seconds');

    phase('first events flushed; stopping S3');
    await s3.stop();
    await produce(FIRST, events.length);
    await producer.disconnect();
    // At least 6 s of outage, and until the flusher has paused and counted a failed flush: a busy
    // machine takes longer to fill the buffer and to see the S3 client give up.
    const outage = Date.now();
    let text = await scrape();
    while (
      Date.now() - outage < 6000 ||
      metric(text, 'tessera_flusher_consumer_paused') !== 1 ||
      !(metric(text, 'tessera_flusher_flush_errors_total') > 0)
    ) {
      if (Date.now() - outage > 60_000) break; // the assertions below say what was missing
      await new Promise((r) => setTimeout(r, 250));
      text = await scrape();
    }
    for (const name of [
      'tessera_flusher_buffered_records',
      'tessera_flusher_consumer_paused',
      'tessera_flusher_flush_errors_total',
      'tessera_flusher_last_success_timestamp_seconds',
    ])
      during[name] = metric(text, name);
    const ready = await fetch(`${opsUrl(flusher.output())}/ready`);
    during.ready = ready.status;

    phase('S3 restarting');
    await s3.start('tessera-offline');
    phase('S3 back');
    await waitForGroup(run.kafka, run.flusherGroup, [run.topic, run.rowsTopic], 60_000);
    phase('caught up');
    const recovered = await scrape();
    afterRecovery.lastSuccess = metric(recovered, 'tessera_flusher_last_success_timestamp_seconds');
    afterRecovery.paused = metric(recovered, 'tessera_flusher_consumer_paused');
    flusher.child.kill('SIGTERM');
    assert.equal(await flusher.exited, 0, flusher.output().slice(-3000));
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await cleanupStore(run).catch(() => undefined);
    await s3.stop();
    await cleanupRun(run);
    await rm(dir, { recursive: true, force: true });
  });

  it('pauses consuming at its buffer limit while S3 is down, and reports failures', () => {
    const produced = (events.length - FIRST) * 2; // source events + rows
    assert.equal(during.tessera_flusher_consumer_paused, 1);
    assert.ok(
      during.tessera_flusher_buffered_records! >= LIMIT,
      `buffered ${during.tessera_flusher_buffered_records}`,
    );
    assert.ok(
      during.tessera_flusher_buffered_records! < produced / 2,
      `buffered ${during.tessera_flusher_buffered_records} of ${produced}: consumption did not stop`,
    );
    assert.ok(during.tessera_flusher_flush_errors_total! > 0);
    assert.equal(during.tessera_flusher_last_success_timestamp_seconds, lastSuccessBefore);
    assert.equal(during.ready, 503);
  });

  it('resumes and catches up once S3 is back', () => {
    assert.ok(afterRecovery.lastSuccess! > lastSuccessBefore);
    assert.equal(afterRecovery.paused, 0);
  });

  it('wrote every source offset exactly once (raw log and training rows)', async () => {
    const raw = new Set<string>();
    for (const f of await readTables(run.store, 'raw/', (k) => k.endsWith('.parquet')))
      for (let i = 0; i < f.rows; i++) {
        const id = `${f.columns.source_partition![i]}:${f.columns.source_offset![i]}`;
        assert.ok(!raw.has(id), `raw ${id} twice`);
        raw.add(id);
      }
    assert.equal(raw.size, events.length);
    const rows = new Set<string>();
    for (const f of await readTables(run.store, `${run.view.name}/v_`, (k) =>
      k.endsWith('/features.parquet'),
    ))
      for (let i = 0; i < f.rows; i++) {
        const id = `${f.columns.source_partition![i]}:${f.columns.source_offset![i]}`;
        assert.ok(!rows.has(id), `row ${id} twice`);
        rows.add(id);
      }
    assert.equal(rows.size, expected.size);
  });
});
