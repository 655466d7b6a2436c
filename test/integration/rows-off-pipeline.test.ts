// A deployment with the ingestor's training rows off (TESSERA_TRAINING_ROWS=false), end to end on
// the real stack: the flusher still writes the raw event log, but no feature version (there are no
// rows to write), and the training set then comes from point-in-time retrieval over that raw log
// (`tessera historical`), equal to an independent naive loop over the events online applied: the
// ingestor still sends its late events' marks, and retrieval leaves those events out.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readLateMarks } from '../../shared/offline/late-marks.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { seededRng } from '../../shared/synth/random.ts';
import { cleanupStore, newFlusherRun, readTables } from '../support/flusher-process.ts';
import { cleanupRun } from '../support/ingestor-process.ts';
import { historicalAgainstNaive, throughIngestorAndFlusher, withLateEvents } from '../support/late-events.ts';

const PARTITIONS = 3;
const MIN = 60_000;

describe('training rows off: the offline store keeps the raw log, training sets come from it', {
  timeout: 180_000,
}, () => {
  const run = newFlusherRun({ TESSERA_TRAINING_ROWS: 'false' });
  const { events, late, online } = withLateEvents(
    generateFraudEvents({ events: 3000, seed: 17, partitions: PARTITIONS }),
    PARTITIONS,
  );
  let dir = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-rows-off-'));
    await throughIngestorAndFlusher(run, events, PARTITIONS);
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await cleanupStore(run);
    await cleanupRun(run);
  });

  it('writes every event to the raw log and no feature version, latest/ or snapshot', async () => {
    const raw = await readTables(run.store, 'raw/', (k) => k.endsWith('.parquet'));
    assert.equal(
      raw.reduce((n, f) => n + f.rows, 0),
      events.length,
    );
    // Only the late marks: one object per flush and day that had late events.
    const viewObjects = await run.store.list(`${run.view.name}/`);
    assert.ok(viewObjects.length > 0);
    for (const o of viewObjects) assert.match(o.key, /^[^/]+\/late\/date=[\d-]+\/v_[\dT]+\.parquet$/);
    const marks = await readLateMarks(run.store, run.view.name, () => true);
    assert.deepEqual(marks.positions(), late.map((e) => `${e.partition}/${e.offset}`).sort());
    // Once each, unless a redelivery across a flush filed one again (rows-off marks are not
    // first-entry-wins: docs/offline-store.md).
    assert.ok(marks.marks >= late.length, `${marks.marks} marks`);
  });

  it('answers point-in-time retrieval over the raw log with the naive loop over the events online applied', async () => {
    // At some events' own times (the event itself excluded) and between events.
    const rng = seededRng(5);
    const rows: { user: number; t: number }[] = [];
    for (let i = 0; i < 150; i++) {
      const e = online[rng.int(online.length)]!;
      rows.push(
        { user: e.user_id, t: e.event_timestamp },
        { user: e.user_id, t: e.event_timestamp + 17 * MIN },
      );
    }
    const { differences, apart } = await historicalAgainstNaive(run, dir, rows, {
      kept: online,
      all: events,
    });
    assert.deepEqual(differences.slice(0, 10), []);
    // Else the comparison above could not tell the late events' loss from their count.
    assert.ok(apart > 20, `only ${apart} values differ with and without the late events`);
  });
});
