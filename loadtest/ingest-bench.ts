// Ingest benchmark on the local stack: one ingestor process, broker and Redis on this machine.
//  1. throughput: N events pre-loaded on a 6-partition topic, consumed by Kafka's own consumer perf
//     tool (org.apache.kafka.tools.ConsumerPerformance), by a bare kafkajs consumer (fetch only, then
//     also JSON.parse: the client's own ceiling, loadtest/kafkajs-ceiling.ts), by the ingestor, and
//     by the ingestor again with training rows off (TESSERA_TRAINING_ROWS=false), same topic, same run,
//     and with --processes N by N ingestor processes of one group; beside each, the machine's busy share;
//  2. freshness: produce at a fixed rate while the ingestor runs; produce -> Redis-acknowledged latency
//     from the ingestor's histogram (p50/p99, interpolated within buckets like histogram_quantile),
//     and the ingestor's GC pauses over the same seconds (its nodejs_gc_duration_seconds);
//     then the same schedule into the floor (loadtest/freshness-floor.ts: kafkajs, JSON.parse, one
//     pipelined Redis SET per event, nothing else), printed beside the ingestor (--no-floor skips it);
//  3. memory (--rss-minutes M): the ingestor's RSS sampled every 30 s while producing at the fixed rate,
//     the same month of events (--rss-laps times, one after the other in event time): once the first
//     lap has filled the windows, the states stop growing, so what still grows is the process's own.
//
//   eval "$(scripts/stack env)"; npx tsx loadtest/ingest-bench.ts [--events 300000] [--rate 10000]
//     [--fresh-seconds 30] [--fresh-runs 1] [--warmup-seconds 5] [--rss-minutes 0] [--rss-laps 3] [--timeline] [--produce-batch 500]
//     [--ingestor-log FILE] [--no-floor] [--processes N]
//   CPU profile of the ingestor: TESSERA_INGESTOR_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
//   Every run with training rows off: TESSERA_TRAINING_ROWS=false in the environment.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { produceEvents } from '../services/producer/produce.ts';
import { loadDefinitionsFile } from '../shared/definitions/load.ts';
import { generateFraudEvents } from '../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  deleteRunKeys,
  type IngestorProcess,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../test/support/ingestor-process.ts';
import { scrapeMetrics } from '../test/support/ops-endpoint.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '300000' },
    rate: { type: 'string', default: '10000' },
    'fresh-seconds': { type: 'string', default: '30' },
    // Freshness runs one after the other, each with its own ingestor: the p99 of one run moves by
    // tens of ms on this host, so a goal is judged by how many runs meet it, printed at the end.
    'fresh-runs': { type: 'string', default: '1' },
    'rss-minutes': { type: 'string', default: '0' },
    // The memory run replays one generated month this many times, each lap after the one before in
    // event time (the last ends now). One lap would grow every state for the whole run.
    'rss-laps': { type: 'string', default: '3' },
    // Prints, per second of the freshness run, how many events reached Redis and how many of them
    // took over 50 ms: where the slow ones are (start-up, a GC, a stall) rather than only how many.
    timeline: { type: 'boolean', default: false },
    // Messages per produce request in the freshness run (the producer's default: 500, i.e. a burst
    // every 50 ms at 10k/s; a smaller one spreads the same rate more evenly).
    'produce-batch': { type: 'string', default: '500' },
    // Produced at the rate before the measured seconds: a fresh process's first seconds (JIT,
    // first loads of every entity) are reported apart, as the cold-start figure.
    'warmup-seconds': { type: 'string', default: '5' },
    // Writes the freshness run's ingestor output (its logs; with TESSERA_INGESTOR_NODE_ARGS=--trace-gc
    // its GC lines) to this file once it has stopped, and the memory run's to FILE.memory.
    'ingestor-log': { type: 'string' },
    // Skip the freshness floor (loadtest/freshness-floor.ts) run after the ingestor's freshness run.
    'no-floor': { type: 'boolean', default: false },
    // After the rows-off run, the catch-up again (rows as configured) with this many ingestor
    // processes in one group, sharing the 6 partitions: what scale-out gives on this machine.
    processes: { type: 'string', default: '1' },
  },
});
const N = Number(args.events);
const RATE = Number(args.rate);
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const PROCESSES = Number(args.processes);
if (!(Number.isInteger(PROCESSES) && PROCESSES >= 1 && PROCESSES <= 6)) {
  log(`--processes ${args.processes}: give a whole number from 1 to 6 (the bench's topic has 6 partitions)`);
  process.exit(2);
}
// The production defaults for the group session (30 s / 3 s), not the tests' quick-failover 6 s.
const BENCH_ENV = {
  TESSERA_INGEST_CLOCK: 'event',
  TESSERA_KAFKA_SESSION_TIMEOUT_MS: '30000',
  TESSERA_KAFKA_HEARTBEAT_MS: '3000',
};
const HISTOGRAM = 'tessera_ingestor_event_to_redis_seconds';
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const kafkaJars = `${process.env.TESSERA_CACHE ?? `${process.env.HOME}/.cache/tessera`}/jars/kafka-4.1.1-log4j-2.25.3/libs`;

async function produce(
  run: TestRun,
  events: number,
  rate: number,
  seed: number,
  batchSize?: number,
  /** Shift the generated event times so the stream's last event is at this time (ms). */
  endAt?: number,
) {
  const definitions = loadDefinitionsFile(run.config.definitions);
  return produceEvents({
    config: run.config,
    source: definitions.sources[0]!,
    definitionsDir: dirname(definitions.file),
    topic: run.topic,
    events,
    seed,
    rate,
    createTopic: true,
    partitions: 6,
    ...(batchSize ? { batchSize } : {}),
    ...(endAt === undefined ? {} : { nowBased: true, now: () => endAt }),
  });
}

type Buckets = { le: number; count: number }[];

/** A Prometheus histogram's cumulative buckets. */
function histogramBuckets(text: string, name: string): Buckets {
  return [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => ({
    le: m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]),
    count: Number(m[2]),
  }));
}

/** The observations between two snapshots of the same histogram. */
function bucketsSince(now: Buckets, then: Buckets): Buckets {
  return now.map((b, i) => ({ le: b.le, count: b.count - (then[i]?.count ?? 0) }));
}

/** Share of the observations at or below each bucket bound, e.g. "<=50ms 97.1%". */
function histogramShares(buckets: Buckets, bounds: number[]): string {
  const total = buckets[buckets.length - 1]?.count ?? 0;
  return bounds
    .map((le) => {
      const count = buckets.find((b) => b.le === le)?.count ?? Number.NaN;
      return `<=${le * 1000}ms ${((100 * count) / Math.max(1, total)).toFixed(1)}%`;
    })
    .join(', ');
}

/** Quantile from a histogram's cumulative buckets, linear within the bucket (histogram_quantile). */
function histogramQuantile(
  buckets: Buckets,
  q: number,
): { value: number; count: number; bucket: [number, number] } {
  const total = buckets[buckets.length - 1]?.count ?? 0;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return { value: prevLe, count: total, bucket: [prevLe, b.le] };
      return {
        value: prevLe + ((b.le - prevLe) * (rank - prevCount)) / Math.max(1, b.count - prevCount),
        count: total,
        bucket: [prevLe, b.le],
      };
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return { value: Number.NaN, count: total, bucket: [Number.NaN, Number.NaN] };
}

/** The ingestor's time per batch stage, summed over batches (they overlap), and its state loads. */
function stageBreakdown(text: string): string {
  const sum = (name: string, label: string) =>
    [...text.matchAll(new RegExp(`^${name}\\{[^}]*${label}="([^"]+)"[^}]*\\} ([\\d.e+-]+)`, 'gm'))].reduce(
      (acc, m) => acc.set(m[1]!, (acc.get(m[1]!) ?? 0) + Number(m[2])),
      new Map<string, number>(),
    );
  const stages = [...sum('tessera_ingestor_stage_seconds_total', 'stage')]
    .map(([stage, s]) => `${stage} ${s.toFixed(1)} s`)
    .join(', ');
  const loads = sum('tessera_ingestor_state_loads_total', 'source');
  const writes = sum('tessera_ingestor_state_writes_total', 'kind');
  const batches = /^tessera_ingestor_batch_duration_seconds_count (\d+)/m.exec(text)?.[1];
  return (
    `per stage, summed over ${batches} batches: ${stages}\n` +
    `  entity states from the cache ${fmt(loads.get('cache') ?? 0)}, fetched from Redis ${fmt(loads.get('redis') ?? 0)}; ` +
    `writes as delta records ${fmt(writes.get('delta') ?? 0)}, in full ${fmt(writes.get('full') ?? 0)}`
  );
}

type GcStats = Map<string, { count: number; seconds: number; over10ms: number }>;

/**
 * The main thread's GC pauses by kind (minor: scavenges; major: mark-compact; incremental: marking
 * steps), from prom-client's nodejs_gc_duration_seconds histogram in the ingestor's metrics.
 */
function gcStats(text: string): GcStats {
  const name = 'tessera_ingestor_nodejs_gc_duration_seconds';
  const stats: GcStats = new Map();
  const of = (kind: string) => {
    let k = stats.get(kind);
    if (!k) {
      k = { count: 0, seconds: 0, over10ms: 0 };
      stats.set(kind, k);
    }
    return k;
  };
  const kindOf = (labels: string) => /kind="([^"]+)"/.exec(labels)?.[1] ?? '?';
  for (const m of text.matchAll(new RegExp(`^${name}_(sum|count)\\{([^}]*)\\} ([\\d.e+-]+)`, 'gm'))) {
    if (m[1] === 'sum') of(kindOf(m[2]!)).seconds = Number(m[3]);
    else of(kindOf(m[2]!)).count = Number(m[3]);
  }
  // Pauses over 10 ms: all of a kind's pauses minus those in the le="0.01" bucket.
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{([^}]*le="0.01"[^}]*)\\} (\\d+)`, 'gm')))
    of(kindOf(m[1]!)).over10ms = -Number(m[2]);
  for (const k of stats.values()) k.over10ms += k.count;
  return stats;
}

/** "minor 180 pauses, 1,420 ms (12 over 10 ms); ...": the pauses between two snapshots. */
function gcSince(now: GcStats, then: GcStats, seconds: number): string {
  let total = 0;
  const none = { count: 0, seconds: 0, over10ms: 0 };
  const kinds = [...now]
    .filter(([kind, n]) => n.count > (then.get(kind) ?? none).count)
    .map(([kind, n]) => {
      const t = then.get(kind) ?? none;
      const ms = (n.seconds - t.seconds) * 1000;
      total += ms;
      return `${kind} ${fmt(n.count - t.count)} pauses, ${fmt(ms)} ms (${fmt(n.over10ms - t.over10ms)} over 10 ms)`;
    });
  return `${kinds.join('; ')}: ${((total / (seconds * 1000)) * 100).toFixed(1)} % of the time`;
}

/** Records the ingestor has finished with (applied, duplicate or dead-lettered), from its metrics. */
function processedEvents(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/^tessera_ingestor_events_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

/** User + system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** Busy and total clock ticks of the whole machine so far (/proc/stat's first line: all cores). */
function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total }; // less idle and iowait
}

interface CatchUp {
  rate: number;
  cpuPerEventUs: number;
  stages: string;
  /** The whole machine's busy share over the same span, 0..1 of all its cores. */
  machineBusy: number;
  /** Events handled within the timed span (the others before the last process joined the group). */
  timed: number;
}

/**
 * Runs `processes` ingestors of one group over the run's whole topic (N events, already produced)
 * and times them from the moment every one has joined the group (its `ingestor ready` line comes
 * right after kafkajs' join and sync) to the last record, as the broker's tool and kafkajs-ceiling
 * are timed (from the join: the first fetch is inside the window). Events handled before the last
 * process joined (several processes) are left out of the count. From their own event counters
 * (commits are periodic, so committed offsets lag by up to the commit interval); their CPU time and
 * the machine's over the same span from /proc.
 */
async function catchUp(run: TestRun, processes = 1): Promise<CatchUp> {
  const ingestors = Array.from({ length: processes }, () => startIngestor(run));
  await Promise.all(ingestors.map((i) => i.ready));
  const cpu = () => ingestors.reduce((sum, i) => sum + cpuSeconds(i.child.pid!), 0);
  const firstAt = performance.now();
  const firstCpu = cpu();
  const firstMachine = machineTicks();
  let firstDone = -1;
  for (;;) {
    const texts = await Promise.all(ingestors.map(async (i) => scrapeMetrics(i.output())));
    const done = texts.map(processedEvents).reduce((a, b) => a + b, 0);
    if (firstDone < 0) firstDone = done;
    if (done >= N) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - firstAt) / 1000;
  const timed = N - firstDone;
  const cpuPerEventUs = ((cpu() - firstCpu) / timed) * 1e6;
  const machine = machineTicks();
  const machineBusy = (machine.busy - firstMachine.busy) / (machine.total - firstMachine.total);
  const stages = processes === 1 ? stageBreakdown(await scrapeMetrics(ingestors[0]!.output())) : '';
  for (const i of ingestors) i.child.kill('SIGTERM');
  await Promise.all(ingestors.map((i) => i.exited));
  if (timed < N / 2)
    log(
      `warning: only ${fmt(timed)} of ${fmt(N)} events were timed (the ingestors had done the rest ` +
        'before the last of them joined the group); the rate needs more --events (e.g. 300000)',
    );
  return { rate: timed / seconds, cpuPerEventUs, stages, machineBusy, timed };
}

/**
 * A run of its own (topic, group, Redis prefix) with an ingestor that has joined its group: `body`
 * gets both; then the ingestor is stopped (its output written to `logFile`) and the run removed.
 */
async function withIngestor(
  logFile: string | undefined,
  body: (run: TestRun, ingestor: IngestorProcess) => Promise<void>,
): Promise<void> {
  const run = newTestRun(BENCH_ENV);
  try {
    await createSourceTopic(run, 6);
    const ingestor = startIngestor(run);
    try {
      await ingestor.ready;
      await new Promise((r) => setTimeout(r, 3000)); // group join
      await body(run, ingestor);
    } finally {
      ingestor.child.kill('SIGTERM');
      await ingestor.exited;
      if (logFile) writeFileSync(logFile, ingestor.output());
    }
  } finally {
    await cleanupRun(run);
  }
}

// 1. Throughput.
{
  const run = newTestRun(BENCH_ENV);
  try {
    log(`producing ${fmt(N)} events ...`);
    await produce(run, N, 0, 1);
    log('broker consumer perf tool ...');
    const perf = execFileSync(
      'java',
      [
        '-Xmx512m',
        '-cp',
        `${kafkaJars}/*`,
        'org.apache.kafka.tools.ConsumerPerformance',
        '--bootstrap-server',
        run.config.kafkaBrokers[0]!,
        '--topic',
        run.topic,
        '--messages',
        String(N),
        '--timeout',
        '60000',
      ],
      { encoding: 'utf8' },
    );
    const row = perf
      .trim()
      .split('\n')
      .pop()!
      .split(',')
      .map((c) => c.trim());
    const brokerRate = Number(row[9]); // fetch.nMsg.sec: excludes the group join, like ours below
    // The Kafka client's own ceiling: kafkajs only fetching, then also JSON.parsing each value.
    const ceiling = (parse: boolean) => {
      log(`kafkajs consumer${parse ? ' + JSON.parse' : ''} ...`);
      const out = execFileSync(
        process.execPath,
        [
          '--import',
          'tsx',
          'loadtest/kafkajs-ceiling.ts',
          '--topic',
          run.topic,
          '--messages',
          String(N),
          ...(parse ? ['--parse'] : []),
        ],
        { encoding: 'utf8', env: { ...process.env, ...run.env }, timeout: 300_000 },
      );
      return JSON.parse(out.trim().split('\n').pop()!) as { rate: number; cpu_us_per_record: number };
    };
    const fetchOnly = ceiling(false);
    const parseOnly = ceiling(true);
    log('ingestor ...');
    const ours = await catchUp(run);
    // The same again with training rows off (TESSERA_TRAINING_ROWS=false), on states written afresh
    // by a group of its own: what the rows cost.
    log('ingestor, training rows off ...');
    await deleteRunKeys(run);
    const noRows = await catchUp({
      ...run,
      env: { ...run.env, TESSERA_INGESTOR_GROUP: `${run.id}-norows`, TESSERA_TRAINING_ROWS: 'false' },
    });
    let group: CatchUp | undefined;
    if (PROCESSES > 1) {
      log(`${PROCESSES} ingestor processes in one group ...`);
      await deleteRunKeys(run);
      group = await catchUp(
        { ...run, env: { ...run.env, TESSERA_INGESTOR_GROUP: `${run.id}-group` } },
        PROCESSES,
      );
    }
    const oursRate = ours.rate;
    console.log(
      `\nIngest throughput, ${fmt(N)} JSON events, 6 partitions, one process, reference view (6 features, exact)`,
    );
    console.log(`  Kafka ConsumerPerformance (fetch only):       ${fmt(brokerRate)} msg/s`);
    for (const [name, c] of [
      ['kafkajs consumer (fetch only)', fetchOnly],
      ['kafkajs consumer + JSON.parse', parseOnly],
    ] as const)
      console.log(
        `  ${`${name}:`.padEnd(45)} ${fmt(c.rate)} msg/s (${c.cpu_us_per_record.toFixed(1)} µs CPU per record)`,
      );
    if (ours.timed < N / 2) {
      // Its figures would be a few events over a few ms (0 events/s, NaN per event): none printed.
      console.log(
        `  Tessera ingestor: not timed, it had handled ${fmt(N - ours.timed)} of the ${fmt(N)} events by the time it had joined its group; run with --events 300000 for the ingestor's figures`,
      );
    } else {
      console.log(`  Tessera ingestor (decode, apply, Redis, push): ${fmt(oursRate)} events/s`);
      console.log(
        `  ratio ingestor / broker tool: ${(oursRate / brokerRate).toFixed(2)}  (goal >= 0.5; goal >= 100k events/s); ingestor / kafkajs fetch only: ${(oursRate / fetchOnly.rate).toFixed(2)}`,
      );
      console.log(
        `  ingestor CPU (user + system) per event: ${ours.cpuPerEventUs.toFixed(1)} µs, i.e. ${fmt(1e6 / ours.cpuPerEventUs)} events per CPU-second`,
      );
      console.log(`  ${ours.stages}`);
      const busy = (c: CatchUp) =>
        `the machine ${Math.round(c.machineBusy * 100)} % busy (all ${cpus().length} cores)`;
      console.log(`  over the ingestor's catch-up: ${busy(ours)}`);
      console.log(
        `  the same with training rows off (TESSERA_TRAINING_ROWS=false): ${fmt(noRows.rate)} events/s ` +
          `(${(noRows.rate / brokerRate).toFixed(2)} of the broker tool), ${noRows.cpuPerEventUs.toFixed(1)} µs CPU per event, ` +
          `${(noRows.rate / oursRate).toFixed(2)}x ${run.config.trainingRows ? 'with rows' : 'the run above (TESSERA_TRAINING_ROWS=false: no rows in either)'}`,
      );
      if (group)
        console.log(
          `  ${PROCESSES} ingestor processes in one group: ${fmt(group.rate)} events/s, ${(group.rate / oursRate).toFixed(2)}x one process, ` +
            `${group.cpuPerEventUs.toFixed(1)} µs CPU per event (all of them), ${busy(group)}`,
        );
    }
  } finally {
    await cleanupRun(run);
  }
}

// 2. Freshness; --fresh-seconds 0 skips it.
if (Number(args['fresh-seconds']) > 0) {
  const runs = Math.max(1, Number(args['fresh-runs']));
  const p99s: number[] = [];
  for (let n = 1; n <= runs; n++) {
    if (runs > 1) log(`freshness run ${n} of ${runs}`);
    await withIngestor(args['ingestor-log'], async (run, ingestor) => {
      const seconds = Number(args['fresh-seconds']);
      const warmup = Number(args['warmup-seconds']);
      log(`producing at ${fmt(RATE)}/s for ${warmup} s of warm-up, then ${seconds} s measured ...`);
      // The histogram every second: the steady-state figures are what reached Redis after the
      // warm-up, and the timeline shows where the slow events were.
      // The GC pauses come from the same scrapes, so they cover the same seconds as the latencies.
      const snapshots: { at: number; buckets: Buckets; gc: GcStats; cpu: number }[] = [];
      const snapshot = async () => {
        const at = performance.now();
        const cpu = cpuSeconds(ingestor.child.pid!);
        const text = await scrapeMetrics(ingestor.output());
        snapshots.push({ at, buckets: histogramBuckets(text, HISTOGRAM), gc: gcStats(text), cpu });
      };
      await snapshot();
      const sampler = setInterval(() => void snapshot(), 1000);
      const produced = await produce(run, RATE * (warmup + seconds), RATE, 2, Number(args['produce-batch']));
      // The warm-up counts from the first message sent: generating the events and connecting the
      // producer take about a second before it, which once shortened the warm-up by as much.
      const producing = performance.now() - produced.elapsedMs;
      // Generous: on a loaded machine a saturated ingestor still finishes, and the figures say so.
      await waitForCaughtUp(run, run.topic, 300_000).catch((error: unknown) => {
        log(`ingestor output (last 4000 chars):\n${ingestor.output().slice(-4000)}`);
        throw error;
      });
      clearInterval(sampler);
      const cpuNow = cpuSeconds(ingestor.child.pid!);
      const text = await scrapeMetrics(ingestor.output());
      const all = histogramBuckets(text, HISTOGRAM);
      const warmedUp = snapshots.find((s) => s.at >= producing + warmup * 1000) ?? snapshots[0]!;
      const steady = bucketsSince(all, warmedUp.buckets);
      // The CPU of the events that reached Redis since that snapshot, per event.
      const cpuPerEventUs = ((cpuNow - warmedUp.cpu) / Math.max(1, steady.at(-1)?.count ?? 0)) * 1e6;
      const ms = (q: { value: number }) => (q.value * 1000).toFixed(1);
      console.log(
        `\nFreshness at ${fmt(RATE)} events/s, ${args['produce-batch']} per produce request: produce -> Redis acknowledged`,
      );
      const p99 = histogramQuantile(steady, 0.99);
      p99s.push(p99.value * 1000);
      console.log(
        `  after ${warmup} s of warm-up, ${seconds} s (${fmt(p99.count)} events): p50 ${ms(histogramQuantile(steady, 0.5))} ms, p99 ${ms(p99)} ms, interpolated in its bucket (${p99.bucket.map((s) => s * 1000).join(', ')}] ms  (goal p99 < 50 ms)`,
      );
      console.log(`    ${histogramShares(steady, [0.025, 0.05, 0.1, 0.25, 0.5, 1])}`);
      console.log(
        `  whole run from a cold start (${fmt(histogramQuantile(all, 0.5).count)} events): p50 ${ms(histogramQuantile(all, 0.5))} ms, p99 ${ms(histogramQuantile(all, 0.99))} ms`,
      );
      if (args.timeline) {
        const fast = (b: Buckets) => b.find((x) => x.le === 0.05)?.count ?? 0;
        const line = snapshots.slice(1).map((s, i) => {
          const d = bucketsSince(s.buckets, snapshots[i]!.buckets);
          const total = d.at(-1)?.count ?? 0;
          return `${total}/${total - fast(d)}`;
        });
        console.log(`  per second, events reaching Redis / of them over 50 ms: ${line.join(' ')}`);
      }
      console.log(
        `  ingestor CPU per event after the warm-up ${cpuPerEventUs.toFixed(1)} µs (${((cpuPerEventUs * RATE) / 1e4).toFixed(0)} % of one core at this rate)`,
      );
      console.log(
        `  ingestor GC after the warm-up (main thread): ${gcSince(gcStats(text), warmedUp.gc, (performance.now() - warmedUp.at) / 1000)}`,
      );
      console.log(`  producer achieved ${fmt(produced.ratePerSec)} events/s; ${stageBreakdown(text)}`);
    });
  }
  if (runs > 1) {
    const met = p99s.filter((ms) => ms < 50).length;
    console.log(
      `\nFreshness p99 over ${runs} runs: ${p99s.map((ms) => ms.toFixed(1)).join(', ')} ms; under 50 ms (the goal) in ${met} of ${runs}`,
    );
  }
  if (!args['no-floor']) await freshnessFloor(Number(args['warmup-seconds']), Number(args['fresh-seconds']));
}

// 3. Memory (--rss-minutes), on a run of its own: its event times need not follow the freshness run's.
const minutes = Number(args['rss-minutes']);
if (minutes > 0) {
  const logFile = args['ingestor-log'] && `${args['ingestor-log']}.memory`;
  await withIngestor(logFile, async (run, ingestor) => {
    const pid = ingestor.child.pid!;
    const samples: string[] = [];
    const sampler = setInterval(() => samples.push(rssMiB(pid).toFixed(0)), 30_000);
    samples.push(rssMiB(pid).toFixed(0));
    // A stationary stream: the same generated month, `laps` times, each lap shifted one span
    // later in event time than the one before and the last ending now. From the second lap on,
    // each entity's windows hold one lap's events, as in a deployment whose windows are full;
    // a single 10-minute month grew every state all through the run (sessions 4-8).
    const laps = Math.max(1, Number(args['rss-laps']));
    const perLap = Math.round((RATE * 60 * minutes) / laps);
    const month = generateFraudEvents({ events: perLap, seed: 3 });
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const e of month) {
      first = Math.min(first, e.event_timestamp);
      last = Math.max(last, e.event_timestamp);
    }
    const lapMs = last - first + 2 * 3_600_000;
    const end = Date.now();
    log(
      `memory: producing at ${fmt(RATE)}/s for ${minutes} min, ${laps} laps of ${fmt(perLap)} events ` +
        `(${(lapMs / 86_400_000).toFixed(0)} days of event time each), RSS every 30 s ...`,
    );
    for (let lap = 0; lap < laps; lap++) {
      await produce(run, perLap, RATE, 3, undefined, end - (laps - 1 - lap) * lapMs);
      samples.push('|');
    }
    clearInterval(sampler);
    samples.push(rssMiB(pid).toFixed(0));
    const text = await scrapeMetrics(ingestor.output());
    console.log(
      `\nIngestor RSS (MiB) every 30 s over ${minutes} min at ${fmt(RATE)} events/s (| between laps): ${samples.join(' ')}`,
    );
    const dead = [...text.matchAll(/^tessera_ingestor_events_total\{[^}]*outcome="dlq"[^}]*\} (\d+)/gm)];
    console.log(
      `  events the ingestor finished by the end: ${fmt(processedEvents(text))} of ${fmt(perLap * laps)}, ` +
        `${fmt(dead.reduce((n, m) => n + Number(m[1]), 0))} of them dead-lettered`,
    );
    console.log(`  ${stageBreakdown(text)}`);
  });
}

/**
 * The same produce schedule again, consumed by loadtest/freshness-floor.ts instead of the ingestor:
 * kafkajs, JSON.parse and one pipelined Redis SET per event, nothing else. Its p99 is what this
 * machine allows right now, the ingestor's beside it.
 */
async function freshnessFloor(warmup: number, seconds: number): Promise<void> {
  const run = newTestRun(BENCH_ENV);
  try {
    await createSourceTopic(run, 6);
    const total = RATE * (warmup + seconds);
    log(`the floor: the same ${fmt(RATE)}/s into loadtest/freshness-floor.ts ...`);
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'loadtest/freshness-floor.ts',
        '--topic',
        run.topic,
        '--messages',
        String(total),
        '--skip',
        String(RATE * warmup),
      ],
      { env: { ...process.env, ...run.env }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (!out.includes('ready') && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 100));
    if (!out.includes('ready')) throw new Error(`freshness-floor.ts did not join its group: ${out}`);
    await new Promise((r) => setTimeout(r, 3000)); // as for the ingestor
    await produce(run, total, RATE, 2, Number(args['produce-batch']));
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise((r) => {
        timer = setTimeout(() => r('timeout'), 300_000);
      }),
    ]);
    clearTimeout(timer);
    if (code !== 0) {
      child.kill('SIGKILL');
      throw new Error(`freshness-floor.ts ended with ${String(code)}: ${out}`);
    }
    const f = JSON.parse(out.trim().split('\n').pop()!) as {
      p50: number;
      p99: number;
      within_25ms: number;
      within_50ms: number;
      cpu_us_per_record: number;
      count: number;
    };
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    console.log(
      `  the floor, right after (loadtest/freshness-floor.ts: kafkajs, JSON.parse, one pipelined Redis SET per event; ` +
        `no state, features, produce or commit), same schedule, ${fmt(f.count)} events after the warm-up: ` +
        `p50 ${f.p50.toFixed(1)} ms, p99 ${f.p99.toFixed(1)} ms, <=25ms ${pct(f.within_25ms)}, <=50ms ${pct(f.within_50ms)}, ` +
        `${f.cpu_us_per_record.toFixed(1)} µs CPU per event`,
    );
  } finally {
    await cleanupRun(run);
  }
}
