// Engine benchmark: apply, serving reads and training rows (features before each event) for the
// reference view in both modes, beside two baselines run on the SAME generated events in the SAME
// run: the seed's naive pandas loop and pandas groupby().rolling(). Prints figures and ratios; the
// machine is shared and noisy, so the ratios are what mean something, not lone times.
//
//   npx tsx loadtest/engine-bench.ts [--events 1000000] [--seed 1] [--no-baselines]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadDefinitionsFile } from '../shared/definitions/load.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  encodeState,
  type FeatureValue,
  featuresBeforeEachColumnar,
  planView,
  readFeatures,
  toEngineEvent,
  toEventColumns,
  type ViewPlan,
} from '../shared/engine/index.ts';
import { fraudEventsToCsv, generateFraudEvents } from '../shared/synth/fraud-events.ts';
import { runOracle } from '../test/support/oracle.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: '1' },
    'no-baselines': { type: 'boolean', default: false },
    users: { type: 'string' },
    python: { type: 'string', default: process.env.TESSERA_PYTHON ?? 'python3' },
  },
});
const N = Number(args.events);
const python = args.python;

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const rate = (n: number, ms: number) => Math.round((n * 1000) / ms);
const fmt = (n: number) => n.toLocaleString('en-US');

function timed<T>(fn: () => T): [T, number] {
  const started = performance.now();
  const result = fn();
  return [result, performance.now() - started];
}

log(`generating ${fmt(N)} fraud-like events (seed ${args.seed}) ...`);
const events = generateFraudEvents({
  events: N,
  seed: Number(args.seed),
  ...(args.users ? { users: Number(args.users) } : {}),
});
const keys = events.map((e) => String(e.user_id));
const results: Record<string, unknown> = { events: N, node: process.version };

interface ModeFigures {
  applyPerS: number;
  readsPerS: number;
  trainingPerS: number;
  columnsPerS: number;
  bytesPerEntity: number;
  rows: ArrayLike<FeatureValue>[];
}

function benchMode(plan: ViewPlan): ModeFigures {
  const engineEvents = events.map((e) =>
    toEngineEvent(plan, e as unknown as Record<string, unknown>, e.event_timestamp, e.partition, e.offset),
  );
  // Apply every event (arrival order, out of order within lateness) into per-entity states.
  const [states, applyMs] = timed(() => {
    const map = new Map<string, EntityState>();
    for (let i = 0; i < engineEvents.length; i++) {
      let state = map.get(keys[i]!);
      if (!state) {
        state = emptyState(plan);
        map.set(keys[i]!, state);
      }
      applyEvent(plan, state, engineEvents[i]!);
    }
    return map;
  });
  // Serving: read every entity as of a time after the stream (3 passes over all entities).
  const now = events.reduce((m, e) => Math.max(m, e.event_timestamp), 0) + 1;
  const [, readMs] = timed(() => {
    for (let pass = 0; pass < 3; pass++) for (const state of states.values()) readFeatures(plan, state, now);
  });
  // Training rows from columnar input (what the offline store reads), median of 3 runs after a
  // warm-up so the JIT has compiled the sweep; the columnar layout step is timed on its own.
  const [columns, columnsMs] = timed(() => toEventColumns(plan, keys, engineEvents));
  featuresBeforeEachColumnar(plan, columns);
  const runs: number[] = [];
  let rows: ArrayLike<FeatureValue>[] = [];
  for (let r = 0; r < 3; r++) {
    const [out, ms] = timed(() => featuresBeforeEachColumnar(plan, columns));
    rows = out;
    runs.push(ms);
  }
  const trainingMs = runs.sort((a, b) => a - b)[1]!;
  let bytes = 0;
  for (const state of states.values()) bytes += encodeState(plan, state).length;
  return {
    applyPerS: rate(N, applyMs),
    readsPerS: rate(states.size * 3, readMs),
    trainingPerS: rate(N, trainingMs),
    columnsPerS: rate(N, columnsMs),
    bytesPerEntity: Math.round(bytes / states.size),
    rows,
  };
}

const figures: Record<string, ModeFigures> = {};
for (const mode of ['exact', 'tiled'] as const) {
  log(`engine, ${mode} mode ...`);
  const plan = planView(loadDefinitionsFile('definitions/fraud.yaml', { mode }).views[0]!);
  figures[mode] = benchMode(plan);
  const f = figures[mode]!;
  results[mode] = {
    apply_events_per_s: f.applyPerS,
    reads_per_s: f.readsPerS,
    training_rows_per_s: f.trainingPerS,
    columnar_layout_rows_per_s: f.columnsPerS,
    state_bytes_per_entity: f.bytesPerEntity,
  };
}

console.log(`\nTessera engine, ${fmt(N)} events, ${new Set(keys).size} users, reference view (6 features)`);
console.log(
  'mode   | apply events/s | serving reads/s | training rows/s | (layout rows/s) | state bytes/entity',
);
for (const mode of ['exact', 'tiled'] as const) {
  const f = figures[mode]!;
  console.log(
    `${mode.padEnd(6)} | ${fmt(f.applyPerS).padStart(14)} | ${fmt(f.readsPerS).padStart(15)} | ${fmt(f.trainingPerS).padStart(15)} | ${fmt(f.columnsPerS).padStart(15)} | ${String(f.bytesPerEntity).padStart(18)}`,
  );
}
console.log('training rows: features before every event, from columnar input (median of 3 after a warm-up);');
console.log('layout: turning decoded events into those columns, a separate one-off step.');

if (!args['no-baselines']) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  const csv = join(dir, 'events.csv');
  writeFileSync(csv, fraudEventsToCsv(events));
  const runPy = (script: string, extra: string[]): Record<string, unknown> => {
    const run = spawnSync(python, [script, '--events', csv, ...extra], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    if (run.status !== 0)
      throw new Error(
        `${script} failed: ${run.stderr || run.error?.message}. Set TESSERA_PYTHON (scripts/stack env).`,
      );
    return JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  };

  console.log("\nBaseline 1: the seed's naive loop (pandas mask over the whole frame per row), same events");
  const naive: Record<string, unknown>[] = [];
  for (const limit of [2000, 5000, 10_000, 20_000].filter((l) => l <= N)) {
    log(`seed naive loop on ${fmt(limit)} events ...`);
    const r = runPy('loadtest/baselines/seed_naive.py', ['--limit', String(limit)]);
    naive.push(r);
    console.log(
      `  ${fmt(limit).padStart(6)} events: ${Number(r.seconds).toFixed(1)} s, ${fmt(Math.round(Number(r.events_per_s)))} events/s`,
    );
  }
  results.seed_naive = naive;

  log(`pandas groupby().rolling() on ${fmt(N)} events ...`);
  const pandasOut = join(dir, 'pandas.csv');
  const pandas = runPy('loadtest/baselines/pandas_rolling.py', ['--out', pandasOut]);
  results.pandas_rolling = pandas;
  // Same values? pandas computes 5 of the 6 features; compare them with our exact-mode rows.
  const lines = readFileSync(pandasOut, 'utf8').trimEnd().split('\n');
  const header = lines[0]!.split(',');
  const plan = planView(loadDefinitionsFile('definitions/fraud.yaml').views[0]!);
  const cols = header.slice(1).map((name) => plan.features.findIndex((f) => f.def.name === name));
  let worst = 0;
  let differing = 0;
  for (let i = 1; i < lines.length; i++) {
    const cells = lines[i]!.split(',');
    const row = Number(cells[0]);
    cols.forEach((c, j) => {
      const ours = figures.exact!.rows[c]![row] as number;
      const theirs = Number(cells[j + 1]);
      const rel = Math.abs(ours - theirs) / Math.max(1, Math.abs(theirs));
      worst = Math.max(worst, rel);
      if (rel > 1e-9) differing++;
    });
  }
  results.pandas_max_relative_difference = worst;
  const ourRate = figures.exact!.trainingPerS;
  const pandasRate = Number(pandas.events_per_s);
  const naiveRate = Number(naive[naive.length - 1]?.events_per_s ?? Number.NaN);
  console.log(
    `\nBaseline 2: pandas groupby().rolling(closed="left"), ${pandas.features} of 6 features: ${fmt(Math.round(pandasRate))} events/s`,
  );
  console.log(
    `  values vs Tessera exact mode: max relative difference ${worst.toExponential(2)}, ${differing} values beyond 1e-9`,
  );
  console.log('\nRatios (same events, same run)');
  console.log(
    `  Tessera training rows (exact, 6 features) / pandas rolling (5 features): ${(ourRate / pandasRate).toFixed(1)}x  (goal >= 10x)`,
  );
  console.log(
    `  Tessera training rows (exact) / seed naive loop at ${fmt(Number(naive[naive.length - 1]?.events ?? 0))} events: ${fmt(Math.round(ourRate / naiveRate))}x`,
  );
  console.log(
    `  Tessera apply (exact) events/s vs 1M/s goal: ${(figures.exact!.applyPerS / 1e6).toFixed(2)}x`,
  );
  results.ratio_training_vs_pandas = ourRate / pandasRate;

  // The independent oracle (test/oracle/oracle.py) on the first 100k events, engine on the same.
  const sample = events.slice(0, Math.min(N, 100_000));
  log(`oracle on ${fmt(sample.length)} events ...`);
  const oracle = runOracle(plan, sample);
  const sampleKeys = sample.map((e) => String(e.user_id));
  const sampleColumns = toEventColumns(
    plan,
    sampleKeys,
    sample.map((e) =>
      toEngineEvent(plan, e as unknown as Record<string, unknown>, e.event_timestamp, e.partition, e.offset),
    ),
  );
  featuresBeforeEachColumnar(plan, sampleColumns);
  const [sampleRows, engineMs] = timed(() => featuresBeforeEachColumnar(plan, sampleColumns));
  let same = 0;
  oracle.rows.forEach((row, i) => {
    if (row.every((v, f) => v === sampleRows[f]![i] || (v === null && sampleRows[f]![i] === null))) same++;
  });
  console.log(
    `  oracle (naive loop, numpy) on ${fmt(sample.length)} events: ${oracle.seconds.toFixed(1)} s; engine: ${(engineMs / 1000).toFixed(3)} s; ` +
      `ratio ${fmt(Math.round((oracle.seconds * 1000) / engineMs))}x; rows identical: ${fmt(same)} / ${fmt(sample.length)}`,
  );
  results.oracle = {
    events: sample.length,
    oracle_seconds: oracle.seconds,
    engine_seconds: engineMs / 1000,
    rows_identical: same,
  };
  results.values_identical_to_pandas = differing === 0;
}
console.log(`\n${JSON.stringify(results)}`);
