// Exactly once into the offline store, the hard way: the flusher is killed with SIGKILL in the
// middle of its uploads again and again while source events and training rows flow (rows also
// redelivered, as a crashed ingestor does), then restarted. Afterwards every source offset has
// exactly one raw event and exactly one training row across all versions, with the engine's
// values; and a reader polling latest/_VERSION meanwhile never saw a version that was incomplete.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupStore,
  createFlusherTopics,
  expectedRows,
  newFlusherRun,
  placeEvents,
  readTables,
  rowMessage,
  startFlusher,
  waitForGroup,
} from '../support/flusher-process.ts';
import { cleanupRun } from '../support/ingestor-process.ts';

const PARTITIONS = 3;
const KILLS = 5;
/** Kills that must land inside a flush (intent saved, not finished); more kills (up to 12) until then. */
const MID_FLUSH = 3;
const MAX_KILLS = 12;
/** Events per produce step (one step every 350 ms): small, so the stream outlasts the kills on a loaded machine. */
const STEP = 250;
let kills = 0;
const run = newFlusherRun({
  TESSERA_FLUSH_INTERVAL_MS: '400',
  TESSERA_LOG_LEVEL: 'info',
  TESSERA_FLUSH_SNAPSHOTS: 'false',
});
const hash = loadDefinitionsFile(run.config.definitions).hash;
const events = placeEvents(
  generateFraudEvents({ events: 16_000, seed: 5, partitions: PARTITIONS }),
  PARTITIONS,
);
const expected = expectedRows(run.view, events);
const view = run.view.name;

describe('flusher killed with SIGKILL mid-upload writes each source offset exactly once', {
  timeout: 180_000,
}, () => {
  const children: ChildProcess[] = [];
  const killedMidFlush: string[] = [];
  const readerProblems: string[] = [];
  let readerChecks = 0;

  before(async () => {
    await createFlusherTopics(run, PARTITIONS);

    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const rows = [...expected.values()];
    let stopReader = false;
    const producing = (async () => {
      for (let i = 0; i < events.length; i += STEP) {
        const chunk = events.slice(i, i + STEP);
        await producer.send({
          topic: run.topic,
          messages: chunk.map((e) => ({
            key: String(e.user_id),
            partition: e.partition,
            value: JSON.stringify({ ...e, event_timestamp: new Date(e.event_timestamp).toISOString() }),
          })),
        });
        const fresh = chunk
          .map((e) => expected.get(`${e.partition}:${e.offset}`))
          .filter((r) => r !== undefined);
        // At-least-once rows: some earlier rows again (often after their first copy was flushed).
        const again = Array.from(
          { length: 40 },
          () => rows[Math.floor(Math.random() * Math.min(rows.length, i + 1))]!,
        );
        await producer.send({
          topic: run.rowsTopic,
          messages: [...fresh, ...again].map((r) => rowMessage(run, hash, r)),
        });
        await new Promise((r) => setTimeout(r, 350)); // keeps flowing through the kills
      }
    })();

    // A reader that trusts only latest/_VERSION: the version it names must be complete.
    const reading = (async () => {
      while (!stopReader) {
        try {
          const version = Buffer.from(await run.store.get(`${view}/latest/_VERSION`))
            .toString()
            .trim();
          const meta = JSON.parse(
            Buffer.from(await run.store.get(`${view}/${version}/metadata.json`)).toString(),
          );
          const [table] = await readTables(run.store, `${view}/${version}/features.parquet`, () => true);
          if (!table || table.rows !== meta.row_count)
            readerProblems.push(
              `${version}: metadata says ${meta.row_count} rows, parquet has ${table?.rows}`,
            );
          readerChecks++;
        } catch (error) {
          if (!String(error).includes('does not exist')) readerProblems.push(String(error));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    for (let k = 0; k < KILLS || (killedMidFlush.length < MID_FLUSH && k < MAX_KILLS); k++) {
      kills = k + 1;
      const flusher = startFlusher(run);
      children.push(flusher.child);
      await flusher.ready;
      // Killed during its 1st, 2nd or 3rd flush: a redo, or a later flush after some succeeded.
      let from = flusher.output().length;
      for (let n = 1 + Math.floor(Math.random() * 3); n > 0; n--) {
        // Once everything is written there are no more flushes: then kill it idle.
        const next = await Promise.race([
          flusher.waitFor('"msg":"flush writing"', from).then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 4000)),
        ]);
        if (!next) break;
        from = flusher.output().indexOf('"msg":"flush writing"', from) + 1;
      }
      await new Promise((r) => setTimeout(r, Math.random() < 0.7 ? 0 : Math.random() * 15));
      flusher.child.kill('SIGKILL');
      await flusher.exited;
      if (process.env.FLUSHER_TEST_LOG_DIR)
        await writeFile(join(process.env.FLUSHER_TEST_LOG_DIR, `flusher-${k}.log`), flusher.output());
      const state = JSON.parse(Buffer.from(await run.store.get('_flusher/state.json')).toString());
      if (state.pending) killedMidFlush.push(state.pending.version);
    }
    await producing;
    await producer.disconnect();
    const last = startFlusher(run);
    children.push(last.child);
    await last.ready;
    await waitForGroup(run.kafka, run.flusherGroup, [run.topic, run.rowsTopic], 60_000);
    last.child.kill('SIGTERM');
    assert.equal(await last.exited, 0, last.output().slice(-3000));
    stopReader = true;
    await reading;
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await cleanupStore(run);
    await cleanupRun(run);
  });

  it('was really killed in the middle of flushes', () => {
    assert.ok(
      killedMidFlush.length >= MID_FLUSH,
      `kills that left a flush pending: ${killedMidFlush.length}`,
    );
    console.log(
      `# ${killedMidFlush.length} of ${kills} kills left a flush half written: ${killedMidFlush.join(', ')}`,
    );
  });

  it('has exactly one raw event per source offset', async () => {
    const seen = new Set<string>();
    for (const f of await readTables(run.store, 'raw/', (k) => k.endsWith('.parquet')))
      for (let i = 0; i < f.rows; i++) {
        const id = `${f.columns.source_partition![i]}:${f.columns.source_offset![i]}`;
        assert.ok(!seen.has(id), `raw event ${id} twice (${f.key})`);
        seen.add(id);
      }
    assert.equal(seen.size, events.length);
  });

  it('has exactly one training row per source offset across all versions, with the engine values', async () => {
    const seen = new Set<string>();
    for (const f of await readTables(run.store, `${view}/v_`, (k) => k.endsWith('/features.parquet')))
      for (let i = 0; i < f.rows; i++) {
        const id = `${f.columns.source_partition![i]}:${f.columns.source_offset![i]}`;
        assert.ok(!seen.has(id), `row ${id} twice (${f.key})`);
        seen.add(id);
        const want = expected.get(id);
        assert.ok(want, `unexpected row ${id}`);
        // Every feature, exactly (Object.is): int64 columns decode as bigint, compared as the
        // engine's numbers only when that loses nothing.
        run.view.features.forEach((feature, k) => {
          const cell = f.columns[feature.name]![i];
          const got = typeof cell === 'bigint' && Number.isSafeInteger(Number(cell)) ? Number(cell) : cell;
          assert.ok(
            Object.is(got, want.values[k]),
            `row ${id} ${feature.name}: ${String(cell)} in ${f.key}, the engine ${String(want.values[k])}`,
          );
        });
      }
    assert.equal(seen.size, expected.size);
  });

  it('never showed a reader a latest/_VERSION naming an incomplete version', () => {
    assert.deepEqual(readerProblems, []);
    assert.ok(readerChecks > 10, `reader checked ${readerChecks} times`);
  });
});
