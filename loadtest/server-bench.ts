// Online-server benchmark (issue #6): Tessera's server (services/server) beside Feast's own Python
// feature server (`feast serve`, Redis online store), same users, same six features, same request
// bodies, loaded from a separate autocannon process on loopback, alternating servers in one run.
// Prints QPS at saturation, p50/p99 at fixed rates, single entity and batches of 100, the ratios,
// and a value check of both servers against the engine for a sample of users.
//
//   eval "$(scripts/stack env)"; npx tsx loadtest/server-bench.ts [--users 100000] [--duration 15]
//     [--rate 5000] [--batch-rate 200] [--feast-workers 1,2] [--rounds 2] [--sweep 4,8,64]
//     [--server-cpu-prof DIR] [--server-node-args="--trace-gc ..."] [--server-logs DIR] [--no-feast]
//     [--baseline DIR] [--baseline-node-args="..."] [--scenarios single,batch] [--paced]
//     [--loader autocannon,go,paced] [--go-connections 64] [--server-probe] [--delta-rounds 4]
//     [--no-floor] [--server-redis-url URL] [--baseline-redis-url URL]
//
// The floors: a bare node:http server (loadtest/floor-server.ts) answering Tessera's own bytes for
// one lookup without auth, Redis or features, and the same server reading the entity's state from
// Redis first (one HMGET, as Tessera does), loaded in every single-lookup cell right after
// Tessera's. Their p99s are what this machine allows a Node server, and a Node server over Redis,
// at that moment; they move several times over between identical runs on a shared VM, so
// Tessera's p99 is printed beside them.
// --server-redis-url / --baseline-redis-url point one server at Redis another way than the data
// load (e.g. the stack's Unix socket, unix:///.../redis.sock) to compare the two in one run.
//
// --baseline DIR runs a second Tessera server from another checkout (e.g. `git worktree add
// /tmp/server-base HEAD`, with node_modules linked in, and the engine files of this tree copied in
// when only the server should differ) beside this one, alternating in every cell, and checks that
// both answer byte-identical responses: before/after figures from one run on a shared machine.
// --paced runs every fixed rate again with evenly spaced arrivals (runPaced) instead of
// autocannon's per-second bursts. --no-feast skips Feast (faster iterations; no Feast ratios).
// --loader picks the load generators of the fixed-rate cells (for Tessera and Feast alike):
// autocannon (per-second bursts), paced (this file's Node open-loop sender), go
// (loadtest/loadgen: open loop, evenly spaced, latency from each request's due time, a compiled
// sender that costs a fraction of a Node one; built with `go build` into ~/.cache/tessera/loadgen,
// TESSERA_GO names the go binary). Every figure names its loader. --server-probe starts Tessera's
// servers with TESSERA_SERVER_LATENCY_PROBE=true and prints, per cell, the server's own request
// and Redis-read times, event-loop lateness and GC pauses beside what the client measured.
//
// Data: seeded fraud events for ~100k users, run through the engine offline (exact mode, as the
// ingestor does) and saved with RedisStateStore.saveMany under a unique key prefix, the last tenth
// in --delta-rounds rounds as the ingestor saves, so busy users hold delta records; Feast gets the
// engine's feature values as of the load time, written with write_to_online_store into Redis db 1
// under a unique project. Tessera computes at read time, so event times are chosen to leave no
// window boundary crossed for --valid-minutes after the load: both servers must answer the same.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { homedir, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '1' },
    // Zipf exponent of user activity: 0.8 gives ~10 events per user with a few thousand for the
    // busiest (1.1, the engine bench's default, leaves a third of 100k ids without any event).
    skew: { type: 'string', default: '0.8' },
    'events-per-user': { type: 'string', default: '11' },
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    rate: { type: 'string', default: '5000' },
    'batch-rate': { type: 'string', default: '200' },
    batch: { type: 'string', default: '100' },
    connections: { type: 'string', default: '32' },
    'rate-connections': { type: 'string', default: '8' },
    // The Go loader's pool at fixed rates: enough that a stall of the server queues requests on
    // the server's sockets (where an open loop puts them) rather than behind 8 busy connections.
    'go-connections': { type: 'string', default: '64' },
    // Also run every fixed rate with evenly spaced arrivals (see LoadSpec.paced); = --loader +paced.
    paced: { type: 'boolean', default: false },
    // Load generators for the fixed-rate cells, comma-separated: autocannon (per-second bursts),
    // paced (this file's Node open-loop sender), go (loadtest/loadgen, open loop, compiled). The
    // saturation cells use autocannon if listed, else go.
    loader: { type: 'string', default: 'autocannon,go' },
    // Start Tessera's servers with TESSERA_SERVER_LATENCY_PROBE=true and print, per cell, the
    // server's own request time, Redis reads, event-loop lateness and GC pauses beside the client's.
    'server-probe': { type: 'boolean', default: false },
    'feast-rate': { type: 'string' },
    'feast-batch-rate': { type: 'string' },
    'feast-workers': { type: 'string', default: '1,2' },
    // Saturation QPS at these connection counts too (closed loop), both servers alternating.
    sweep: { type: 'string', default: '' },
    rounds: { type: 'string', default: '2' },
    sample: { type: 'string', default: '200' },
    'valid-minutes': { type: 'string', default: '40' },
    'server-cpu-prof': { type: 'string' },
    // Extra node flags for Tessera's servers (space-separated), e.g. "--trace-gc" or "--heap-prof".
    'server-node-args': { type: 'string', default: '' },
    // The same for the --baseline server (e.g. --baseline . to compare node flags on one checkout).
    'baseline-node-args': { type: 'string', default: '' },
    // Keep the servers' output (e.g. --trace-gc lines) in this directory; default: deleted at the end.
    'server-logs': { type: 'string' },
    'no-feast': { type: 'boolean', default: false },
    // Skip the latency floors: a bare node:http server (loadtest/floor-server.ts) that answers
    // Tessera's response bytes without auth, Redis or features, and the same after one HMGET of the
    // entity's state, loaded beside Tessera in every single-lookup cell to show what the machine
    // allows at that moment.
    'no-floor': { type: 'boolean', default: false },
    baseline: { type: 'string' },
    scenarios: { type: 'string', default: 'single,batch' },
    python: { type: 'string', default: process.env.TESSERA_PYTHON ?? 'python3' },
    'redis-url': { type: 'string', default: process.env.TESSERA_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'feast-redis-db': { type: 'string', default: '1' },
    // The Redis URL Tessera's server (and the --baseline server) read from, when not --redis-url:
    // e.g. the same Redis over its Unix socket (unix:///.../redis.sock; scripts/stack prints it).
    'server-redis-url': { type: 'string' },
    'baseline-redis-url': { type: 'string' },
    // The last tenth of the events is saved in this many rounds after the rest, through the state
    // store as the ingestor saves (a round appends a delta record where the store's bounds allow):
    // busy users then hold delta records, as they do between two full writes in production. 0:
    // every state written in full once.
    'delta-rounds': { type: 'string', default: '4' },
    // Internal: run one autocannon load from a spec file and print its figures (the load process).
    'autocannon-child': { type: 'string' },
  },
});

const log = (msg: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const ms3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');

/** One load run as the child process takes it. */
interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  bodiesFile: string;
  connections: number;
  duration: number;
  /** Requests per second over all connections; absent = as fast as the server answers. */
  overallRate?: number;
  /**
   * Evenly spaced arrivals at overallRate (runPaced: an open-loop sender on up to `connections`
   * sockets) instead of autocannon's per-second bursts. Latency counts from the timer tick that
   * takes a request up, also while it waits for a free socket: a server that falls behind shows.
   */
  paced?: boolean;
  /** Run by loadtest/loadgen (Go) instead of a Node child: open loop at overallRate, else closed loop. */
  go?: boolean;
}

/** The server's own view of a run (services/server/metrics.ts ProbeSnapshot), with --server-probe. */
interface ServerProbe {
  request: { count: number; p50: number; p90: number; p99: number; p999: number; max: number };
  redis: { count: number; p50: number; p90: number; p99: number; p999: number; max: number };
  loopDelay: { p50: number; p99: number; max: number };
  gc: Record<'minor' | 'major' | 'other', { count: number; totalMs: number; maxMs: number }>;
  cpuMs: number;
  seconds: number;
}

interface LoadFigures {
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** CPU seconds the server's processes used during the run (set by the orchestrator). */
  serverCpu?: number;
  /** The machine's 1-minute load average right after the run: other people's load shows here. */
  load1?: number;
  /** CPU seconds the load generator itself used (its share of the 2 cores). */
  loaderCpu?: number;
  /** Go loader only: how late requests left their due time, p99 and max (ms): the sender's own delay. */
  sendLagP99?: number;
  sendLagMax?: number;
  /** Go loader only: due time to leaving on a connection, p99 and max (ms): waits for a free one. */
  queueP99?: number;
  queueMax?: number;
  /** With --server-probe, for Tessera's servers. */
  server?: ServerProbe;
}

if (args['autocannon-child']) {
  await runLoadChild(args['autocannon-child']);
  process.exit(0);
}

// The orchestrator's imports are loaded only here so the load process stays small.
const { Redis } = await import('ioredis');
const { loadDefinitionsFile } = await import('../shared/definitions/load.ts');
const { applyEvent, emptyState, planView, readFeatures } = await import('../shared/engine/index.ts');
const { RedisStateStore } = await import('../shared/state-store/redis-state-store.ts');
const { StateCache } = await import('../shared/state-store/state-cache.ts');
const { fraudEngineEvent, generateFraudEvents } = await import('../shared/synth/fraud-events.ts');
const { seededRng } = await import('../shared/synth/random.ts');
type EntityState = import('../shared/engine/index.ts').EntityState;
type FeatureValue = import('../shared/engine/index.ts').FeatureValue;

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const USERS = Number(args.users);
const BATCH = Number(args.batch);
const DURATION = Number(args.duration);
const VALID_MS = Number(args['valid-minutes']) * MIN;
if (VALID_MS >= 55 * MIN)
  throw new Error('--valid-minutes must stay under 55 (the 1h window must keep events)');

const venvBin = dirname(args.python);
const runId = `sbench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const feastProject = `sbench_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
const workDir = mkdtempSync(join(tmpdir(), 'tessera-server-bench-'));
const token = randomBytes(24).toString('hex');
const definitionsFile = 'definitions/fraud.yaml';
const plan = planView(loadDefinitionsFile(definitionsFile).views[0]!);
const featureRefs = plan.features.map((f) => `${plan.view.name}:${f.def.name}`);
const isCount = plan.features.map(
  (f) => f.def.aggregation === 'count' || f.def.aggregation === 'count_distinct',
);
const children: ChildProcess[] = [];
const redis = new Redis(args['redis-url']);
const feastRedis = new Redis(args['redis-url'], { db: Number(args['feast-redis-db']) });

// ---------------------------------------------------------------------------------------------
// Data: events, engine states in Redis (Tessera), the same values as of now (Feast).
// ---------------------------------------------------------------------------------------------

/** Seeded events whose read-time values stay constant from `t0` to `t0 + VALID_MS`. */
function stableEvents(t0: number) {
  const windows = [...new Set(plan.features.map((f) => f.windowMs))];
  // ~15% more ids than wanted: Zipf leaves the rarest ids without events; we keep USERS of them.
  const raw = generateFraudEvents({
    events: Math.round(USERS * Number(args['events-per-user'])),
    users: Math.ceil(USERS * 1.15),
    userSkew: Number(args.skew),
    seed: Number(args.seed),
    start: t0 - 29 * DAY, // inside max_age (30d) for everyone: no OUTSIDE_MAX_AGE to disagree on
    spanMs: 29 * DAY - 2 * MIN,
  });
  // A value changes when a read time t passes ts + W. Dropping events with ts in
  // [t0 - W - 1 min, t0 - W + VALID + 1 min] for every window W (and any ts >= t0 - 1 min, e.g. the
  // generator's edge events pushed past now) leaves every read in [t0, t0 + VALID] equal.
  const events = raw.filter(
    (e) =>
      e.event_timestamp < t0 - MIN &&
      !windows.some((w) => e.event_timestamp >= t0 - w - MIN && e.event_timestamp <= t0 - w + VALID_MS + MIN),
  );
  const ids = [...new Set(events.map((e) => e.user_id))].sort((a, b) => a - b).slice(0, USERS);
  const keep = new Set(ids);
  return { events: events.filter((e) => keep.has(e.user_id)), ids, generated: raw.length };
}

interface Loaded {
  t0: number;
  ids: number[];
  events: number;
  expected: Map<number, FeatureValue[]>;
  valuesCsv: string;
  stateBytes: { p50: number; p99: number; max: number; total: number };
  /** Users whose key holds delta records, and the records' share of the bytes read. */
  deltas: { users: number; bytes: number };
  saveSeconds: number;
}

async function loadData(): Promise<Loaded> {
  const t0 = Date.now();
  log(`generating events for ${fmt(USERS)} users (seed ${args.seed}) ...`);
  const { events, ids } = stableEvents(t0);
  // Apply in arrival order, per user, exactly as the ingestor would (exact mode, no `now`): nine
  // tenths of the events, saved in full, then the rest in --delta-rounds rounds through the store.
  const rounds = Number(args['delta-rounds']);
  const cut = rounds > 0 ? Math.floor(events.length * 0.9) : events.length;
  const states = new Map<number, EntityState>();
  for (const e of events.slice(0, cut)) {
    let state = states.get(e.user_id);
    if (!state) {
      state = emptyState(plan);
      states.set(e.user_id, state);
    }
    applyEvent(plan, state, fraudEngineEvent(plan, e));
  }
  log(`${fmt(cut)} events applied; saving ${fmt(states.size)} states under ${runId}: ...`);
  // A cache as the ingestor's: each round's loads come back as the objects saved (and `stored`).
  const store = new RedisStateStore(redis, plan, runId, new StateCache(4 * events.length));
  const started = performance.now();
  const save = async (requests: Parameters<typeof store.saveMany>[0]) => {
    for (let i = 0; i < requests.length; i += 2000) {
      const { conflicts } = await store.saveMany(requests.slice(i, i + 2000));
      if (conflicts.length > 0) throw new Error(`unexpected CAS conflicts: ${conflicts.slice(0, 3)}`);
    }
  };
  await save([...states.entries()].map(([id, state]) => ({ entity: String(id), version: 0, state })));
  for (let round = 0; round < rounds; round++) {
    const from = cut + Math.floor(((events.length - cut) * round) / rounds);
    const to = cut + Math.floor(((events.length - cut) * (round + 1)) / rounds);
    const byUser = new Map<string, typeof events>();
    for (const e of events.slice(from, to)) {
      const list = byUser.get(String(e.user_id));
      if (list) list.push(e);
      else byUser.set(String(e.user_id), [e]);
    }
    const loaded = await store.loadMany([...byUser.keys()]);
    const requests = [...byUser].map(([entity, list]) => {
      const current = loaded.get(entity)!;
      const applied = list.map((e) => fraudEngineEvent(plan, e));
      for (const e of applied) applyEvent(plan, current.state, e);
      states.set(Number(entity), current.state);
      return { entity, version: current.version, stored: current.stored, state: current.state, applied };
    });
    await save(requests);
  }
  const saveSeconds = (performance.now() - started) / 1000;
  // What Redis holds per entity (the server reads all of it on every lookup): state and records.
  const sizes: number[] = [];
  const deltas = { users: 0, bytes: 0 };
  const probe = redis.pipeline();
  for (const id of ids) probe.hstrlen(store.key(String(id)), 's').hstrlen(store.key(String(id)), 'd');
  const lengths = ((await probe.exec()) ?? []).map(([, n]) => Number(n));
  for (let i = 0; i < lengths.length; i += 2) {
    sizes.push(lengths[i]! + lengths[i + 1]!);
    if (lengths[i + 1]! > 0) deltas.users++;
    deltas.bytes += lengths[i + 1]!;
  }
  sizes.sort((a, b) => a - b);
  log(
    `${fmt(deltas.users)} users hold delta records (${((100 * deltas.bytes) / sizes.reduce((t, n) => t + n, 0)).toFixed(1)} % of the bytes)`,
  );
  const expected = new Map<number, FeatureValue[]>();
  const lines = [`user_id,event_timestamp,${plan.features.map((f) => f.def.name).join(',')}`];
  for (const [id, state] of states) {
    const values = readFeatures(plan, state, t0);
    expected.set(id, values);
    const newest = state.events[state.events.length - 1]!.ts;
    lines.push(`${id},${newest},${values.map((v) => (v === null ? '' : String(v))).join(',')}`);
  }
  return {
    t0,
    ids,
    events: events.length,
    expected,
    valuesCsv: `${lines.join('\n')}\n`,
    stateBytes: {
      p50: quantile(sizes, 0.5),
      p99: quantile(sizes, 0.99),
      max: sizes[sizes.length - 1] ?? 0,
      total: sizes.reduce((s, n) => s + n, 0),
    },
    deltas,
    saveSeconds,
  };
}

/** Nearest rank: the smallest value with at least q of the samples at or below it. */
function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

// ---------------------------------------------------------------------------------------------
// Servers.
// ---------------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
  logFile: string;
}

/** Starts a process in its own group (so its workers stop with it), output to a file, not a pipe. */
function startProcess(name: string, cmd: string, argv: string[], env: Record<string, string>, cwd?: string) {
  const logFile = join(
    name !== 'autocannon' && name !== 'loadgen' && args['server-logs'] ? args['server-logs'] : workDir,
    `${name}.log`,
  );
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, fd],
    detached: true,
    ...(cwd ? { cwd } : {}),
  });
  closeSync(fd);
  children.push(child);
  return { child, logFile };
}

async function waitReady(server: Server, path: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null)
      throw new Error(`${server.name} exited (${server.child.exitCode}): ${tail(server.logFile)}`);
    try {
      const res = await fetch(`${server.url}${path}`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`${server.name} not ready after ${timeoutMs} ms: ${tail(server.logFile)}`);
}

async function stopServer(server: Server): Promise<void> {
  const child = server.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * CPU seconds (user + system) used so far by the live processes of a process group (a server and
 * its workers). On a shared machine wall-clock rates move with other people's load; CPU per request
 * moves much less, so it is the steadier basis for a ratio.
 */
function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / 100; // USER_HZ, 100 on Linux
}

/** One line of a server's probe: its own latency, Redis reads, event-loop lateness, GC pauses. */
function probeText(p: ServerProbe): string {
  const gc = (g: ServerProbe['gc']['minor']) => `${g.count} (max ${ms(g.maxMs)}, sum ${fmt(g.totalMs)})`;
  return (
    `server p50 ${ms(p.request.p50)} p99 ${ms(p.request.p99)} p99.9 ${ms(p.request.p999)} max ${ms(p.request.max)}; ` +
    `redis p50 ${ms(p.redis.p50)} p99 ${ms(p.redis.p99)} max ${ms(p.redis.max)}; ` +
    `loop delay p99 ${ms(p.loopDelay.p99)} max ${ms(p.loopDelay.max)}; ` +
    `gc minor ${gc(p.gc.minor)} major ${gc(p.gc.major)}`
  );
}

const cpuPerRequest = (f: LoadFigures) => ((1000 * (f.serverCpu ?? Number.NaN)) / f.requests).toFixed(3);

const tail = (file: string) => readFileSync(file, 'utf8').slice(-2000);
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

/** This checkout's server, or with `tree` the server of another checkout (--baseline). */
async function startTessera(tree?: string): Promise<Server> {
  const port = await freePort();
  const name = tree === undefined ? 'tessera' : 'tessera-base';
  const extra = args[tree === undefined ? 'server-node-args' : 'baseline-node-args'];
  const nodeArgs = ['--import', 'tsx', ...extra.split(' ').filter(Boolean)];
  // One directory per server: with tsx, its loader thread writes a profile of its own beside main's.
  if (args['server-cpu-prof'])
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${join(args['server-cpu-prof'], name)}`);
  const { child, logFile } = startProcess(
    name,
    process.execPath,
    [...nodeArgs, 'services/server/main.ts'],
    {
      TESSERA_HTTP_PORT: String(port),
      TESSERA_REDIS_URL:
        args[tree === undefined ? 'server-redis-url' : 'baseline-redis-url'] ?? args['redis-url'],
      TESSERA_REDIS_KEY_PREFIX: runId,
      TESSERA_DEFINITIONS: definitionsFile,
      TESSERA_AUTH_TOKEN: token,
      ...(args['server-probe'] ? { TESSERA_SERVER_LATENCY_PROBE: 'true' } : {}),
    },
    tree,
  );
  const server = { name, url: `http://127.0.0.1:${port}`, child, logFile };
  await waitReady(server, '/ready');
  return server;
}

function feastRedisConnection(): string {
  const u = new URL(args['redis-url']);
  return `${u.hostname}:${u.port || 6379},db=${args['feast-redis-db']}`;
}

const cacheRoot = process.env.TESSERA_CACHE ?? join(homedir(), '.cache', 'tessera');
// Feast's Redis client (feast[redis]) lives beside the shared venv, on PYTHONPATH for Feast only.
const feastDeps = join(cacheRoot, 'feast-server-bench-deps');
const feastEnv = { PYTHONPATH: feastDeps };

function ensureFeastDeps(): void {
  const probe = spawnSync(args.python, ['-c', 'import redis, hiredis'], {
    env: { ...process.env, ...feastEnv },
  });
  if (probe.status === 0) return;
  log(`installing feast[redis]'s client into ${feastDeps} (pip --target) ...`);
  const requirements = fileURLToPath(new URL('./baselines/feast_server/requirements.txt', import.meta.url));
  const pip = spawnSync(
    join(venvBin, 'pip'),
    [
      'install',
      '--disable-pip-version-check',
      '--progress-bar',
      'off',
      '--target',
      feastDeps,
      '-r',
      requirements,
    ],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (pip.status !== 0) throw new Error(`pip install of ${requirements} failed: ${pip.stderr.slice(-2000)}`);
}

function runFeastCli(repo: string, argv: string[]): void {
  const run = spawnSync(join(venvBin, 'feast'), ['-c', repo, ...argv], {
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, ...feastEnv },
  });
  if (run.status !== 0) throw new Error(`feast ${argv.join(' ')} failed: ${run.stderr.slice(-2000)}`);
}

function runPython(argv: string[]): Record<string, unknown> {
  const run = spawnSync(args.python, argv, {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    timeout: 900_000,
    env: { ...process.env, ...feastEnv },
  });
  if (run.status !== 0)
    throw new Error(
      `${argv[0]} failed: ${run.stderr?.slice(-3000) || run.error?.message}. Set TESSERA_PYTHON (scripts/stack env).`,
    );
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const feastRepo = join(workDir, 'feast_repo');
const feastScript = fileURLToPath(new URL('./baselines/feast_server/feast_repo.py', import.meta.url));

async function loadFeast(valuesCsv: string): Promise<{ applySeconds: number; writeSeconds: number }> {
  ensureFeastDeps();
  const csv = join(workDir, 'values.csv');
  writeFileSync(csv, valuesCsv);
  runPython([
    feastScript,
    'prepare',
    '--repo',
    feastRepo,
    '--project',
    feastProject,
    '--redis',
    feastRedisConnection(),
    '--values',
    csv,
  ]);
  const started = performance.now();
  runFeastCli(feastRepo, ['apply']);
  const applySeconds = (performance.now() - started) / 1000;
  log(`feast apply done; writing ${fmt(USERS)} rows with write_to_online_store ...`);
  const written = runPython([feastScript, 'write', '--repo', feastRepo]);
  return { applySeconds, writeSeconds: Number(written.seconds) };
}

/** `feast serve` flags: no access log and no worker recycling, so Feast is not slowed by either. */
function feastServeArgs(port: number, workers: number): string[] {
  return [
    '-c',
    feastRepo,
    'serve',
    '-p',
    String(port),
    '--workers',
    String(workers),
    '--no-access-log',
    '--max-requests',
    '0',
    '--registry_ttl_sec',
    '3600',
  ];
}

/**
 * A latency floor (loadtest/floor-server.ts), answering `response` to every lookup; with `redis`,
 * after reading the looked-up entity's state the way Tessera's server does (one HMGET).
 */
async function startFloor(
  name: string,
  response: string,
  redis?: { url: string; view: string },
): Promise<Server> {
  const port = await freePort();
  const responseFile = join(workDir, 'floor-response.json');
  writeFileSync(responseFile, response);
  const script = fileURLToPath(new URL('./floor-server.ts', import.meta.url));
  const argv = ['--import', 'tsx', script, String(port), responseFile];
  if (redis) argv.push(redis.url, runId, redis.view);
  const { child, logFile } = startProcess(name, process.execPath, argv, {});
  const server = { name, url: `http://127.0.0.1:${port}`, child, logFile };
  await waitReady(server, '/health');
  return server;
}
const FLOOR = 'node-floor';
const REDIS_FLOOR = 'node-floor-redis';

async function startFeast(workers: number): Promise<Server> {
  const port = await freePort();
  const argv = feastServeArgs(port, workers);
  const { child, logFile } = startProcess(`feast-w${workers}`, join(venvBin, 'feast'), argv, feastEnv);
  const server = { name: `feast-w${workers}`, url: `http://127.0.0.1:${port}`, child, logFile };
  await waitReady(server, '/health');
  return server;
}

// ---------------------------------------------------------------------------------------------
// Values: the same sample of users from both servers and from the engine.
// ---------------------------------------------------------------------------------------------

interface FeastShapedResponse {
  metadata: { feature_names: string[] };
  results: { values: unknown[]; statuses: string[] }[];
}

async function lookupText(server: Server, body: string): Promise<string> {
  const res = await fetch(`${server.url}/get-online-features`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${server.name} answered ${res.status}: ${text.slice(0, 500)}`);
  return text;
}

async function lookup(server: Server, ids: number[]): Promise<FeastShapedResponse> {
  const body = JSON.stringify({ features: featureRefs, entities: { user_id: ids } });
  return JSON.parse(await lookupText(server, body)) as FeastShapedResponse;
}

/**
 * Same bodies to two Tessera servers at a pinned as_of, in the request shapes clients use: all
 * bytes must be equal (a faster serializer must not change a single character).
 */
async function compareResponses(a: Server, b: Server, ids: number[], t0: number): Promise<string[]> {
  const refs = featureRefs;
  const unknown = 987_654_321_012; // no state: NOT_FOUND rows
  const bodies = [
    { features: refs, entities: { user_id: ids.slice(0, 1) } },
    { features: refs, entities: { user_id: [...ids, unknown] }, as_of: t0 },
    { features: [...refs].reverse(), entities: { user_id: ids }, full_feature_names: true, as_of: t0 },
    { features: refs.slice(2, 4), entities: { user_id: ids.map(String) }, as_of: new Date(t0).toISOString() },
    { feature_service: 'fraud_model_v1', entities: { user_id: ids.slice(0, 7) }, as_of: t0 + 123 },
  ];
  const differ: string[] = [];
  for (const body of bodies) {
    const text = JSON.stringify(body);
    const [x, y] = await Promise.all([lookupText(a, text), lookupText(b, text)]);
    if (x !== y) differ.push(`${text.slice(0, 120)}: ${x.slice(0, 200)} vs ${y.slice(0, 200)}`);
  }
  return differ;
}

interface Comparison {
  values: number;
  /** null without Feast (--no-feast). */
  tesseraVsFeast: number | null;
  /** Per server (Tessera, the baseline, Feast): values differing from the engine's. */
  vsEngine: Record<string, number>;
  notPresent: number;
  /** Largest relative difference of doubles, per server against the engine. */
  maxRelative: Record<string, number>;
  firstDiffs: string[];
}

function same(a: unknown, b: unknown, count: boolean): { ok: boolean; rel: number } {
  if (a === null || b === null || a === undefined || b === undefined)
    return { ok: (a ?? null) === (b ?? null), rel: 0 };
  const x = Number(a);
  const y = Number(b);
  if (count) return { ok: x === y, rel: x === y ? 0 : Number.POSITIVE_INFINITY };
  const rel = Math.abs(x - y) / Math.max(Math.abs(x), Math.abs(y), Number.MIN_VALUE);
  return { ok: x === y || rel <= 1e-9, rel: x === y ? 0 : rel };
}

/** Every server's values for the sample against the engine's, and Tessera's against Feast's. */
async function compareValues(
  tessera: Server,
  others: (Server | null)[],
  feast: Server | null,
  sample: number[],
  loaded: Loaded,
): Promise<Comparison> {
  const servers = [tessera, ...others, feast].filter((s): s is Server => s !== null);
  const out: Comparison = {
    values: 0,
    tesseraVsFeast: feast ? 0 : null,
    vsEngine: Object.fromEntries(servers.map((s) => [s.name, 0])),
    notPresent: 0,
    maxRelative: Object.fromEntries(servers.map((s) => [s.name, 0])),
    firstDiffs: [],
  };
  for (let lo = 0; lo < sample.length; lo += BATCH) {
    const ids = sample.slice(lo, lo + BATCH);
    const responses = await Promise.all(servers.map((s) => lookup(s, ids)));
    plan.features.forEach((feature, k) => {
      const name = feature.def.name;
      const columns = responses.map((r) => r.results[r.metadata.feature_names.indexOf(name)]);
      if (columns.some((c) => !c)) throw new Error(`feature ${name} missing from a response`);
      ids.forEach((id, row) => {
        const engine = loaded.expected.get(id)![k] ?? null;
        out.values++;
        if (columns.some((c) => c!.statuses[row] !== 'PRESENT')) out.notPresent++;
        const got = columns.map((c) => c!.values[row] ?? null);
        let bad = false;
        servers.forEach((s, i) => {
          const d = same(got[i], engine, isCount[k]!);
          if (Number.isFinite(d.rel)) out.maxRelative[s.name] = Math.max(out.maxRelative[s.name]!, d.rel);
          if (!d.ok) {
            out.vsEngine[s.name]!++;
            bad = true;
          }
        });
        if (feast && !same(got[0], got[got.length - 1], isCount[k]!).ok) {
          out.tesseraVsFeast!++;
          bad = true;
        }
        if (bad && out.firstDiffs.length < 5)
          out.firstDiffs.push(
            `user ${id} ${name}: ${servers.map((s, i) => `${s.name} ${got[i]}`).join(', ')}, engine ${engine}`,
          );
      });
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Load: one autocannon process per run.
// ---------------------------------------------------------------------------------------------

const loadgenSource = fileURLToPath(new URL('./loadgen/', import.meta.url));
let loadgenBinary: string | undefined;

/**
 * The Go load generator, built once per version of its source into the cache (named by a hash of
 * the source, so an edit rebuilds it and a stale binary is never used). Stdlib only: no network.
 */
function ensureLoadgen(): string {
  if (loadgenBinary) return loadgenBinary;
  const files = readdirSync(loadgenSource)
    .filter((f) => f.endsWith('.go') || f === 'go.mod')
    .sort();
  const hash = createHash('sha256');
  for (const f of files) hash.update(f).update(readFileSync(join(loadgenSource, f)));
  const dir = join(cacheRoot, 'loadgen');
  const name = `loadgen-${hash.digest('hex').slice(0, 16)}`;
  const binary = join(dir, name);
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true });
    const go = process.env.TESSERA_GO ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go');
    log(`building loadtest/loadgen with ${go} into ${binary} ...`);
    // Into a temporary name first: a concurrent run never starts a half-written binary.
    const partial = `${binary}.${process.pid}.tmp`;
    const build = spawnSync(go, ['build', '-trimpath', '-o', partial, '.'], {
      cwd: loadgenSource,
      encoding: 'utf8',
      timeout: 300_000,
      // The local toolchain, never a download (go.mod's go line must not trigger one).
      env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    });
    if (build.status !== 0)
      throw new Error(
        `go build of loadtest/loadgen failed (${build.error?.message ?? build.status}): ${build.stderr}. ` +
          'Set TESSERA_GO to a Go >= 1.22 binary, or drop "go" from --loader.',
      );
    spawnSync('mv', ['-f', partial, binary]);
    for (const old of readdirSync(dir))
      if (old.startsWith('loadgen-') && old !== name) rmSync(join(dir, old), { force: true });
  }
  loadgenBinary = binary;
  return binary;
}

/** Request bodies, identical for both servers: uniform random loaded users. */
function writeBodies(ids: number[], perRequest: number, count: number, seed: number): string {
  const rng = seededRng(seed);
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    const users = new Set<number>();
    while (users.size < perRequest) users.add(ids[rng.int(ids.length)]!);
    bodies.push(JSON.stringify({ features: featureRefs, entities: { user_id: [...users] } }));
  }
  const file = join(workDir, `bodies-${perRequest}.json`);
  writeFileSync(file, JSON.stringify(bodies));
  return file;
}

/** The autocannon command line equivalent to a spec (bodies vary per request in our runs). */
function cliLine(spec: LoadSpec): string {
  if (spec.go)
    return (
      `~/.cache/tessera/loadgen/loadgen-<hash> -url ${spec.url}/get-online-features -bodies ${spec.bodiesFile} ` +
      `-rate ${spec.overallRate ?? 0} -duration ${spec.duration} -conns ${spec.connections} ` +
      `-header 'authorization: Bearer <token>'  (built from loadtest/loadgen)`
    );
  if (spec.paced)
    return `(--paced: this file's own open-loop sender, ${spec.overallRate}/s evenly spaced over up to ${spec.connections} keep-alive sockets, ${spec.duration} s, bodies from ${spec.bodiesFile})`;
  const rate = spec.overallRate ? ` -R ${spec.overallRate}` : '';
  return (
    `npx autocannon -m POST -H 'content-type: application/json' -H 'authorization: Bearer <token>' ` +
    `-c ${spec.connections}${rate} -d ${spec.duration} -b '<a body of ${spec.bodiesFile}>' ${spec.url}/get-online-features`
  );
}

const commandLines = new Set<string>();

async function load(spec: LoadSpec): Promise<LoadFigures> {
  const specFile = join(workDir, `spec-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(specFile, JSON.stringify(spec));
  commandLines.add(
    cliLine({ ...spec, url: 'http://127.0.0.1:<port>', bodiesFile: basename(spec.bodiesFile) }),
  );
  const self = fileURLToPath(import.meta.url);
  const { child, logFile } = spec.go
    ? startProcess(
        'loadgen',
        ensureLoadgen(),
        [
          '-url',
          `${spec.url}/get-online-features`,
          '-bodies',
          spec.bodiesFile,
          '-rate',
          String(spec.overallRate ?? 0),
          '-duration',
          String(spec.duration),
          '-conns',
          String(spec.connections),
          ...Object.entries(spec.headers).flatMap(([k, v]) => ['-header', `${k}: ${v}`]),
        ],
        {},
      )
    : startProcess(
        'autocannon',
        process.execPath,
        ['--import', 'tsx', self, '--autocannon-child', specFile],
        {},
      );
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  children.splice(children.indexOf(child), 1);
  const text = readFileSync(logFile, 'utf8');
  rmSync(logFile);
  const line = text.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{'))
    throw new Error(`load process failed (${code}): ${text.slice(-2000)}`);
  // JSON has no NaN: the Go loader writes -1 for a quantile of no samples.
  return JSON.parse(line, (_key, value) => (value === -1 ? Number.NaN : value)) as LoadFigures;
}

async function runLoadChild(specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as LoadSpec;
  const bodies = JSON.parse(readFileSync(spec.bodiesFile, 'utf8')) as string[];
  // The load process's own CPU: on 2 shared cores, what the sender takes the server cannot use.
  const loaderCpu = () => {
    const used = process.cpuUsage();
    return (used.user + used.system) / 1e6;
  };
  if (spec.paced) {
    console.log(JSON.stringify({ ...(await runPaced(spec, bodies)), loaderCpu: loaderCpu() }));
    return;
  }
  interface Instance {
    on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  }
  interface Result {
    requests: { total: number };
    duration: number;
    non2xx: number;
    errors: number;
    timeouts: number;
  }
  const autocannon = createRequire(import.meta.url)('autocannon') as (
    opts: Record<string, unknown>,
    cb: (err: Error | null, result: Result) => void,
  ) => Instance;
  let next = 0;
  // autocannon's own histogram keeps whole milliseconds; sub-millisecond p50/p99 need the raw times.
  const latencies: number[] = [];
  const result = await new Promise<Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${spec.url}/get-online-features`,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...spec.headers },
        connections: spec.connections,
        duration: spec.duration,
        ...(spec.overallRate ? { overallRate: spec.overallRate } : {}),
        requests: [
          {
            setupRequest: (req: Record<string, unknown>) => {
              req.body = bodies[next++ % bodies.length];
              return req;
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', (_client, status, _bytes, took) => {
      if (status >= 200 && status < 300) latencies.push(took);
    });
  });
  const sorted = Float64Array.from(latencies).sort();
  const figures: LoadFigures = {
    requests: result.requests.total,
    seconds: result.duration,
    rps: sorted.length / result.duration,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    p999: quantile(sorted, 0.999),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    loaderCpu: loaderCpu(),
  };
  console.log(JSON.stringify(figures));
}

/**
 * Open loop: request i is due at start + i / rate whatever came back, and leaves on the first idle
 * keep-alive socket (or waits for one). Timers tick at millisecond resolution, so requests due
 * within one millisecond leave together; latency counts from that tick (not from the due time, so
 * the sender's own timer lateness is not charged to the server). Raw sockets and pre-built request
 * bytes, because node:http's client could not send 5,000 requests/s here without falling behind.
 */
async function runPaced(spec: LoadSpec, bodies: string[]): Promise<LoadFigures> {
  const { connect } = await import('node:net');
  const target = new URL(spec.url);
  const headerLines = Object.entries({ 'content-type': 'application/json', ...spec.headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const requests = bodies.map((body) =>
    Buffer.from(
      `POST /get-online-features HTTP/1.1\r\nhost: ${target.host}\r\n${headerLines}` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    ),
  );
  const rate = spec.overallRate!;
  const total = Math.round(rate * spec.duration);
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let finished = 0;
  let sent = 0;
  const waiting: number[] = []; // take-up times of due requests without a free socket
  interface Conn {
    write(takenUp: number): void;
    idle: boolean;
  }
  const idle: Conn[] = [];
  let done: () => void = () => {};
  const settle = () => {
    if (++finished === total) done();
  };
  const open = (): Promise<Conn> =>
    new Promise((resolveConn, rejectConn) => {
      const socket = connect({ host: target.hostname, port: Number(target.port), noDelay: true });
      let takenUp = 0;
      let buffered: Buffer = Buffer.alloc(0);
      let bodyLeft = -1;
      let status = 0;
      const conn: Conn = {
        idle: true,
        write(at) {
          conn.idle = false;
          takenUp = at;
          socket.write(requests[sent % requests.length]!);
        },
      };
      const release = () => {
        const next = waiting.shift();
        if (next !== undefined) {
          conn.write(next);
          sent++;
        } else {
          conn.idle = true;
          idle.push(conn);
        }
      };
      socket.on('data', (chunk: Buffer) => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        for (;;) {
          if (bodyLeft < 0) {
            const end = buffered.indexOf('\r\n\r\n');
            if (end < 0) return;
            const head = buffered.subarray(0, end).toString('latin1');
            status = Number(head.slice(9, 12));
            const length = /\r\ncontent-length: *(\d+)/i.exec(head);
            if (!length) throw new Error(`paced sender: response without content-length: ${head}`);
            bodyLeft = Number(length[1]);
            buffered = buffered.subarray(end + 4);
          }
          if (buffered.length < bodyLeft) return;
          buffered = buffered.subarray(bodyLeft);
          bodyLeft = -1;
          if (status >= 200 && status < 300) latencies.push(performance.now() - takenUp);
          else non2xx++;
          settle();
          release();
        }
      });
      socket.once('connect', () => resolveConn(conn));
      socket.once('error', (error) => {
        errors++;
        if (!conn.idle) settle(); // its request is lost; the socket is not used again
        rejectConn(error);
      });
    });
  for (let i = 0; i < spec.connections; i++) idle.push(await open());
  const start = performance.now() + 10;
  await new Promise<void>((resolve) => {
    done = resolve;
    // A server that stops answering must not hang the benchmark: what is unanswered then is lost.
    setTimeout(resolve, (spec.duration + 30) * 1000).unref();
    const tick = () => {
      const now = performance.now();
      let due = waiting.length + sent;
      while (due < total && start + (due * 1000) / rate <= now) {
        const conn = idle.pop();
        if (conn) {
          conn.write(now);
          sent++;
        } else waiting.push(now);
        due++;
      }
      if (due < total) setTimeout(tick, Math.max(0, start + (due * 1000) / rate - performance.now()));
    };
    setTimeout(tick, 10);
  });
  const seconds = (performance.now() - start) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: total,
    seconds,
    rps: sorted.length / seconds,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    p999: quantile(sorted, 0.999),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    non2xx,
    errors,
    timeouts: total - finished,
  };
}

// ---------------------------------------------------------------------------------------------
// Cleanup.
// ---------------------------------------------------------------------------------------------

async function deleteByPattern(client: InstanceType<typeof Redis>, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [nextCursor, keys] = await client.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', 2000);
    cursor = String(nextCursor);
    if (keys.length > 0) deleted += await client.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const child of [...children])
    await stopServer({ name: 'child', url: '', child, logFile: '' }).catch(() => undefined);
  try {
    if (!args['no-feast']) runFeastCli(feastRepo, ['teardown']);
  } catch (error) {
    log(`feast teardown: ${String(error).slice(0, 300)} (deleting the project's keys directly)`);
  }
  // Feast's keys end with the project name; ours start with the run's prefix. Nothing else is touched.
  const feastLeft = await deleteByPattern(feastRedis, `*${feastProject}`).catch(() => -1);
  const oursLeft = await deleteByPattern(redis, `${runId}:*`).catch(() => -1);
  log(`cleanup: ${oursLeft} Tessera keys and ${feastLeft} leftover Feast keys deleted`);
  redis.disconnect();
  feastRedis.disconnect();
  rmSync(workDir, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

/** The load generator of a cell: autocannon's per-second bursts, the Node paced sender, or Go's. */
type Arrival = 'bursts' | 'paced' | 'go';

const LOADER_OF: Record<string, Arrival> = {
  autocannon: 'bursts',
  bursts: 'bursts',
  paced: 'paced',
  go: 'go',
};
/** How each loader is named in the figures. */
const LOADER_LABEL: Record<Arrival, string> = { bursts: 'autocannon', paced: 'node-paced', go: 'go' };
const loaders = [
  ...new Set([
    ...args.loader.split(',').map((name) => {
      const loader = LOADER_OF[name.trim()];
      if (!loader) throw new Error(`--loader ${name}: use autocannon, paced or go (comma-separated)`);
      return loader;
    }),
    ...(args.paced ? (['paced'] as const) : []),
  ]),
];
/** Closed-loop runs (saturation, --sweep) need a loader without a rate: autocannon, else Go. */
const satLoader: Arrival = loaders.includes('bursts') || !loaders.includes('go') ? 'bursts' : 'go';

interface Cell {
  server: string;
  scenario: 'single' | 'batch';
  mode: 'saturation' | number;
  /** Which loader (--loader); saturation cells use satLoader. */
  arrival: Arrival;
  figures: LoadFigures[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

try {
  // Built before anything is measured: a first build compiles the standard library for a minute.
  if (loaders.includes('go') || satLoader === 'go') ensureLoadgen();
  const loaded = await loadData();
  log(
    `Tessera: ${fmt(loaded.ids.length)} users, ${fmt(loaded.events)} events, saved in ${loaded.saveSeconds.toFixed(1)} s; ` +
      `state bytes p50 ${fmt(loaded.stateBytes.p50)}, p99 ${fmt(loaded.stateBytes.p99)}, max ${fmt(loaded.stateBytes.max)}`,
  );
  const withFeast = !args['no-feast'];
  let feastLoad = { applySeconds: Number.NaN, writeSeconds: Number.NaN };
  if (withFeast) {
    log(`Feast: project ${feastProject}, Redis ${feastRedisConnection()} ...`);
    feastLoad = await loadFeast(loaded.valuesCsv);
    log(
      `feast apply ${feastLoad.applySeconds.toFixed(1)} s, write_to_online_store ${feastLoad.writeSeconds.toFixed(1)} s`,
    );
  }

  const workersList = withFeast ? args['feast-workers'].split(',').map(Number) : [];
  const tessera = await startTessera();
  const base = args.baseline ? await startTessera(args.baseline) : null;
  // Ours first in every cell, then the baseline: alternating runs see the same machine.
  const tesseras = base ? [tessera, base] : [tessera];
  let feast = withFeast ? await startFeast(workersList[0]!) : null;
  const rng = seededRng(Number(args.seed) + 7);
  const sample = Array.from({ length: Number(args.sample) }, () => loaded.ids[rng.int(loaded.ids.length)]!);
  const before = await compareValues(tessera, [base], feast, sample, loaded);
  log(
    `values: ${JSON.stringify(before.vsEngine)} of ${before.values} differ from the engine; ` +
      `Tessera vs Feast ${before.tesseraVsFeast ?? '-'}`,
  );
  const responseDiffs = base ? await compareResponses(tessera, base, sample.slice(0, 50), loaded.t0) : [];
  if (base) log(`responses vs the baseline: ${responseDiffs.length} of 5 request shapes differ`);
  // The plain floor and the Redis floor (loadtest/floor-server.ts), single lookups only.
  const floors: Server[] = [];
  if (!args['no-floor']) {
    const answer = await lookupText(
      tessera,
      JSON.stringify({ features: featureRefs, entities: { user_id: [sample[0]!] } }),
    );
    floors.push(await startFloor(FLOOR, answer));
    floors.push(await startFloor(REDIS_FLOOR, answer, { url: args['redis-url'], view: plan.view.name }));
  }

  const singleBodies = writeBodies(loaded.ids, 1, 50_000, Number(args.seed) + 1);
  const batchBodies = writeBodies(loaded.ids, BATCH, 2_000, Number(args.seed) + 2);
  const headers = { authorization: `Bearer ${token}` };
  const bodiesOf = { single: singleBodies, batch: batchBodies };
  const cells: Cell[] = [];
  const findCell = (server: string, scenario: Cell['scenario'], mode: Cell['mode'], arrival: Arrival) =>
    cells.find(
      (c) => c.server === server && c.scenario === scenario && c.mode === mode && c.arrival === arrival,
    );
  const record = (
    server: string,
    scenario: Cell['scenario'],
    mode: Cell['mode'],
    arrival: Arrival,
    f: LoadFigures,
  ) => {
    let cell = findCell(server, scenario, mode, arrival);
    if (!cell) {
      cell = { server, scenario, mode, arrival, figures: [] };
      cells.push(cell);
    }
    cell.figures.push(f);
    const label =
      mode === 'saturation'
        ? `saturation, ${args.connections} conns, ${LOADER_LABEL[arrival]}`
        : `${fmt(mode)}/s ${LOADER_LABEL[arrival]}`;
    const lag =
      f.sendLagP99 === undefined
        ? ''
        : `  send lag p99 ${ms(f.sendLagP99)} max ${ms(f.sendLagMax ?? Number.NaN)}, ` +
          `conn wait p99 ${ms(f.queueP99 ?? Number.NaN)} max ${ms(f.queueMax ?? Number.NaN)}`;
    log(
      `  ${server.padEnd(12)} ${scenario.padEnd(6)} ${label.padEnd(34)} ${fmt(f.rps).padStart(7)} req/s  ` +
        `p50 ${ms(f.p50)} p99 ${ms(f.p99)} p99.9 ${ms(f.p999)} max ${ms(f.max)} ms  cpu/req server ${cpuPerRequest(f)} ` +
        `loader ${((1000 * (f.loaderCpu ?? Number.NaN)) / f.requests).toFixed(3)} ms${lag}  non2xx ${f.non2xx} errors ${f.errors}  load ${f.load1?.toFixed(1)}`,
    );
    if (f.server) log(`  ${''.padEnd(12)} ${probeText(f.server)}`);
  };
  const run = async (
    server: Server,
    scenario: Cell['scenario'],
    mode: Cell['mode'],
    arrival: Arrival = 'bursts',
  ) => {
    const spec: LoadSpec = {
      url: server.url,
      headers,
      bodiesFile: bodiesOf[scenario],
      connections:
        mode === 'saturation'
          ? Number(args.connections)
          : Number(args[arrival === 'go' ? 'go-connections' : 'rate-connections']),
      duration: DURATION,
      ...(mode === 'saturation' ? {} : { overallRate: mode }),
      ...(arrival === 'paced' ? { paced: true } : {}),
      ...(arrival === 'go' ? { go: true } : {}),
    };
    record(server.name, scenario, mode, arrival, await measured(server, spec));
  };
  // The server's probe (--server-probe) is reset right before a run and read right after it.
  const probe = async (server: Server, reset: boolean): Promise<ServerProbe | undefined> => {
    if (!args['server-probe'] || !server.name.startsWith('tessera')) return undefined;
    try {
      const res = await fetch(`${server.url}/debug/latency${reset ? '?reset=1' : ''}`, { headers });
      return res.ok ? ((await res.json()) as ServerProbe) : undefined;
    } catch {
      return undefined; // a server without the probe (an older baseline)
    }
  };
  const measured = async (server: Server, spec: LoadSpec): Promise<LoadFigures> => {
    await probe(server, true);
    const cpu0 = groupCpuSeconds(server.child.pid!);
    const f = await load(spec);
    const serverCpu = groupCpuSeconds(server.child.pid!) - cpu0;
    const seen = await probe(server, false);
    return { ...f, serverCpu, load1: loadavg()[0], ...(seen ? { server: seen } : {}) };
  };
  const satOf = (server: string, scenario: Cell['scenario']) =>
    median(findCell(server, scenario, 'saturation', satLoader)?.figures.map((f) => f.rps) ?? []);

  // Warm-up: JIT for Tessera, imports and connections for Feast; not recorded.
  log('warm-up ...');
  for (const server of [...tesseras, ...floors, ...(feast ? [feast] : [])])
    await load({
      url: server.url,
      headers,
      bodiesFile: singleBodies,
      connections: 8,
      duration: Number(args.warmup),
    });

  const rounds = Number(args.rounds);
  const scenarios = args.scenarios
    .split(',')
    .filter((x): x is Cell['scenario'] => x === 'single' || x === 'batch');
  const feastRates: Record<Cell['scenario'], number> = { single: 0, batch: 0 };
  for (let round = 0; round < rounds; round++) {
    log(`round ${round + 1} of ${rounds}`);
    for (const scenario of scenarios) {
      // Saturation first (it sets the rate Feast can sustain), alternating servers.
      // The floors only for single lookups: their fixed answer is one entity's.
      const alongside = scenario === 'single' ? [...tesseras, ...floors] : tesseras;
      for (const t of alongside) await run(t, scenario, 'saturation', satLoader);
      if (feast) await run(feast, scenario, 'saturation', satLoader);
      const ours = scenario === 'single' ? Number(args.rate) : Number(args['batch-rate']);
      const given = args[scenario === 'single' ? 'feast-rate' : 'feast-batch-rate'];
      // A rate Feast sustains: half its saturation QPS, fixed after round 1 so rounds are comparable.
      // Without Feast, only a rate given on the command line.
      if (feastRates[scenario] === 0)
        feastRates[scenario] = given
          ? Number(given)
          : feast
            ? Math.max(1, Math.round(satOf(feast.name, scenario) / 2 / 10) * 10 || 1)
            : 0;
      if (loaders.includes('bursts')) {
        for (const t of alongside) await run(t, scenario, ours);
        if (feast) {
          await run(feast, scenario, feastRates[scenario]);
          await run(feast, scenario, ours);
        }
        if (feastRates[scenario] > 0 && feastRates[scenario] < ours)
          for (const t of tesseras) await run(t, scenario, feastRates[scenario]);
      }
      for (const open of loaders.filter((l) => l !== 'bursts')) {
        // Feast is not run open loop at our rate: past its saturation an open loop only queues.
        for (const t of alongside) await run(t, scenario, ours, open);
        if (feast) await run(feast, scenario, feastRates[scenario], open);
        if (feastRates[scenario] > 0 && feastRates[scenario] < ours)
          for (const t of tesseras) await run(t, scenario, feastRates[scenario], open);
      }
    }
  }
  const sweep: { server: string; scenario: Cell['scenario']; connections: number; f: LoadFigures }[] = [];
  for (const connections of args.sweep.split(',').filter(Boolean).map(Number)) {
    for (const scenario of scenarios) {
      for (const server of [...tesseras, ...(feast ? [feast] : [])]) {
        const f = await measured(server, {
          url: server.url,
          headers,
          bodiesFile: bodiesOf[scenario],
          connections,
          duration: DURATION,
          ...(satLoader === 'go' ? { go: true } : {}),
        });
        sweep.push({ server: server.name, scenario, connections, f });
        log(
          `  sweep ${server.name.padEnd(9)} ${scenario.padEnd(6)} ${connections} connections ${fmt(f.rps)} req/s p50 ${ms(f.p50)} p99 ${ms(f.p99)} cpu/req ${cpuPerRequest(f)}`,
        );
      }
    }
  }
  // More Feast workers once (2 cores: the machine has no room for more), saturation and its rates.
  for (const workers of workersList.slice(1)) {
    if (feast) await stopServer(feast);
    const next = await startFeast(workers);
    feast = next;
    await load({
      url: next.url,
      headers,
      bodiesFile: singleBodies,
      connections: 8,
      duration: Number(args.warmup),
    });
    for (const scenario of scenarios) {
      await run(next, scenario, 'saturation', satLoader);
      await run(next, scenario, feastRates[scenario], loaders[0]);
    }
  }

  const stillValid = Date.now() < loaded.t0 + VALID_MS;
  const after = stillValid ? await compareValues(tessera, [base], feast, sample, loaded) : null;
  for (const t of tesseras) await stopServer(t);
  if (feast) await stopServer(feast);
  for (const f of floors) await stopServer(f);

  // ------------------------------------------------------------------ report
  const fig = (
    server: string,
    scenario: Cell['scenario'],
    mode: Cell['mode'],
    arrival: Arrival = 'bursts',
  ) => {
    const c = findCell(server, scenario, mode, arrival);
    if (!c) return null;
    return {
      rps: median(c.figures.map((f) => f.rps)),
      p50: median(c.figures.map((f) => f.p50)),
      // The median of the rounds' p99s (of two, their mean: a figure no round had), for tables;
      // a goal is judged on the worst round and the least rate reached.
      p99: median(c.figures.map((f) => f.p99)),
      worstP99: Math.max(...c.figures.map((f) => f.p99)),
      leastRps: Math.min(...c.figures.map((f) => f.rps)),
      bad: c.figures.reduce((s, f) => s + f.non2xx + f.errors + f.timeouts, 0),
    };
  };
  const cellText = (server: string, scenario: Cell['scenario'], mode: Cell['mode'], arrival: Arrival) => {
    const f = fig(server, scenario, mode, arrival);
    if (!f) return '-';
    const bad = f.bad > 0 ? ` (${fmt(f.bad)} failed)` : '';
    return `${ms(f.p50)} / ${ms(f.p99)} ms @ ${fmt(f.rps)}/s${bad}`;
  };
  const servers = [
    ...tesseras.map((t) => t.name),
    ...floors.map((f) => f.name),
    ...workersList.map((w) => `feast-w${w}`),
  ];
  const rate = Number(args.rate);
  const batchRate = Number(args['batch-rate']);
  console.log(
    `\nOnline server, ${fmt(loaded.ids.length)} users (${fmt(loaded.events)} events), 6 features, loopback, ` +
      `load from a separate process (${loaders.map((a) => LOADER_LABEL[a]).join(', ')}), ${DURATION} s per run, ${rounds} round(s), median`,
  );
  console.log(
    `state per entity in Redis: p50 ${fmt(loaded.stateBytes.p50)} B, p99 ${fmt(loaded.stateBytes.p99)} B, ` +
      `max ${fmt(loaded.stateBytes.max)} B (exact mode keeps raw events); ${fmt(loaded.deltas.users)} users hold delta records`,
  );
  const arrivals: Arrival[] = loaders;
  const loaderText: Record<Arrival, string> = {
    bursts: `autocannon's overallRate on ${args['rate-connections']} connections (each sends its share of a second back to back)`,
    paced: `the Node paced sender (open loop, up to ${args['rate-connections']} sockets, latency from the millisecond tick that sends or queues each request)`,
    go: `loadtest/loadgen (Go, open loop, evenly spaced, ${args['go-connections']} keep-alive connections, latency from each request's due time)`,
  };
  for (const arrival of arrivals) {
    console.log(
      `\nFixed rates by ${loaderText[arrival]}; saturation by ${LOADER_LABEL[satLoader]} (closed loop, ${args.connections} connections):`,
    );
    console.log(
      `server    | QPS at saturation (single / batch ${BATCH}) | single: p50 / p99 at fixed rate (achieved) | batch ${BATCH}: p50 / p99 at fixed rate (achieved)`,
    );
    for (const server of servers) {
      const rates = [
        ...new Set([rate, feastRates.single].filter((r) => fig(server, 'single', r, arrival))),
      ].sort((a, b) => b - a);
      const batchRates = [
        ...new Set([batchRate, feastRates.batch].filter((r) => fig(server, 'batch', r, arrival))),
      ].sort((a, b) => b - a);
      const lines = Math.max(rates.length, batchRates.length, 1);
      for (let i = 0; i < lines; i++) {
        const sat = i === 0 ? `${fmt(satOf(server, 'single'))} / ${fmt(satOf(server, 'batch'))}` : '';
        const single =
          rates[i] !== undefined
            ? `${fmt(rates[i]!)}/s: ${cellText(server, 'single', rates[i]!, arrival)}`
            : '';
        const batch =
          batchRates[i] !== undefined
            ? `${fmt(batchRates[i]!)}/s: ${cellText(server, 'batch', batchRates[i]!, arrival)}`
            : '';
        console.log(
          `${(i === 0 ? server : '').padEnd(9)} | ${sat.padEnd(38)} | ${single.padEnd(42)} | ${batch}`,
        );
      }
    }
  }
  const cpuOf = (server: string, scenario: Cell['scenario']) => {
    const c = findCell(server, scenario, 'saturation', satLoader);
    return median(c?.figures.map((f) => (1000 * (f.serverCpu ?? Number.NaN)) / f.requests) ?? []);
  };
  console.log(
    '\nServer CPU per request at saturation (user + system of all its processes; steadier than wall-clock rates on a shared machine):',
  );
  for (const server of servers)
    console.log(
      `  ${server.padEnd(9)} single ${ms3(cpuOf(server, 'single'))} ms, batch ${BATCH} ${ms3(cpuOf(server, 'batch'))} ms`,
    );
  if (base) {
    console.log('\nThis checkout / the baseline (same run, alternating):');
    for (const scenario of scenarios) {
      const qps = satOf(tessera.name, scenario) / satOf(base.name, scenario);
      const cpu = cpuOf(base.name, scenario) / cpuOf(tessera.name, scenario);
      const rateOf = scenario === 'single' ? Number(args.rate) : Number(args['batch-rate']);
      console.log(
        `  ${scenario.padEnd(6)} QPS at saturation ${qps.toFixed(2)}x, requests per CPU-second ${cpu.toFixed(2)}x`,
      );
      for (const arrival of arrivals) {
        const t = fig(tessera.name, scenario, rateOf, arrival);
        const b = fig(base.name, scenario, rateOf, arrival);
        if (t && b)
          console.log(
            `         at ${fmt(rateOf)}/s (${LOADER_LABEL[arrival]}): p50 ${ms(t.p50)} vs ${ms(b.p50)} ms, p99 ${ms(t.p99)} vs ${ms(b.p99)} ms`,
          );
      }
    }
    console.log(
      `  responses byte-identical to the baseline's: ${5 - responseDiffs.length} of 5 request shapes`,
    );
    for (const d of responseDiffs) console.log(`    ${d}`);
  }
  if (feast) console.log('\nRatios, Tessera / Feast (same run):');
  for (const server of servers.filter((s) => s.startsWith('feast-'))) {
    console.log(
      `  vs ${server}: requests per CPU-second single ${(cpuOf(server, 'single') / cpuOf(tessera.name, 'single')).toFixed(1)}x, ` +
        `batch ${BATCH} ${(cpuOf(server, 'batch') / cpuOf(tessera.name, 'batch')).toFixed(1)}x`,
    );
    const single = satOf(tessera.name, 'single') / satOf(server, 'single');
    const batch = satOf(tessera.name, 'batch') / satOf(server, 'batch');
    console.log(
      `  vs ${server}: QPS at saturation single ${single.toFixed(1)}x, batch ${BATCH} ${batch.toFixed(1)}x  (goal >= 10x)`,
    );
    for (const arrival of arrivals)
      for (const [scenario, r] of [
        ['single', feastRates.single],
        ['single', rate],
        ['batch', feastRates.batch],
        ['batch', batchRate],
      ] as const) {
        const t = fig(tessera.name, scenario, r, arrival);
        const f = fig(server, scenario, r, arrival);
        // A server that did not reach the offered rate left requests unsent (autocannon's closed
        // loop): its p99 leaves out their wait, so no ratio is drawn from it.
        const reached = (x: { leastRps: number }) => x.leastRps > r * 0.97;
        if (t && f)
          console.log(
            `    ${scenario} offered ${fmt(r)}/s (${LOADER_LABEL[arrival]}): p99 Tessera ${ms(t.p99)} ms vs Feast ${ms(f.p99)} ms ` +
              (reached(t) && reached(f)
                ? `(Feast / Tessera ${(f.p99 / t.p99).toFixed(1)}x)`
                : `(no ratio: ${reached(f) ? 'Tessera' : 'Feast'} reached only ${fmt(reached(f) ? t.leastRps : f.leastRps)}/s)`),
          );
      }
  }
  if (floors.length > 0 && scenarios.includes('single')) {
    console.log(
      `\nThe floors, single lookups, same run: ${FLOOR} (bare node:http, reads and parses each body, answers Tessera's bytes; no auth, Redis or features) ` +
        `and ${REDIS_FLOOR} (the same, after one HMGET of the entity's state key, as Tessera reads it):`,
    );
    console.log(
      `  CPU per request at saturation: Tessera ${ms3(cpuOf(tessera.name, 'single'))} ms, floor ${ms3(cpuOf(FLOOR, 'single'))} ms, Redis floor ${ms3(cpuOf(REDIS_FLOOR, 'single'))} ms; ` +
        `QPS at saturation ${fmt(satOf(tessera.name, 'single'))} vs ${fmt(satOf(FLOOR, 'single'))} vs ${fmt(satOf(REDIS_FLOOR, 'single'))}`,
    );
    for (const arrival of arrivals) {
      const t = fig(tessera.name, 'single', rate, arrival);
      const f = fig(FLOOR, 'single', rate, arrival);
      const r = fig(REDIS_FLOOR, 'single', rate, arrival);
      if (t && f && r)
        console.log(
          `  at ${fmt(rate)}/s (${LOADER_LABEL[arrival]}): p50 ${ms(t.p50)} vs ${ms(f.p50)} vs ${ms(r.p50)} ms, p99 ${ms(t.p99)} vs ${ms(f.p99)} vs ${ms(r.p99)} ms ` +
            `(the Redis read adds ${ms(r.p99 - f.p99)} ms at p99, Tessera's own code ${ms(t.p99 - r.p99)} ms)`,
        );
    }
  }
  console.log('');
  for (const arrival of arrivals) {
    const goalSingle = fig(tessera.name, 'single', rate, arrival);
    const goalBatch = fig(tessera.name, 'batch', batchRate, arrival);
    const floorSingle = floors.length > 0 ? fig(REDIS_FLOOR, 'single', rate, arrival) : null;
    // A scenario left out of the run (--scenarios) is "not run", not "NOT met".
    // Met only if every round was under the goal at the offered rate: a p99 of a rate not reached
    // is no answer, and a median of two rounds' p99s is their mean.
    const single = goalSingle
      ? `worst round ${ms(goalSingle.worstP99)} ms, median ${ms(goalSingle.p99)} ms (achieved ${fmt(goalSingle.rps)}/s${floorSingle ? `; the Redis floor's p99 ${ms(floorSingle.p99)} ms` : ''}) ` +
        `${goalSingle.worstP99 < 2 && goalSingle.leastRps > rate * 0.97 ? 'met' : 'NOT met'}`
      : 'not run';
    const batch = goalBatch
      ? `worst round ${ms(goalBatch.worstP99)} ms, median ${ms(goalBatch.p99)} ms (achieved ${fmt(goalBatch.rps)}/s) ` +
        `${goalBatch.worstP99 < 10 && goalBatch.leastRps > batchRate * 0.97 ? 'met' : 'NOT met'}`
      : 'not run';
    console.log(
      `Goals (${LOADER_LABEL[arrival]}): single entity p99 < 2 ms at ${fmt(rate)} QPS: ${single}; ` +
        `batch ${BATCH} p99 < 10 ms at ${fmt(batchRate)}/s: ${batch}`,
    );
  }
  if (args['server-probe']) {
    console.log(
      "\nWhere the tail comes from (--server-probe; every run, not medians): the client's latency beside the " +
        "server's own (request event to response finish), its Redis reads, event-loop lateness and GC pauses, ms",
    );
    for (const c of cells)
      for (const f of c.figures) {
        if (!f.server || c.mode === 'saturation') continue;
        console.log(
          `  ${c.server.padEnd(12)} ${c.scenario.padEnd(6)} ${`${fmt(c.mode)}/s ${LOADER_LABEL[c.arrival]}`.padEnd(20)} ` +
            `client p50 ${ms(f.p50)} p99 ${ms(f.p99)} p99.9 ${ms(f.p999)} | ${probeText(f.server)} | ` +
            `cpu/req server ${cpuPerRequest(f)} loader ${((1000 * (f.loaderCpu ?? Number.NaN)) / f.requests).toFixed(3)}`,
        );
      }
  }
  if (sweep.length > 0) {
    console.log('\nSaturation by connection count (closed loop): req/s, p50 / p99 ms');
    for (const scenario of ['single', 'batch'] as const)
      for (const server of [...tesseras.map((t) => t.name), ...(feast ? [`feast-w${workersList[0]}`] : [])]) {
        const row = sweep
          .filter((x) => x.server === server && x.scenario === scenario)
          .map((x) => `c=${x.connections}: ${fmt(x.f.rps)} (${ms(x.f.p50)} / ${ms(x.f.p99)})`);
        console.log(`  ${server.padEnd(9)} ${scenario.padEnd(6)} ${row.join('  ')}`);
      }
  }
  const show = (label: string, c: Comparison | null) => {
    if (!c) {
      console.log(`${label}: skipped (more than --valid-minutes after the load; values may have decayed)`);
      return;
    }
    const vsEngine = Object.entries(c.vsEngine)
      .map(([name, n]) => `${name} vs engine ${n}`)
      .join(', ');
    const maxRel = Object.entries(c.maxRelative)
      .map(([name, r]) => `${name} ${r.toExponential(1)}`)
      .join(', ');
    console.log(
      `${label}: ${sample.length} users x 6 features = ${c.values} values; Tessera vs Feast ${c.tesseraVsFeast ?? '-'} differ, ` +
        `${vsEngine} (counts exact, doubles 1e-9 relative; max relative differences from the engine: ${maxRel}); ` +
        `not PRESENT: ${c.notPresent} (Feast's store holds the engine's values: this checks both servers' reads, not who computed them)`,
    );
    for (const d of c.firstDiffs) console.log(`    ${d}`);
  };
  console.log('');
  show('Values before the load', before);
  show('Values after the load', after);
  if (feast)
    console.log(
      `\nFeast ${feastProject}: feature repo from loadtest/baselines/feast_server/repo_template, Redis ${feastRedisConnection()}, ` +
        `apply ${feastLoad.applySeconds.toFixed(1)} s, write_to_online_store of ${fmt(loaded.ids.length)} rows ${feastLoad.writeSeconds.toFixed(1)} s`,
    );
  if (feast)
    console.log(
      `  feast ${feastServeArgs(0, 1)
        .join(' ')
        .replace(/-p 0/, '-p <port>')
        .replace(/--workers 1/, '--workers <1|2>')}`,
    );
  console.log('Load commands (our runs send a different body per request from the file, via the API):');
  for (const line of commandLines) console.log(`  ${line}`);
  console.log(
    `  a body of bodies-1.json: ${JSON.stringify({ features: featureRefs, entities: { user_id: [loaded.ids[0]] } })}; ` +
      `bodies-${BATCH}.json: the same with ${BATCH} distinct users`,
  );
  console.log(
    `  fixed rates: autocannon's overallRate (each connection sends its share of the second back to back, then waits); ` +
      `${args['rate-connections']} connections; latencies from each response's own time, not autocannon's whole-ms histogram`,
  );
  console.log(
    `\n${JSON.stringify({
      users: loaded.ids.length,
      events: loaded.events,
      state_bytes: loaded.stateBytes,
      delta_records: loaded.deltas,
      feast_write_seconds: feastLoad.writeSeconds,
      cells: cells.map((c) => ({
        server: c.server,
        scenario: c.scenario,
        mode: c.mode,
        arrival: c.arrival,
        figures: c.figures,
      })),
      values_before: before,
      values_after: after,
      sweep,
    })}`,
  );
} finally {
  await cleanup();
}
