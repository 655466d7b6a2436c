// Helpers for the flusher's integration tests: a run with its own topics, groups, Redis prefix and
// offline-store prefix; real flusher processes; the expected training rows computed offline with
// the engine; and readers of what landed in the store.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import type { Kafka } from 'kafkajs';
import { createPushEncoder } from '../../services/ingestor/push-json.ts';
import { DEFAULTS, loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import type { ViewDef } from '../../shared/definitions/schema.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  type FeatureValue,
  planView,
  readFeatures,
  readFloor,
} from '../../shared/engine/index.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { openConfiguredStore } from '../../shared/offline/configured-store.ts';
import type { ObjectStore } from '../../shared/offline/object-store.ts';
import { readParquet } from '../../shared/offline/parquet.ts';
import { type FraudEvent, fraudEngineEvent } from '../../shared/synth/fraud-events.ts';
import {
  fraudMessages,
  type IngestorProcess,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from './ingestor-process.ts';
import { trackChild } from './process-guard.ts';
import { stopProcess } from './stop-after.ts';
import { createReadyTopics } from './topics.ts';

export interface FlusherRun extends TestRun {
  store: ObjectStore;
  view: ViewDef;
  rowsTopic: string;
  flusherGroup: string;
}

export function newFlusherRun(extraEnv: Record<string, string> = {}): FlusherRun {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event', TESSERA_FLUSH_INTERVAL_MS: '1000', ...extraEnv });
  run.env.TESSERA_FLUSHER_GROUP = `${run.id}-flusher`;
  run.env.TESSERA_OFFLINE_STORE ??= `s3://${run.config.s3Bucket}/${run.id}`;
  const config = loadConfig({ argv: [], env: { ...process.env, ...run.env } });
  return {
    ...run,
    config,
    store: openConfiguredStore(config),
    view: loadDefinitionsFile(config.definitions).views[0]!,
    rowsTopic: `${run.id}.features.rows`,
    flusherGroup: config.flusherGroup,
  };
}

export interface ServiceProcess {
  child: ChildProcess;
  ready: Promise<void>;
  exited: Promise<number | null>;
  output(): string;
  /** Resolves when the output contains `text` (after `from` characters of output). */
  waitFor(text: string, from?: number): Promise<void>;
}

export function startFlusher(run: FlusherRun, extraEnv: Record<string, string> = {}): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/flusher/main.ts'], {
    env: { ...process.env, ...run.env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child, `flusher of run ${run.id} (startFlusher)`);
  let out = '';
  const waiters: { text: string; from: number; resolve: () => void }[] = [];
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of [...waiters])
      if (out.indexOf(w.text, w.from) !== -1) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitFor = (text: string, from = 0) =>
    new Promise<void>((resolve, reject) => {
      if (out.indexOf(text, from) !== -1) return resolve();
      waiters.push({ text, from, resolve });
      void exited.then((code) =>
        reject(new Error(`flusher exited (${code}) before "${text}":\n${out.slice(-3000)}`)),
      );
    });
  const ready = waitFor('flusher ready');
  ready.catch(() => undefined);
  return { child, ready, exited, output: () => out, waitFor };
}

/** Waits until `group` has committed every offset of `topics`, or throws after `timeoutMs`. */
export async function waitForGroup(
  kafka: Kafka,
  group: string,
  topics: string[],
  timeoutMs: number,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let lag = 0;
      for (const topic of topics) {
        const ends = await admin.fetchTopicOffsets(topic);
        const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        for (const end of ends) {
          const c = committed?.partitions.find((p) => p.partition === end.partition);
          lag += Number(end.high) - (c && c.offset !== '-1' ? Number(c.offset) : 0);
        }
      }
      if (lag === 0) return;
      if (Date.now() > deadline)
        throw new Error(`group ${group} still ${lag} records behind after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * The real ingestor and flusher over the events already on the run's topic: both started, waited
 * for until the ingestor has applied everything and the flusher's group has consumed the source and
 * rows topics, then stopped with SIGTERM. `beforeStop` runs while both still run (e.g. a metrics
 * scrape). If anything fails on the way, both are stopped and awaited: no child outlives the test.
 */
export async function drainThroughIngestorAndFlusher(
  run: FlusherRun,
  timeoutMs: number,
  beforeStop?: (flusher: ServiceProcess) => Promise<void>,
): Promise<{ ingestor: IngestorProcess; flusher: ServiceProcess; exits: [number | null, number | null] }> {
  const ingestor = startIngestor(run);
  const flusher = startFlusher(run);
  try {
    await Promise.all([ingestor.ready, flusher.ready]);
    await waitForCaughtUp(run, run.topic, timeoutMs);
    await waitForGroup(run.kafka, run.flusherGroup, [run.topic, run.rowsTopic], timeoutMs);
    await beforeStop?.(flusher);
  } catch (error) {
    // Awaited: a caller that gets the error must not find either still running.
    await Promise.all([stopProcess(ingestor), stopProcess(flusher)]);
    throw error;
  }
  ingestor.child.kill('SIGTERM');
  flusher.child.kill('SIGTERM');
  const exits = await Promise.all([ingestor.exited, flusher.exited]);
  return { ingestor, flusher, exits };
}

/** The run's source topic with `partitions` partitions and its rows topic with 6, both served. */
export async function createFlusherTopics(run: FlusherRun, partitions: number): Promise<void> {
  await createReadyTopics(run.kafka, [
    { topic: run.topic, numPartitions: partitions },
    { topic: run.rowsTopic, numPartitions: 6 },
  ]);
}

/** Produces events placed by placeEvents to their own partitions (JSON, keyed by user), acknowledged. */
export async function producePlacedEvents(run: TestRun, events: readonly FraudEvent[]): Promise<void> {
  const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const messages = fraudMessages(events).map((m, i) => ({ ...m, partition: events[i]!.partition }));
    for (let i = 0; i < messages.length; i += 1000)
      await producer.send({ topic: run.topic, messages: messages.slice(i, i + 1000) });
  } finally {
    await producer.disconnect();
  }
}

/** Events with their Kafka position when produced to partition user_id % partitions, in order. */
export function placeEvents(events: readonly FraudEvent[], partitions: number): FraudEvent[] {
  const next = new Array<number>(partitions).fill(0);
  return events.map((e) => {
    const partition = e.user_id % partitions;
    return { ...e, partition, offset: next[partition]!++ };
  });
}

export interface ExpectedRow {
  entity: string;
  ts: number;
  partition: number;
  offset: number;
  values: FeatureValue[];
}

/**
 * The training rows the ingestor produces for these events (arrival order per entity, event clock):
 * features as of each event's time before applying it, exactly as services/ingestor/apply-batch.ts.
 */
export function expectedRows(view: ViewDef, events: readonly FraudEvent[]): Map<string, ExpectedRow> {
  const plan = planView(view);
  const states = new Map<string, EntityState>();
  const out = new Map<string, ExpectedRow>();
  for (const e of events) {
    const entity = String(e.user_id);
    let state = states.get(entity);
    if (!state) {
      state = emptyState(plan);
      states.set(entity, state);
    }
    const before =
      e.event_timestamp >= readFloor(plan, state) ? readFeatures(plan, state, e.event_timestamp) : null;
    const engineEvent = fraudEngineEvent(plan, e);
    try {
      if (applyEvent(plan, state, engineEvent).outcome !== 'applied') continue;
    } catch (error) {
      // Late: dead-lettered, no row. Any other error is the engine's, not an expected row less.
      if (!isTesseraError(error, 'EVENT_LATE')) throw error;
      continue;
    }
    if (before)
      out.set(`${e.partition}:${e.offset}`, {
        entity,
        ts: e.event_timestamp,
        partition: e.partition,
        offset: e.offset,
        values: before,
      });
  }
  return out;
}

/**
 * A one-row `features.rows` record for an expected row, as the ingestor's encoder writes it (a
 * header line, then the row; the ingestor packs several rows per record).
 */
export function rowMessage(run: FlusherRun, hash: string, r: ExpectedRow): { key: string; value: string } {
  const encoder = createPushEncoder(new Map([[run.view.name, run.view.features.map((f) => f.name)]]), hash);
  return {
    key: r.entity,
    value: `${encoder.rowsHeader(run.topic, run.view.name, r.partition)}\n${encoder.row({ view: run.view.name, ...r })}`,
  };
}

/** Every parquet file under `prefix` in the store, decoded: column name -> values. */
export async function readTables(
  store: ObjectStore,
  prefix: string,
  match: (key: string) => boolean,
): Promise<{ key: string; columns: Record<string, unknown[]>; rows: number }[]> {
  const out = [];
  for (const o of await store.list(prefix)) {
    if (!match(o.key)) continue;
    const table = readParquet(await store.get(o.key));
    const columns: Record<string, unknown[]> = {};
    // A list column's cells as plain arrays, not arrow Vectors.
    for (const field of table.schema.fields)
      columns[field.name] = Array.from(table.getChild(field.name) ?? [], (v: unknown) =>
        v instanceof arrow.Vector ? [...v] : v,
      );
    out.push({ key: o.key, columns, rows: table.numRows });
  }
  return out;
}

/** Deletes everything this run wrote to the offline store. */
export async function cleanupStore(run: FlusherRun): Promise<void> {
  const keys = (await run.store.list('')).map((o) => o.key);
  await run.store.delete(keys);
}

/**
 * A private S3Proxy (same jars and settings as scripts/lib/s3proxy.sh) on its own loopback port
 * and data directory, for tests that take S3 away: the shared one on 8333 is never touched.
 */
export class PrivateS3 {
  private child: ChildProcess | null = null;
  readonly endpoint: string;

  constructor(
    readonly port: number,
    readonly dir: string,
  ) {
    this.endpoint = `http://127.0.0.1:${port}`;
  }

  async start(bucket: string): Promise<void> {
    // The stack's own S3Proxy jars, whichever version scripts/lib/s3proxy.sh pins.
    const jars = process.env.TESSERA_S3PROXY_JARS;
    if (!jars) throw new Error('TESSERA_S3PROXY_JARS is unset: eval "$(scripts/stack env)" first');
    await mkdir(join(this.dir, 'data', bucket), { recursive: true });
    const conf = join(this.dir, 's3proxy.conf');
    await writeFile(
      conf,
      [
        `s3proxy.endpoint=${this.endpoint}`,
        's3proxy.authorization=aws-v2-or-v4',
        `s3proxy.identity=${DEFAULTS.s3AccessKeyId}`,
        `s3proxy.credential=${DEFAULTS.s3SecretAccessKey}`,
        'jclouds.provider=filesystem-nio2',
        'jclouds.identity=local',
        'jclouds.credential=local',
        `jclouds.filesystem.basedir=${join(this.dir, 'data')}`,
      ].join('\n'),
    );
    const log = await open(join(this.dir, 's3proxy.log'), 'a');
    this.child = spawn(
      'java',
      ['-Xms32m', '-Xmx256m', '-cp', `${jars}/*`, 'org.gaul.s3proxy.Main', '--properties', conf],
      { stdio: ['ignore', log.fd, log.fd] },
    );
    const child = trackChild(this.child, `private S3Proxy on ${this.port} (PrivateS3)`);
    try {
      const deadline = Date.now() + 60_000;
      while (!(await portOpen(this.port))) {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`private S3Proxy exited; see ${join(this.dir, 's3proxy.log')}`);
        if (Date.now() > deadline)
          throw new Error(`private S3Proxy not listening on ${this.port} after 60 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (error) {
      // A start that failed must not leave a JVM behind for a caller that never got to stop().
      await this.stop();
      throw error;
    } finally {
      await log.close();
    }
  }

  /** Kills this S3Proxy (our own process only); a second call, or one after it exited, returns at once. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    // Killed by a signal (our own SIGKILL included), a child keeps exitCode null and sets
    // signalCode: waiting for an 'exit' that had already come hung a second stop() for ever.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    if (this.child === child) this.child = null;
  }
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A free loopback port (bound and released). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/**
 * `count` distinct free loopback ports: all bound at once, then released. Picked one after the
 * other, the kernel may hand the same port out twice (a broker's listener and its controller on one
 * port fail to start).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
          }),
      ),
    );
  } finally {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())),
      ),
    );
  }
}
