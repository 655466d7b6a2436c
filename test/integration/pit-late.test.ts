// Events the ingestor refuses as late, end to end on the real stack (Kafka, Redis, S3): online never
// counts them, yet the flusher's raw log holds them (it cannot judge lateness). The ingestor's late
// no-row marks reach the flusher, which files them under `<view>/late/`, and `tessera historical`
// then leaves those events out, so a training set equals what online served (an independent naive
// loop over the events minus the late ones); `--include-late` counts them (the loop over all).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { readLateMarks } from '../../shared/offline/late-marks.ts';
import { type FraudEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupStore,
  drainThroughIngestorAndFlusher,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
} from '../support/flusher-process.ts';
import { cleanupRun, createSourceTopic } from '../support/ingestor-process.ts';
import { naiveFraudValue, sameValue } from '../support/naive-reference.ts';

const PARTITIONS = 3;
const MIN = 60_000;
const execFileAsync = promisify(execFile);

/**
 * The generated stream with a late event put after every 60th event: 2 h older than its user's
 * newest event so far, past the reference view's 1 h allowed lateness on the event clock (the
 * generator's own out-of-order events are at most 50 min behind: never late).
 */
function withLateEvents(events: readonly FraudEvent[]): { all: FraudEvent[]; late: Set<FraudEvent> } {
  const newest = new Map<number, number>();
  const all: FraudEvent[] = [];
  const late = new Set<FraudEvent>();
  events.forEach((e, i) => {
    all.push(e);
    newest.set(e.user_id, Math.max(newest.get(e.user_id) ?? -Infinity, e.event_timestamp));
    if (i % 60 === 59) {
      const refused = { ...e, event_timestamp: newest.get(e.user_id)! - 120 * MIN, amount: 900 + i };
      all.push(refused);
      late.add(refused);
    }
  });
  return { all, late };
}

describe("late events: historical retrieval leaves out what online refused, from the ingestor's marks", {
  timeout: 180_000,
}, () => {
  const run = newFlusherRun();
  const generated = withLateEvents(generateFraudEvents({ events: 3000, seed: 23, partitions: PARTITIONS }));
  const events = placeEvents(generated.all, PARTITIONS);
  // placeEvents copies the events: the late ones by their index.
  const lateIndex = new Set(generated.all.flatMap((e, i) => (generated.late.has(e) ? [i] : [])));
  const late = events.filter((_, i) => lateIndex.has(i));
  const online = events.filter((_, i) => !lateIndex.has(i));
  let dir = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-late-'));
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

  it('files a late mark for exactly the events the ingestor refused as late', async () => {
    const marks = await readLateMarks(run.store, run.view.name, () => true);
    assert.deepEqual(marks.positions(), [...new Set(late.map((e) => `${e.partition}/${e.offset}`))].sort());
    for (const e of late)
      assert.ok(marks.has(e.partition, e.offset, e.event_timestamp), `${e.partition}/${e.offset}`);
    assert.ok(late.length >= 40, `${late.length} late events`);
  });

  it('writes late marks pandas and pyarrow read with their declared dtypes', async () => {
    const python = process.env.TESSERA_PYTHON;
    assert.ok(python, 'TESSERA_PYTHON is unset: eval "$(scripts/stack env)"');
    const local = join(dir, 'late-marks');
    for (const o of await run.store.list(`${run.view.name}/late/`)) {
      mkdirSync(dirname(join(local, o.key)), { recursive: true });
      writeFileSync(join(local, o.key), await run.store.get(o.key));
    }
    const { stdout } = await execFileAsync(python, ['test/compat/flusher_dtypes.py', local], {
      timeout: 60_000,
    });
    const files = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; rows: number; pandas: Record<string, string> });
    assert.ok(files.length > 0);
    for (const f of files) {
      assert.match(f.file, /\/late\/date=\d{4}-\d{2}-\d{2}\/v_\d{8}T\d{6}\.parquet$/);
      assert.deepEqual(f.pandas, {
        source_topic: 'object',
        source_partition: 'int32',
        source_offset: 'int64',
        event_timestamp: 'datetime64[ms, UTC]',
      });
    }
    assert.equal(
      files.reduce((n, f) => n + f.rows, 0),
      late.length,
    );
  });

  it('answers as online by default and counts the late events with --include-late', async () => {
    // At the transactions of the users with a late event (their own times) and 17 minutes later.
    const users = new Set(late.map((e) => e.user_id));
    const rows = online
      .filter((e, i) => users.has(e.user_id) && i % 3 === 0)
      .flatMap((e) => [
        { user: e.user_id, t: e.event_timestamp },
        { user: e.user_id, t: e.event_timestamp + 17 * MIN },
      ]);
    const entities = join(dir, 'labels.csv');
    writeFileSync(entities, `user_id,event_timestamp\n${rows.map((r) => `${r.user},${r.t}`).join('\n')}\n`);
    let apart = 0;
    for (const includeLate of [false, true]) {
      const out = join(dir, `train-${includeLate}.csv`);
      const { stdout } = await execFileAsync(
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
          ...(includeLate ? ['--include-late'] : []),
        ],
        { timeout: 120_000 },
      );
      const summary = JSON.parse(stdout) as { eventsLate: number };
      if (includeLate) assert.equal(summary.eventsLate, 0);
      else assert.ok(summary.eventsLate > 0, stdout);
      const [header, ...lines] = readFileSync(out, 'utf8').trim().split('\n');
      const columns = header!.split(',');
      assert.equal(lines.length, rows.length);
      const seen = includeLate ? events : online;
      const differences: string[] = [];
      lines.forEach((line, i) => {
        const cells = line.split(',');
        const { user, t } = rows[i]!;
        for (const feature of run.view.features) {
          const cell = cells[columns.indexOf(feature.name)]!;
          const got = cell === '' ? null : Number(cell);
          const want = naiveFraudValue(seen, user, feature, t);
          if (!sameValue(feature.aggregation, got, want))
            differences.push(
              `user ${user} at ${new Date(t).toISOString()}: ${feature.name} ${got}, naive ${want}`,
            );
          if (!includeLate && !sameValue(feature.aggregation, got, naiveFraudValue(events, user, feature, t)))
            apart++;
        }
      });
      assert.deepEqual(differences.slice(0, 10), [], `--include-late ${includeLate}`);
    }
    // Else the comparisons above could not tell the two answers apart.
    assert.ok(apart > 50, `only ${apart} values differ with and without the late events`);
  });
});
