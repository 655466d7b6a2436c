// Point-in-time retrieval benchmark: `tessera historical` (from the raw event log, the engine)
// against Feast's get_historical_features and a pandas merge_asof over the SAME files in the SAME
// run (the baselines read a precomputed features.parquet: one row per event). Labels are sampled
// transactions (the seed's use case), so all three must give identical values: a sample is
// compared and mismatches printed. Prints ratios; the machine is shared, lone times mean little.
//
//   npx tsx loadtest/pit-bench.ts [--events 10000000] [--labels 1000000] [--feast-events N]
//                                 [--feast-timeout 1200] [--seed 1] [--no-feast]
//
// Feast's file offline store joins every entity row with every feature row of its entity before
// filtering (dask merge), so its memory grows with labels x events per user; when it cannot run
// the full scale, --feast-events runs all three tools at that smaller scale too (same generator).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadDefinitionsFile } from '../shared/definitions/load.ts';
import { planView } from '../shared/engine/index.ts';
import { LocalObjectStore } from '../shared/offline/object-store.ts';
import {
  fraudTrainingRows,
  generateFraudLog,
  sampleRows,
  writeEntities,
  writeFeatureTable,
  writeFraudRawLog,
} from '../test/compat/pit-fixtures.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '10000000' },
    labels: { type: 'string', default: '1000000' },
    'feast-events': { type: 'string' },
    'feast-timeout': { type: 'string', default: '1200' },
    seed: { type: 'string', default: '1' },
    'no-feast': { type: 'boolean', default: false },
    python: { type: 'string', default: process.env.TESSERA_PYTHON ?? 'python3' },
  },
});
const EVENTS = Number(args.events);
const LABELS = Number(args.labels);
const feastEvents = args['feast-events'] ? Number(args['feast-events']) : EVENTS;
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

interface Timed {
  ok: boolean;
  seconds: number;
  rssMB: number;
  stdout: string;
  error: string;
}

/** Runs a command under /usr/bin/time for its wall time and peak RSS. */
function measure(cmd: string, argv: string[], timeoutS: number): Timed {
  const started = performance.now();
  const run = spawnSync('/usr/bin/time', ['-f', 'TIME_RSS_KB=%M', cmd, ...argv], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    timeout: timeoutS * 1000,
    killSignal: 'SIGKILL',
  });
  const seconds = (performance.now() - started) / 1000;
  const rss = /TIME_RSS_KB=(\d+)/.exec(run.stderr ?? '');
  const ok = run.status === 0;
  return {
    ok,
    seconds,
    rssMB: rss ? Number(rss[1]) / 1024 : Number.NaN,
    stdout: run.stdout ?? '',
    error: ok
      ? ''
      : run.error?.message?.includes('ETIMEDOUT') || run.signal === 'SIGKILL'
        ? `killed after ${timeoutS} s`
        : `exit ${run.status} ${run.signal ?? ''}: ${(run.stderr ?? '').split('\n').slice(-6).join(' | ')}`,
  };
}

const lastJson = (text: string): Record<string, unknown> => {
  const line = text.trim().split('\n').at(-1) ?? '{}';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return {};
  }
};

interface ScaleResult {
  events: number;
  labels: number;
  ours: Timed & { summary: Record<string, unknown> };
  table: { seconds: number };
  asof: Timed & { report: Record<string, unknown> };
  feast: (Timed & { report: Record<string, unknown> }) | null;
}

async function runScale(events: number, labels: number, withFeast: boolean): Promise<ScaleResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pit-bench-'));
  try {
    const view = loadDefinitionsFile('definitions/fraud.yaml').views[0]!;
    const plan = planView(view);
    log(`[${fmt(events)} events] generating (seed ${args.seed}) ...`);
    const fraud = generateFraudLog({ events, seed: Number(args.seed) });
    log(`[${fmt(events)} events] writing the raw log (local dir) ...`);
    const store = new LocalObjectStore(join(dir, 'store'));
    await writeFraudRawLog(store, view.source, fraud);
    log(`[${fmt(events)} events] features.parquet for the baselines (engine training-row sweep) ...`);
    const t0 = performance.now();
    const values = fraudTrainingRows(plan, fraud);
    writeFeatureTable(join(dir, 'features'), view, fraud, values);
    const table = { seconds: (performance.now() - t0) / 1000 };
    const entities = join(dir, 'entities.parquet');
    writeEntities(entities, fraud, sampleRows(fraud.n, labels));

    log(`[${fmt(events)} events] tessera historical, ${fmt(labels)} labels ...`);
    const oursOut = join(dir, 'ours.parquet');
    const ours = measure(
      process.execPath,
      [
        '--import',
        'tsx',
        'services/historical/main.ts',
        '--entities',
        entities,
        '--out',
        oursOut,
        '--store',
        join(dir, 'store'),
        '--quiet',
      ],
      3600,
    );
    if (!ours.ok) throw new Error(`tessera historical failed: ${ours.error}`);
    const baseline = (mode: 'asof' | 'feast', timeoutS: number) => {
      log(`[${fmt(events)} events] ${mode} baseline ...`);
      const r = measure(
        args.python,
        [
          'loadtest/baselines/feast_pit.py',
          '--mode',
          mode,
          '--features',
          join(dir, 'features'),
          '--entities',
          entities,
          '--ours',
          oursOut,
        ],
        timeoutS,
      );
      return { ...r, report: lastJson(r.stdout) };
    };
    const asof = baseline('asof', 3600);
    const feast = withFeast ? baseline('feast', Number(args['feast-timeout'])) : null;
    return { events, labels, ours: { ...ours, summary: lastJson(ours.stdout) }, table, asof, feast };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function print(r: ScaleResult): void {
  const oursRate = r.labels / r.ours.seconds;
  console.log(
    `\n${fmt(r.events)} events (raw log, ${fmt(Number(r.ours.summary.objectsRead ?? 0))} day objects), ${fmt(r.labels)} label rows (sampled transactions), 6 features`,
  );
  console.log(
    'tool                                   | wall s  | label rows/s | peak RSS MB | values vs Tessera (sample)',
  );
  const row = (name: string, t: Timed, extra: string) =>
    console.log(
      `${name.padEnd(38)} | ${t.ok ? t.seconds.toFixed(1).padStart(7) : '   n/a '} | ${t.ok ? fmt(r.labels / t.seconds).padStart(12) : '         n/a'} | ${fmt(t.rssMB).padStart(11)} | ${extra}`,
    );
  row('tessera historical (from raw log)', r.ours, 'itself');
  const cmp = (rep: Record<string, unknown>) =>
    `${fmt(Number(rep.compared ?? 0))} rows, ${rep.mismatches} mismatching values, ${rep.missing} missing${Number(rep.mismatches) > 0 ? ` e.g. ${JSON.stringify(rep.examples)}` : ''}`;
  row('pandas merge_asof (features.parquet)', r.asof, r.asof.ok ? cmp(r.asof.report) : r.asof.error);
  if (r.feast)
    row('Feast get_historical_features', r.feast, r.feast.ok ? cmp(r.feast.report) : r.feast.error);
  console.log(
    `  (features.parquet for the baselines: engine sweep + write, ${r.table.seconds.toFixed(1)} s, not counted above)`,
  );
  console.log('Ratios (same files, same run; wall time of each process, start-up and I/O included)');
  const oursInner = Number(r.ours.summary.seconds);
  if (r.feast?.ok) {
    const feastInner = Number(r.feast.report.seconds);
    console.log(
      `  Tessera / Feast: ${(r.feast.seconds / r.ours.seconds).toFixed(1)}x by wall time (goal >= 10x); ` +
        `${(feastInner / oursInner).toFixed(1)}x in-process (Feast's get_historical_features call ${feastInner.toFixed(1)} s ` +
        `vs Tessera's retrieval without process start-up ${oursInner.toFixed(1)} s)`,
    );
  } else if (r.feast) {
    console.log(
      `  Tessera / Feast: Feast did not finish (${r.feast.error}); Tessera took ${r.ours.seconds.toFixed(1)} s`,
    );
  }
  if (r.asof.ok)
    console.log(
      `  Tessera / pandas merge_asof: ${(r.asof.seconds / r.ours.seconds).toFixed(2)}x by wall time ` +
        `(merge_asof only joins a precomputed table; with the table's ${r.table.seconds.toFixed(1)} s: ${((r.asof.seconds + r.table.seconds) / r.ours.seconds).toFixed(2)}x)`,
    );
  console.log(`  Tessera phases (s): ${JSON.stringify(r.ours.summary.phases)}`);
  console.log(
    `  Tessera: ${fmt(oursRate)} label rows/s, ${fmt(Number(r.ours.summary.eventsRead ?? 0) / r.ours.seconds)} raw events/s read`,
  );
}

const results: ScaleResult[] = [];
const feastScale = Math.min(feastEvents, EVENTS);
if (!args['no-feast'] && feastScale < EVENTS) {
  const r = await runScale(feastScale, Math.max(1, Math.round((LABELS * feastScale) / EVENTS)), true);
  print(r);
  results.push(r);
}
const full = await runScale(EVENTS, LABELS, !args['no-feast'] && feastScale >= EVENTS);
print(full);
results.push(full);
console.log(
  `\n${JSON.stringify(
    results.map((r) => ({
      events: r.events,
      labels: r.labels,
      tessera_s: r.ours.seconds,
      tessera_inner_s: r.ours.summary.seconds,
      tessera_rss_mb: r.ours.rssMB,
      asof_s: r.asof.ok ? r.asof.seconds : null,
      asof_mismatches: r.asof.report.mismatches ?? null,
      feast_s: r.feast?.ok ? r.feast.seconds : null,
      feast_call_s: r.feast?.ok ? r.feast.report.seconds : null,
      feast_rss_mb: r.feast ? r.feast.rssMB : null,
      feast_mismatches: r.feast?.report.mismatches ?? null,
      feast_error: r.feast && !r.feast.ok ? r.feast.error : null,
    })),
  )}`,
);
