// A generated fraud stream with events the ingestor must refuse as late, placed on their Kafka
// partitions, and the pipeline and retrieval checks of the tests of late marks
// (test/integration/pit-late.test.ts, rows-off-pipeline.test.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FraudEvent } from '../../shared/synth/fraud-events.ts';
import {
  drainThroughIngestorAndFlusher,
  type FlusherRun,
  placeEvents,
  producePlacedEvents,
} from './flusher-process.ts';
import { createSourceTopic } from './ingestor-process.ts';
import { naiveFraudValue, sameValue } from './naive-reference.ts';

const MIN = 60_000;

/**
 * The stream with a late event put after every 60th event: 2 h older than its user's newest event
 * so far, past the reference view's 1 h allowed lateness on the event clock (the generator's own
 * out-of-order events are at most 50 min behind: never late). All of them placed on `partitions`
 * (placeEvents), and split into the late ones and the rest (what online applies).
 */
export function withLateEvents(
  generated: readonly FraudEvent[],
  partitions: number,
): { events: FraudEvent[]; late: FraudEvent[]; online: FraudEvent[] } {
  const newest = new Map<number, number>();
  const all: FraudEvent[] = [];
  const lateIndex = new Set<number>();
  generated.forEach((e, i) => {
    all.push(e);
    newest.set(e.user_id, Math.max(newest.get(e.user_id) ?? -Infinity, e.event_timestamp));
    if (i % 60 === 59) {
      lateIndex.add(all.length);
      all.push({ ...e, event_timestamp: newest.get(e.user_id)! - 120 * MIN, amount: 900 + i });
    }
  });
  const events = placeEvents(all, partitions);
  return {
    events,
    late: events.filter((_, i) => lateIndex.has(i)),
    online: events.filter((_, i) => !lateIndex.has(i)),
  };
}

/** The run's topic made, `events` produced, then consumed by an ingestor and a flusher that stop cleanly. */
export async function throughIngestorAndFlusher(
  run: FlusherRun,
  events: readonly FraudEvent[],
  partitions: number,
): Promise<void> {
  await createSourceTopic(run, partitions);
  await producePlacedEvents(run, events);
  const { ingestor, flusher, exits } = await drainThroughIngestorAndFlusher(run, 60_000);
  const [ingestorExit, flusherExit] = exits;
  assert.equal(ingestorExit, 0, ingestor.output().slice(-3000));
  assert.equal(flusherExit, 0, flusher.output().slice(-3000));
}

/**
 * `tessera historical` over the run's offline store for label `rows` (CSV in, CSV out, in `dir`),
 * every feature of the view compared with the naive loop over `kept`; `apart` counts the values
 * that also differ from the loop over `all` (what tells the two answers apart).
 */
export async function historicalAgainstNaive(
  run: FlusherRun,
  dir: string,
  rows: readonly { user: number; t: number }[],
  events: { kept: readonly FraudEvent[]; all: readonly FraudEvent[] },
  extraArgs: readonly string[] = [],
): Promise<{
  summary: { eventsLate: number };
  differences: string[];
  apart: number;
  /** Per feature, the value of each row (null for an empty cell). */
  cells: Map<string, (number | null)[]>;
}> {
  const name = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const entities = join(dir, `labels-${name}.csv`);
  writeFileSync(
    entities,
    `user_id,event_timestamp,label\n${rows.map((r, i) => `${r.user},${r.t},${i % 2}`).join('\n')}\n`,
  );
  const out = join(dir, `train-${name}.csv`);
  const { stdout } = await promisify(execFile)(
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
      ...extraArgs,
    ],
    { timeout: 120_000 },
  );
  const [header, ...lines] = readFileSync(out, 'utf8').trim().split('\n');
  const columns = header!.split(',');
  assert.equal(lines.length, rows.length);
  const differences: string[] = [];
  let apart = 0;
  const cells = new Map(run.view.features.map((f) => [f.name, [] as (number | null)[]]));
  lines.forEach((line, i) => {
    const fields = line.split(',');
    const { user, t } = rows[i]!;
    assert.equal(Number(fields[columns.indexOf('user_id')]), user, 'rows in input order');
    for (const feature of run.view.features) {
      const column = columns.indexOf(feature.name);
      assert.ok(column >= 0, `no column ${feature.name} in ${header}`);
      // An empty cell is a null: Number('') is 0, which equalled an expected 0.
      const cell = fields[column]!;
      const got = cell === '' ? null : Number(cell);
      cells.get(feature.name)!.push(got);
      const want = naiveFraudValue(events.kept, user, feature, t);
      if (!sameValue(feature.aggregation, got, want))
        differences.push(
          `user ${user} at ${new Date(t).toISOString()}: ${feature.name} ${got}, naive ${want}`,
        );
      if (!sameValue(feature.aggregation, got, naiveFraudValue(events.all, user, feature, t))) apart++;
    }
  });
  return { summary: JSON.parse(stdout) as { eventsLate: number }, differences, apart, cells };
}
