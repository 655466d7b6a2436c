// Runs the independent Python oracle (test/oracle/oracle.py) on generated events and parses its
// answer, for the golden tests and the benchmark's equality check.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ViewPlan } from '../../shared/engine/plan.ts';
import { type FraudEvent, fraudEventsToCsv } from '../../shared/synth/fraud-events.ts';

/** The Python that has numpy/pandas: TESSERA_PYTHON (set by scripts/stack), else python3. */
export function pythonBin(): string {
  return process.env.TESSERA_PYTHON ?? 'python3';
}

/** The oracle's spec for a view: the features it can compute (count, sum, avg, min, max, count_distinct). */
export function oracleSpec(plan: ViewPlan): { features: object[] } {
  return {
    features: plan.features.map((f) => ({
      name: f.def.name,
      aggregation: f.def.aggregation,
      column: f.def.column,
      window_ms: f.windowMs,
      tile_ms: f.tileMs > 0 ? f.tileMs : null,
      default: f.def.default,
    })),
  };
}

export type OracleValue = number | null;

/** Writes events and spec to a temp dir, runs the oracle, returns one row of values per event. */
export function runOracle(
  plan: ViewPlan,
  events: readonly FraudEvent[],
): { rows: OracleValue[][]; seconds: number; processSeconds: number } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-oracle-'));
  const eventsPath = join(dir, 'events.csv');
  const specPath = join(dir, 'spec.json');
  const outPath = join(dir, 'features.csv');
  const timingPath = join(dir, 'seconds.txt');
  writeFileSync(eventsPath, fraudEventsToCsv(events));
  writeFileSync(specPath, JSON.stringify(oracleSpec(plan)));
  const started = performance.now();
  const run = spawnSync(
    pythonBin(),
    [
      'test/oracle/oracle.py',
      '--events',
      eventsPath,
      '--spec',
      specPath,
      '--out',
      outPath,
      '--timing',
      timingPath,
    ],
    {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const processSeconds = (performance.now() - started) / 1000;
  if (run.status !== 0) {
    throw new Error(
      `oracle failed (exit ${run.status}) with ${pythonBin()}: ${run.error?.message ?? ''}${run.stderr}\n` +
        'The oracle needs numpy: run `scripts/stack install` and use TESSERA_PYTHON from `scripts/stack env`.',
    );
  }
  const lines = readFileSync(outPath, 'utf8').trimEnd().split('\n');
  const header = lines[0]!.split(',');
  const expected = ['row', ...plan.features.map((f) => f.def.name)];
  if (header.join(',') !== expected.join(','))
    throw new Error(`oracle header ${header.join(',')}, expected ${expected.join(',')}`);
  const rows: OracleValue[][] = new Array(events.length);
  for (let i = 1; i < lines.length; i++) {
    const cells = lines[i]!.split(',');
    rows[Number(cells[0])] = cells.slice(1).map((c) => (c === '' ? null : Number(c)));
  }
  // The computation alone, as the engine's side is timed (Python's start, numpy's import and the
  // CSV I/O once counted too): `processSeconds` is the whole run.
  const seconds = Number(readFileSync(timingPath, 'utf8'));
  return { rows, seconds, processSeconds };
}
