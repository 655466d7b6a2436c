// A deployment with the ingestor's training rows off (TESSERA_TRAINING_ROWS=false), end to end on
// the real stack: the flusher still writes the raw event log, but no feature version (there are no
// rows to write), and the training set then comes from point-in-time retrieval over that raw log
// (`tessera historical`), equal to an independent naive loop over the same events.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { seededRng } from '../../shared/synth/random.ts';
import {
  cleanupStore,
  drainThroughIngestorAndFlusher,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
  readTables,
} from '../support/flusher-process.ts';
import { cleanupRun, createSourceTopic } from '../support/ingestor-process.ts';
import { naiveFraudValue, sameValue } from '../support/naive-reference.ts';

const PARTITIONS = 3;
const MIN = 60_000;
const execFileAsync = promisify(execFile);

describe('training rows off: the offline store keeps the raw log, training sets come from it', {
  timeout: 180_000,
}, () => {
  const run = newFlusherRun({ TESSERA_TRAINING_ROWS: 'false' });
  const events = placeEvents(
    generateFraudEvents({ events: 3000, seed: 17, partitions: PARTITIONS }),
    PARTITIONS,
  );
  let dir = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-rows-off-'));
    await createSourceTopic(run, PARTITIONS);
    await producePlacedEvents(run, events);
    const { ingestor, flusher, exits } = await drainThroughIngestorAndFlusher(run, 60_000);
    const [ingestorExit, flusherExit] = exits;
    assert.equal(ingestorExit, 0, ingestor.output().slice(-3000));
    assert.equal(flusherExit, 0, flusher.output().slice(-3000));
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
    const viewObjects = await run.store.list(`${run.view.name}/`);
    assert.deepEqual(
      viewObjects.map((o) => o.key),
      [],
    );
  });

  it('answers point-in-time retrieval over the raw log with the naive loop over the same events', async () => {
    // At some events' own times (the event itself excluded) and between events.
    const rng = seededRng(5);
    const rows: { user: number; t: number }[] = [];
    for (let i = 0; i < 150; i++) {
      const e = events[rng.int(events.length)]!;
      rows.push(
        { user: e.user_id, t: e.event_timestamp },
        { user: e.user_id, t: e.event_timestamp + 17 * MIN },
      );
    }
    const entities = join(dir, 'labels.csv');
    writeFileSync(
      entities,
      `user_id,event_timestamp,label\n${rows.map((r, i) => `${r.user},${r.t},${i % 2}`).join('\n')}\n`,
    );
    const out = join(dir, 'train.csv');
    await execFileAsync(
      process.execPath,
      [
        '--import',
        'tsx',
        'services/historical/main.ts',
        '--store',
        run.env.TESSERA_OFFLINE_STORE!,
        '--entities',
        entities,
        '--out',
        out,
        '--quiet',
      ],
      { timeout: 120_000 },
    );
    const [header, ...lines] = readFileSync(out, 'utf8').trim().split('\n');
    const columns = header!.split(',');
    assert.equal(lines.length, rows.length);
    const differences: string[] = [];
    lines.forEach((line, i) => {
      const cells = line.split(',');
      const { user, t } = rows[i]!;
      assert.equal(Number(cells[columns.indexOf('user_id')]), user, 'rows in input order');
      for (const feature of run.view.features) {
        const column = columns.indexOf(feature.name);
        assert.ok(column >= 0, `no column ${feature.name} in ${header}`);
        // An empty cell is a null: Number('') is 0, which equalled an expected 0.
        const cell = cells[column]!;
        const got = cell === '' ? null : Number(cell);
        const want = naiveFraudValue(events, user, feature, t);
        if (!sameValue(feature.aggregation, got, want))
          differences.push(
            `user ${user} at ${new Date(t).toISOString()}: ${feature.name} ${got}, naive ${want}`,
          );
      }
    });
    assert.deepEqual(differences.slice(0, 10), []);
  });
});
