// The flusher process core: one Kafka consumer group over the definitions' source topics and
// `features.rows`, a bounded buffer, and a loop that flushes it to the offline store every
// flushIntervalMs (or when the buffer is full, or on stop). Offsets are committed only after the
// flush is recorded in the store. While the store is down the loop retries with backoff and the
// consumer pauses once the buffer is full, so memory stays bounded; it resumes after a flush.
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import { createDecoder, type Decoder } from '../../shared/codecs/decode.ts';
import { decoderOptions, topicName } from '../../shared/config/clients.ts';
import type { Config } from '../../shared/config/index.ts';
import { watchConsumerCrashes } from '../../shared/consumer-crashes.ts';
import type { Definitions, SourceDef, ViewDef } from '../../shared/definitions/schema.ts';
import { isTesseraError, TesseraError } from '../../shared/errors.ts';
import { createServedTopics } from '../../shared/kafka-topics.ts';
import type { ObjectStore } from '../../shared/offline/object-store.ts';
import type { RedisClient } from '../../shared/state-store/redis-client.ts';
import { takeSnapshot } from './entity-snapshot.ts';
import { rowsInRecord } from './feature-rows.ts';
import { type FlushContext, type FlushReport, footer, runFlush } from './flush.ts';
import {
  type FlusherState,
  type FlushIntent,
  loadState,
  saveState,
  versionName,
  withinTopics,
} from './flusher-state.ts';
import type { FlusherMetrics } from './metrics.ts';
import { RecordBuffer } from './record-buffer.ts';

export const ROWS_TOPIC = 'features.rows';

export interface FlusherDeps {
  config: Config;
  definitions: Definitions;
  kafka: Kafka;
  redis: RedisClient;
  store: ObjectStore;
  logger: Logger;
  metrics: FlusherMetrics;
  codeVersion: string;
  /** The consumer crashed and kafkajs will not restart it: the process should exit 1. */
  onFatal?: (error: Error) => void;
}

export interface Flusher {
  start(): Promise<void>;
  /** Flushes what is buffered, commits, leaves the group. */
  stop(): Promise<void>;
  readiness(): Promise<string[]>;
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;

export function createFlusher(deps: FlusherDeps): Flusher {
  const { config, definitions, kafka, redis, store, logger, metrics } = deps;
  const sources = new Map<string, { source: SourceDef; decoder: Decoder }>();
  for (const source of definitions.sources) {
    if (!definitions.views.some((v) => v.source.name === source.name)) continue;
    sources.set(topicName(config, source.topic), {
      source,
      decoder: createDecoder(source, decoderOptions(config, definitions.file)),
    });
  }
  const rowsTopic = topicName(config, ROWS_TOPIC);
  const topics = [...sources.keys(), rowsTopic];
  const consumer: Consumer = kafka.consumer({
    groupId: config.flusherGroup,
    allowAutoTopicCreation: false,
    sessionTimeout: config.kafkaSessionTimeoutMs,
    heartbeatInterval: config.kafkaHeartbeatMs,
    // A fetch waits at most this long for new records: a resumed partition is read again quickly
    // (kafkajs' 5 s default stalls every catch-up cycle after a pause).
    maxWaitTimeInMs: 250,
  });
  // A crashed consumer consumes nothing until kafkajs has restarted it, while the flush loop goes
  // on writing empty flushes (the last-success gauge stays fresh): /ready must say so.
  const crashes = watchConsumerCrashes(consumer, 'flusher', logger, {
    count: () => metrics.consumerCrashes.inc(),
    onFatal: deps.onFatal,
  });
  const admin = kafka.admin();

  let state: FlusherState | null = null;
  /** Since when a redo waits for the records of its cut (readiness says so after a minute). */
  let redoWaitingSince: number | null = null;
  const buffer = new RecordBuffer(() => state?.positions ?? {});
  const paused = new Set<string>(); // `${topic}\0${partition}`, or `${topic}\0*` for the whole topic
  let running = false;
  let stopping = false;
  let storeOk = true;
  /** The last entity snapshot that failed, while no snapshot has succeeded since (for /ready). */
  let snapshotFailure: { view: string; at: number; error: string } | null = null;
  let wake: (() => void) | null = null;
  let loop: Promise<void> | null = null;

  const ctx: FlushContext = {
    store,
    definitions,
    sources,
    rowsTopic,
    retentionVersions: config.retentionVersions,
    codeVersion: deps.codeVersion,
    logger,
    ...(config.flushSnapshots ? { snapshot: writeSnapshot } : {}),
  };

  if (config.flushSnapshots)
    for (const view of definitions.views) {
      metrics.snapshotFailures.inc({ view: view.name }, 0);
      metrics.snapshotStatesLeftOut.inc({ view: view.name }, 0);
    }
  // Redis back: a snapshot that failed on the outage no longer says anything about now. Without
  // new rows no snapshot is taken to clear it, and /ready stayed 503 through a quiet night.
  redis.on('ready', () => {
    snapshotFailure = null;
  });

  async function writeSnapshot(view: ViewDef, version: string, asOf: number): Promise<void> {
    // Without a connection ioredis would queue the scan and give up only after its reconnect
    // attempts, seconds per view and flush (and past the stop's guard): a snapshot needs Redis now.
    if (redis.status !== 'ready')
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `Redis (TESSERA_REDIS_URL) is not connected (${redis.status}); no entity snapshot of ${view.name} for ${version}`,
        { retriable: true },
      );
    const ingestorOffsets = await committedOffsets(config.ingestorGroup, view.source.topic);
    const meta = footer({ view: view.name, version, definitions_hash: definitions.hash });
    const snap = await takeSnapshot(redis, view, config.redisKeyPrefix, asOf, meta);
    if (snap.corrupt.length > 0) {
      metrics.snapshotStatesLeftOut.inc({ view: view.name }, snap.corrupt.length);
      logger.warn(
        { view: view.name, entities: snap.corrupt.slice(0, 10), count: snap.corrupt.length },
        'snapshot: states that do not decode under these definitions left out (services/keys counts them)',
      );
    }
    const dir = `${view.name}/snapshots/${version}`;
    await store.put(`${dir}/entities.parquet`, snap.body, 'application/vnd.apache.parquet');
    await store.put(
      `${dir}/metadata.json`,
      JSON.stringify(
        {
          view: view.name,
          version,
          as_of: new Date(asOf).toISOString(),
          entities: snap.entities,
          // States under the prefix that did not decode (another layout, or corrupt): not in it.
          states_left_out: snap.corrupt.length,
          redis_key_prefix: config.redisKeyPrefix,
          ttl_ms: view.ttlMs,
          // Replaying the source from these offsets after a restore is safe: each state records
          // the offsets it applied, so events already in a state are no-ops (docs/ingestor.md).
          ingestor_group: config.ingestorGroup,
          ingestor_offsets: ingestorOffsets,
          definitions_hash: definitions.hash,
          code_version: deps.codeVersion,
        },
        null,
        2,
      ),
      'application/json',
    );
  }

  async function committedOffsets(group: string, baseTopic: string): Promise<Record<string, string>> {
    const topic = topicName(config, baseTopic);
    const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Object.fromEntries((offsets?.partitions ?? []).map((p) => [String(p.partition), p.offset]));
  }

  async function ensureRowsTopic(): Promise<void> {
    const existing = new Set(await admin.listTopics());
    const missingSources = [...sources.keys()].filter((t) => !existing.has(t));
    if (missingSources.length > 0)
      logger.warn(
        { topics: missingSources },
        'source topics do not exist yet: waiting up to 10 s for them, then exiting (create them first)',
      );
    if (!existing.has(rowsTopic)) {
      // Same shape as the ingestor creates it (whichever starts first).
      await createServedTopics(admin, [{ topic: rowsTopic, numPartitions: 6 }]);
    }
  }

  async function handleBatch({ batch, heartbeat, resolveOffset }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0) return;
    // Take only what fits: under the buffer limit, or (redoing an interrupted flush) below its cut.
    // Records left out are not resolved, so kafkajs fetches them again after the next resume.
    const end = state?.pending
      ? (state.pending.cut[batch.topic]?.[String(batch.partition)] ?? 0)
      : Number.POSITIVE_INFINITY;
    const room = state?.pending
      ? Number.POSITIVE_INFINITY
      : Math.max(0, config.flushMaxBufferedRows - buffer.size);
    const take = [];
    let taken = 0;
    for (const m of batch.messages) {
      const offset = Number(m.offset);
      if (offset >= end || taken >= room) break;
      const rows = batch.topic === rowsTopic ? rowsInRecord(m.value) : 1;
      take.push({ offset, key: m.key, value: m.value, rows });
      taken += rows;
    }
    const added = buffer.append(batch.topic, batch.partition, take);
    const last = take.at(-1);
    if (last) resolveOffset(String(last.offset));
    metrics.consumed.inc({ topic: batch.topic }, added);
    metrics.buffered.set(buffer.size);
    metrics.lag.set(
      { topic: batch.topic, partition: String(batch.partition) },
      Math.max(0, Number(batch.highWatermark) - buffer.position(batch.topic, batch.partition)),
    );
    if (take.length < batch.messages.length) {
      if (state?.pending)
        pauseKeys([`${batch.topic}\0${batch.partition}`]); // past the cut of the redo
      else pauseKeys(topics.map((t) => `${t}\0*`)); // full: nothing more is read until a flush makes room
    }
    updatePause();
    await heartbeat();
  }

  function pauseKeys(keys: string[]): void {
    const toPause = keys.filter((k) => !paused.has(k));
    if (toPause.length === 0) return;
    consumer.pause(toPause.map(topicPartitions));
    for (const k of toPause) paused.add(k);
    metrics.paused.set(1);
  }

  /** Pauses what must not be read now: partitions past a pending cut, or everything when full. */
  function updatePause(): void {
    if (stopping && !running) return; // stop() paused everything for the final flush
    const want = new Set<string>();
    const pending = state?.pending;
    if (pending) {
      // Redoing a flush: nothing resumes until it is done; partitions that reached its cut pause.
      for (const k of paused) want.add(k);
      for (const [topic, parts] of Object.entries(pending.cut))
        for (const [p, end] of Object.entries(parts))
          if (buffer.position(topic, Number(p)) >= end) want.add(`${topic}\0${p}`);
    } else if (buffer.size >= config.flushMaxBufferedRows) {
      for (const topic of topics) want.add(`${topic}\0*`);
      wake?.(); // a full buffer flushes now
    }
    const toPause = [...want].filter((k) => !paused.has(k));
    const toResume = [...paused].filter((k) => !want.has(k));
    if (toPause.length > 0) consumer.pause(toPause.map(topicPartitions));
    if (toResume.length > 0) consumer.resume(toResume.map(topicPartitions));
    for (const k of toPause) paused.add(k);
    for (const k of toResume) paused.delete(k);
    if (toPause.length + toResume.length > 0) {
      metrics.paused.set(paused.size > 0 ? 1 : 0);
      logger.info(
        { paused: paused.size, buffered: buffer.size },
        paused.size > 0 ? 'consumer paused' : 'consumer resumed',
      );
    }
  }

  /** Waits for the interval, a full buffer, or stop. */
  function sleepUntilDue(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });
  }

  /** Flushes until it succeeds (backoff between attempts); returns false if stopped while failing. */
  async function flushNow(final: boolean): Promise<boolean> {
    if (!state) return false;
    let intent: FlushIntent;
    if (state.pending) {
      // A crash left a flush half done: wait for the same records, then redo it under the same names.
      intent = state.pending;
      const since = Date.now();
      let warned = since;
      while (!buffer.reaches(intent.cut)) {
        if (final || stopping) return false;
        redoWaitingSince = since;
        if (Date.now() - warned > 30_000) {
          warned = Date.now();
          logger.warn(
            { version: intent.version, cut: intent.cut, waitingSeconds: Math.round((warned - since) / 1000) },
            'redo of an interrupted flush still waiting for its records (deleted by Kafka retention?)',
          );
        }
        updatePause();
        await new Promise((r) => setTimeout(r, 100));
      }
      redoWaitingSince = null;
    } else {
      const cut = buffer.cut();
      intent = {
        version: versionName(Date.now(), state.lastVersion),
        cut,
        startedAt: new Date().toISOString(),
      };
    }
    let backoff = BACKOFF_MIN_MS;
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        if (buffer.size === 0 && !state.pending) {
          // Nothing new: still prove the store answers, so the success metric means "store healthy".
          await saveState(store, state);
        } else {
          const report = await runFlush(ctx, state, buffer, intent);
          await commit(intent);
          buffer.release(intent.cut);
          for (const [view, n] of report.rows) metrics.rows.inc({ view }, n);
          for (const [view, n] of report.duplicateRows) metrics.duplicates.inc({ view }, n);
          for (const [source, n] of report.rawEvents) metrics.rawEvents.inc({ source }, n);
          for (const [key, n] of report.invalid) metrics.invalid.inc({ reason: key }, n);
          noteSnapshots(report);
          logger.info(
            {
              version: report.version,
              rows: Object.fromEntries(report.rows),
              duplicates: Object.fromEntries(report.duplicateRows),
              noRow: Object.fromEntries(report.noRows),
              ...(report.lateMarks.size > 0 ? { lateMarks: Object.fromEntries(report.lateMarks) } : {}),
              raw: Object.fromEntries(report.rawEvents),
              ...(report.snapshotErrors.size > 0
                ? { snapshotFailed: [...report.snapshotErrors.keys()] }
                : {}),
              seconds: (performance.now() - started) / 1000,
            },
            'flushed',
          );
        }
        metrics.flushSeconds.observe((performance.now() - started) / 1000);
        metrics.lastSuccess.set(Date.now() / 1000);
        metrics.buffered.set(buffer.size);
        storeOk = true;
        updatePause();
        return true;
      } catch (error) {
        storeOk = false;
        metrics.errors.inc();
        const retriable = isTesseraError(error) && error.retriable;
        logger[retriable ? 'warn' : 'error'](
          { err: String(error), attempt, retryInMs: backoff, version: intent.version },
          'flush failed; retrying (nothing is committed until it succeeds)',
        );
        if (final ? attempt >= 3 : stopping) return false;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
      }
    }
  }

  /** Snapshot outcomes: metrics, and what /ready says. */
  function noteSnapshots(report: FlushReport): void {
    const now = Date.now();
    for (const view of report.snapshots) metrics.lastSnapshot.set({ view }, now / 1000);
    for (const view of report.snapshotErrors.keys()) metrics.snapshotFailures.inc({ view });
    const [failed] = report.snapshotErrors;
    if (failed) snapshotFailure = { view: failed[0], at: now, error: String(failed[1]) };
    else if (report.snapshots.length > 0) snapshotFailure = null;
  }

  async function commit(intent: FlushIntent): Promise<void> {
    const offsets = Object.entries(intent.cut).flatMap(([topic, parts]) =>
      Object.entries(parts).map(([p, end]) => ({ topic, partition: Number(p), offset: String(end) })),
    );
    if (offsets.length === 0) return;
    try {
      await consumer.commitOffsets(offsets);
    } catch (error) {
      // Harmless: the store's state already holds these positions and drops the re-read records.
      logger.warn(
        { err: String(error) },
        'committing Kafka offsets failed after a flush; records will be re-read and skipped',
      );
    }
  }

  /** Subscribes, waiting out a topic that was just created and is not in the metadata yet. */
  async function subscribe(topic: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        return;
      } catch (error) {
        const unknown = (error as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION';
        if (!unknown || attempt >= 20) throw error;
        logger.warn({ topic, attempt }, 'topic not known to the broker yet; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async function runLoop(): Promise<void> {
    while (!stopping) {
      const due = state?.pending || buffer.size >= config.flushMaxBufferedRows;
      await sleepUntilDue(due ? 0 : config.flushIntervalMs);
      if (stopping) break;
      await flushNow(false);
    }
  }

  return {
    async start() {
      await admin.connect();
      await ensureRowsTopic();
      state = await loadState(store);
      if (state.pending) {
        // A cut over topics this flusher no longer reads (a source or view removed, the topic
        // prefix changed, since the crash) could never be reached: the redo waited for good.
        const { intent, gone } = withinTopics(state.pending, topics);
        if (gone.length > 0)
          logger.warn(
            { version: intent.version, topics: gone },
            'the interrupted flush covered topics this flusher no longer reads; redoing it without them',
          );
        state.pending = intent;
        logger.warn({ version: state.pending.version }, 'an interrupted flush is pending; redoing it first');
      }
      await consumer.connect();
      for (const topic of topics) await subscribe(topic);
      consumer.on(consumer.events.GROUP_JOIN, () => {
        // Start a new generation from a known state: resume what we paused, then pause again as needed.
        if (paused.size > 0) consumer.resume([...paused].map(topicPartitions));
        paused.clear();
        updatePause();
        metrics.lag.reset(); // partitions given away must not keep their last lag here
      });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: handleBatch,
      });
      running = true;
      loop = runLoop();
      logger.info({ topics, group: config.flusherGroup, store: store.location }, 'flusher consuming');
    },
    async stop() {
      stopping = true;
      wake?.();
      await loop;
      running = false;
      try {
        pauseKeys(topics.map((t) => `${t}\0*`));
      } catch (error) {
        // A crashed consumer has no group to pause (kafkajs throws): nothing is fetched anyway.
        logger.warn(
          { err: String(error) },
          'could not pause the kafka consumer (it has crashed); stopping anyway',
        );
      }
      const ok = await flushNow(true);
      if (!ok)
        logger.warn('final flush did not complete; the next start redoes it from the last committed offsets');
      await consumer.disconnect();
      await admin.disconnect();
    },
    async readiness() {
      const problems: string[] = [];
      const crashed = crashes.trouble();
      if (!running) problems.push('consumer not running');
      else if (crashed !== null) problems.push(crashed);
      if (!storeOk) problems.push(`offline store ${store.location}: the last flush failed`);
      if (snapshotFailure !== null)
        problems.push(
          `redis: the entity snapshot of ${snapshotFailure.view} failed at ${new Date(snapshotFailure.at).toISOString()} (${snapshotFailure.error}); flushes to ${store.location} go on, their versions without snapshots`,
        );
      if (redoWaitingSince !== null && Date.now() - redoWaitingSince > 60_000)
        problems.push(
          `redo of the interrupted flush ${state?.pending?.version} has waited ${Math.round((Date.now() - redoWaitingSince) / 1000)} s for its records`,
        );
      return problems;
    },
  };
}

function topicPartitions(key: string): { topic: string; partitions?: number[] } {
  const [topic, p] = key.split('\0') as [string, string];
  return p === '*' ? { topic } : { topic, partitions: [Number(p)] };
}
