// Engine benchmark: apply, serving reads and training rows (features before each event) for the
// reference view in both modes, beside two baselines run on the SAME generated events in the SAME
// run: the seed's naive pandas loop and pandas groupby().rolling(). Prints figures and ratios; the
// machine is shared and noisy, so the ratios are what mean something, not lone times.
//
//   npx tsx loadtest/engine-bench.ts [--events 1000000] [--seed 1] [--no-baselines]
//
// Training rows are timed twice: in this process, whose heap holds the generated events, the
// engine events and every entity state of the apply step (each full GC the sweep's output arrays
// set off must walk all of that), and in a worker thread whose heap holds only the columnar input,
// as an offline job reading parquet columns would (and as pandas, in its own process, does). The
// worker's figure is the one compared with pandas; both are printed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { loadDefinitionsFile } from '../shared/definitions/load.ts';
import {
  applyEvent,
  type EntityState,
  type EventColumns,
  emptyState,
  encodeState,
  type FeatureValue,
  featuresBeforeEachColumnar,
  planView,
  readFeatures,
  toEventColumns,
  type ViewPlan,
} from '../shared/engine/index.ts';
import { fraudEngineEvent, fraudEventsToCsv, generateFraudEvents } from '../shared/synth/fraud-events.ts';
import { runOracle } from '../test/support/oracle.ts';

/** Median of 3 timed runs of the sweep after a warm-up run (so the JIT has compiled it). */
function timeTraining(
  plan: ViewPlan,
  columns: EventColumns,
): { ms: number; rows: ArrayLike<FeatureValue>[] } {
  featuresBeforeEachColumnar(plan, columns);
  const runs: number[] = [];
  let rows: ArrayLike<FeatureValue>[] = [];
  for (let r = 0; r < 3; r++) {
    const started = performance.now();
    rows = featuresBeforeEachColumnar(plan, columns);
    runs.push(performance.now() - started);
  }
  return { ms: runs.sort((a, b) => a - b)[1]!, rows };
}

const referencePlan = (mode: 'exact' | 'tiled'): ViewPlan =>
  planView(loadDefinitionsFile('definitions/fraud.yaml', { mode }).views[0]!);

/** Times the sweep in a worker thread that holds nothing but the columnar input. */
function timeTrainingIsolated(mode: 'exact' | 'tiled', columns: EventColumns): Promise<number> {
  // TypeScript loader hooks do not carry over to workers in Node 20: the worker registers tsx
  // itself, then loads this file, which sees it is not the main thread.
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const self = JSON.stringify(import.meta.url);
  const worker = new Worker(`import(${api}).then((tsx) => tsx.tsImport(${self}, ${self}));`, {
    eval: true,
    workerData: { mode, columns },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (ms: number) => {
      void worker.terminate();
      resolve(ms);
    });
    worker.once('error', reject);
  });
}

if (isMainThread) await main();
else {
  const { mode, columns } = workerData as { mode: 'exact' | 'tiled'; columns: EventColumns };
  parentPort!.postMessage(timeTraining(referencePlan(mode), columns).ms);
}

async function main(): Promise<void> {
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
    /** In a worker holding only the columns (the figure compared with pandas). */
    trainingPerS: number;
    /** In this process, beside the generated events and the apply step's states. */
    trainingSharedPerS: number;
    columnsPerS: number;
    bytesPerEntity: number;
    rows: ArrayLike<FeatureValue>[];
  }

  async function benchMode(mode: 'exact' | 'tiled'): Promise<ModeFigures> {
    const plan = referencePlan(mode);
    const engineEvents = events.map((e) => fraudEngineEvent(plan, e));
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
    // Serving: read every entity just after its own newest event (3 passes over all entities),
    // when its windows hold the most. Read at one time after the whole stream, nearly every window
    // was empty: the generator's window-edge events chain past its span, so that time lies months
    // after most entities' events, and those reads were 4x quicker than real ones.
    const readAt = new Map<string, number>();
    for (let i = 0; i < events.length; i++)
      readAt.set(keys[i]!, Math.max(readAt.get(keys[i]!) ?? 0, events[i]!.event_timestamp + 1));
    const [, readMs] = timed(() => {
      for (let pass = 0; pass < 3; pass++)
        for (const [key, state] of states) readFeatures(plan, state, readAt.get(key)!);
    });
    // Training rows from columnar input (what the offline store reads), median of 3 runs after a
    // warm-up so the JIT has compiled the sweep; the columnar layout step is timed on its own.
    const [columns, columnsMs] = timed(() => toEventColumns(plan, keys, engineEvents));
    const { ms: sharedMs, rows } = timeTraining(plan, columns);
    const isolatedMs = await timeTrainingIsolated(mode, columns);
    let bytes = 0;
    for (const state of states.values()) bytes += encodeState(plan, state).length;
    return {
      applyPerS: rate(N, applyMs),
      readsPerS: rate(states.size * 3, readMs),
      trainingPerS: rate(N, isolatedMs),
      trainingSharedPerS: rate(N, sharedMs),
      columnsPerS: rate(N, columnsMs),
      bytesPerEntity: Math.round(bytes / states.size),
      rows,
    };
  }

  const figures: Record<string, ModeFigures> = {};
  for (const mode of ['exact', 'tiled'] as const) {
    log(`engine, ${mode} mode ...`);
    figures[mode] = await benchMode(mode);
    const f = figures[mode]!;
    results[mode] = {
      apply_events_per_s: f.applyPerS,
      reads_per_s: f.readsPerS,
      training_rows_per_s: f.trainingPerS,
      training_rows_per_s_same_process: f.trainingSharedPerS,
      columnar_layout_rows_per_s: f.columnsPerS,
      state_bytes_per_entity: f.bytesPerEntity,
    };
  }

  console.log(`\nTessera engine, ${fmt(N)} events, ${new Set(keys).size} users, reference view (6 features)`);
  console.log(
    'mode   | apply events/s | serving reads/s | training rows/s | (same process) | (layout rows/s) | state bytes/entity',
  );
  for (const mode of ['exact', 'tiled'] as const) {
    const f = figures[mode]!;
    console.log(
      `${mode.padEnd(6)} | ${fmt(f.applyPerS).padStart(14)} | ${fmt(f.readsPerS).padStart(15)} | ${fmt(f.trainingPerS).padStart(15)} | ${fmt(f.trainingSharedPerS).padStart(14)} | ${fmt(f.columnsPerS).padStart(15)} | ${String(f.bytesPerEntity).padStart(18)}`,
    );
  }
  console.log(
    'training rows: features before every event, from columnar input (median of 3 after a warm-up),',
  );
  console.log(
    '  in a worker holding only the columns; (same process): beside the events and states of the run.',
  );
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

    console.log(
      "\nBaseline 1: the seed's naive loop (pandas mask over the whole frame per row), same events",
    );
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
      `\nBaseline 2: pandas groupby().rolling(closed="left"), ${pandas.features} of 6 features: ${fmt(Math.round(pandasRate))} events/s (median of ${(pandas.seconds_rounds as number[]).length} after a warm-up, as Tessera's; rounds ${(pandas.seconds_rounds as number[]).map((s) => s.toFixed(2)).join(' / ')} s)`,
    );
    console.log(
      `  values vs Tessera exact mode: max relative difference ${worst.toExponential(2)}, ${differing} values beyond 1e-9`,
    );
    console.log('\nRatios (same events, same run)');
    console.log(
      `  Tessera training rows (exact, 6 features) / pandas rolling (5 features): ${(ourRate / pandasRate).toFixed(1)}x  (goal >= 10x)`,
    );
    console.log(
      `  the same, timed in the benchmark's own process: ${(figures.exact!.trainingSharedPerS / pandasRate).toFixed(1)}x`,
    );
    console.log(
      `  Tessera training rows (exact) / seed naive loop at ${fmt(Number(naive[naive.length - 1]?.events ?? 0))} events: ${fmt(Math.round(ourRate / naiveRate))}x`,
    );
    for (const mode of ['exact', 'tiled'] as const)
      console.log(
        `  Tessera apply (${mode}) events/s vs 1M/s goal: ${(figures[mode]!.applyPerS / 1e6).toFixed(2)}x`,
      );
    results.ratio_training_vs_pandas = ourRate / pandasRate;
    results.ratio_training_same_process_vs_pandas = figures.exact!.trainingSharedPerS / pandasRate;

    // The independent oracle (test/oracle/oracle.py) on the first 100k events, engine on the same.
    const sample = events.slice(0, Math.min(N, 100_000));
    log(`oracle on ${fmt(sample.length)} events ...`);
    const oracle = runOracle(plan, sample);
    const sampleKeys = sample.map((e) => String(e.user_id));
    const sampleColumns = toEventColumns(
      plan,
      sampleKeys,
      sample.map((e) => fraudEngineEvent(plan, e)),
    );
    featuresBeforeEachColumnar(plan, sampleColumns);
    const [sampleRows, engineMs] = timed(() => featuresBeforeEachColumnar(plan, sampleColumns));
    let same = 0;
    oracle.rows.forEach((row, i) => {
      if (row.every((v, f) => v === sampleRows[f]![i] || (v === null && sampleRows[f]![i] === null))) same++;
    });
    console.log(
      `  oracle (naive loop, numpy) on ${fmt(sample.length)} events: ${oracle.seconds.toFixed(1)} s computing (${oracle.processSeconds.toFixed(1)} s with Python's start and the CSV I/O); engine: ${(engineMs / 1000).toFixed(3)} s; ` +
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
}
