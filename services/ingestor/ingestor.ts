// The ingestor process core: a kafkajs consumer group over the definitions' source topics. Per
// fetch of a source topic (its partitions' batches together): decode and validate every record,
// apply the good ones with the engine (apply-batch.ts), make the training rows and the dead
// letters of bad and late records (`<topic>.dlq`, original bytes) durable, save the states to
// Redis, then push fresh feature vectors and only then commit the offsets.
// A failure anywhere before the commit makes kafkajs redeliver the batch; the engine's per-partition
// offsets make the redelivery a no-op for state, so nothing is lost or counted twice.
import type { Admin, Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { createDecoder } from '../../shared/codecs/decode.ts';
import type { DecodeResult } from '../../shared/codecs/types.ts';
import { decoderOptions, schemaRegistryEndpoint, topicName } from '../../shared/config/clients.ts';
import type { Config } from '../../shared/config/index.ts';
import { watchConsumerCrashes } from '../../shared/consumer-crashes.ts';
import type { Definitions, SourceDef } from '../../shared/definitions/schema.ts';
import { planView } from '../../shared/engine/index.ts';
import { isTesseraError, TesseraError } from '../../shared/errors.ts';
import { arrivalOf } from '../../shared/ingest-clock.ts';
import { keyHashPartitioner } from '../../shared/kafka-partitioner.ts';
import {
  createServedTopics,
  DEFAULT_MESSAGE_BYTES,
  messageLimitsIfAllowed,
  RECORD_OVERHEAD_BYTES,
} from '../../shared/kafka-topics.ts';
import { sendChunked } from '../../shared/send-chunked.ts';
import { type Command, type RedisClient, sendAll } from '../../shared/state-store/redis-client.ts';
import { type LoadStats, RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { StateCache } from '../../shared/state-store/state-cache.ts';
import {
  applyBatch,
  type FeatureUpdate,
  type IncomingEvent,
  type Rejection,
  type RowSink,
  type ViewRuntime,
} from './apply-batch.ts';
import { createBatchTrouble } from './batch-trouble.ts';
import { createCommitter } from './committer.ts';
import type { IngestorMetrics } from './metrics.ts';
import { type AvroUpdateEncoder, createAvroUpdateEncoder, registerUpdateSchemas } from './push-avro.ts';
import { createPushEncoder } from './push-json.ts';
import { RowRecords } from './row-records.ts';

export const UPDATES_TOPIC = 'features.updates';
export const ROWS_TOPIC = 'features.rows';

export interface IngestorDeps {
  config: Config;
  definitions: Definitions;
  kafka: Kafka;
  redis: RedisClient;
  logger: Logger;
  metrics: IngestorMetrics;
  /** Wall clock (tests may pin it). */
  now?: () => number;
  /**
   * Called when the consumer crashed and kafkajs will not restart it (e.g. the broker refused a
   * request as too large): nothing more would be consumed. main.ts then stops the process with
   * exit code 1, so that a supervisor restarts it instead of leaving it up and idle.
   */
  onFatal?: (error: Error) => void;
}

interface SourceRuntime {
  source: SourceDef;
  topic: string;
  views: (ViewRuntime & {
    store: RedisStateStore;
    cache: StateCache;
    /** The store's load totals already added to the metric (batches of partitions overlap). */
    reported: LoadStats;
  })[];
  /** `between`: called between the rounds of schema lookups of a batch (to heartbeat). */
  decode: (messages: KafkaMessage[], between: () => Promise<void>) => Promise<DecodeResult[]>;
}

export interface Ingestor {
  start(): Promise<void>;
  stop(): Promise<void>;
  readiness(): Promise<string[]>;
}

export function createIngestor(deps: IngestorDeps): Ingestor {
  const { config, definitions, kafka, redis, logger, metrics } = deps;
  const now = deps.now ?? Date.now;
  const sources = new Map<string, SourceRuntime>();
  for (const source of definitions.sources) {
    const views = definitions.views.filter((v) => v.source.name === source.name);
    if (views.length === 0) continue;
    const decoder = createDecoder(source, decoderOptions(config, definitions.file));
    const topic = topicName(config, source.topic);
    sources.set(topic, {
      source,
      topic,
      views: views.map((view) => {
        const plan = planView(view);
        const cache = new StateCache(config.stateCacheEvents);
        return {
          plan,
          cache,
          store: new RedisStateStore(redis, plan, config.redisKeyPrefix, cache),
          reported: { cached: 0, fetched: 0, appended: 0, full: 0 },
        };
      }),
      decode: (messages, between) =>
        decoder.decodeBatch(
          messages.map((m) => ({ key: m.key ?? null, value: m.value ?? null })),
          between,
        ),
    });
  }
  const consumer: Consumer = kafka.consumer({
    groupId: config.ingestorGroup,
    allowAutoTopicCreation: false,
    sessionTimeout: config.kafkaSessionTimeoutMs,
    heartbeatInterval: config.kafkaHeartbeatMs,
    // How long a fetch waits for records (kafkajs: 5 s), and how long kafkajs sleeps when every
    // partition is paused. A partition held for the schema registry (holdUndecoded) is fetched
    // again only at the next fetch: at 5 s a retry took 5 s more than its backoff.
    maxWaitTimeInMs: 1000,
  });
  // Dead letters and pushed vectors: idempotent, one request in flight, so a retry can neither
  // duplicate nor reorder them (a consumer of features.updates sees an entity's vectors in order).
  // Partitions as kafkajs' default (murmur2 of the key), computed without its per-step Long objects.
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: keyHashPartitioner,
  });
  // Training rows sit in every batch's path before the compare-and-set; on the idempotent
  // producer the six partitions' row requests queued behind each other and behind the vectors.
  // Rows need neither: the offline writer keeps one row per source offset, in any order.
  const rowsProducer: Producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: keyHashPartitioner,
  });
  const dlqLog = rateLimitedLog(logger, 10_000);
  // Feature names per view, for the JSON vectors pushed after each batch (built once).
  const names = new Map(
    [...sources.values()].flatMap((s) =>
      s.views.map((v) => [v.plan.view.name, v.plan.features.map((f) => f.def.name)] as const),
    ),
  );
  const json = createPushEncoder(names, definitions.hash);
  /** TESSERA_UPDATES_FORMAT=avro: set at start, once the views' schemas are registered. */
  let avroUpdates: AvroUpdateEncoder | null = null;
  const encodeFailures = rateLimitedLog(logger, 10_000);
  let running = false;
  /**
   * Set by stop(): batches kafkajs hands over from now on are left unprocessed (their offsets
   * unresolved, so they are fetched again by whoever owns the partition next). kafkajs runs at
   * most partitionsConsumedConcurrently handlers at once, and a pause does not hold back the
   * batches of a fetch already queued behind them: processed after stop() had committed, their
   * commits failed and the process exited 0 with applied records uncommitted.
   */
  let stopping = false;
  /**
   * What /ready reports of the batches, per source topic: a batch retried in place (Redis down),
   * partitions held for the schema registry (holdUndecoded), a push being retried.
   */
  const batchTrouble = createBatchTrouble();
  /** Resumes of held partitions still to come (cleared at a stop). */
  const resumes = new Set<NodeJS.Timeout>();
  /** Set once a push was given up (only at a stop): no offset is committed after it. */
  let pushAbandoned = false;
  const crashes = watchConsumerCrashes(consumer, 'ingestor', logger, {
    count: (error) => metrics.consumerCrashes.inc({ cause: crashCause(error) }),
    onFatal: deps.onFatal,
  });

  /**
   * The largest value the updates and rows topics take (their max.message.bytes, less room for the
   * record's framing), read at start; also the most one produce request to them carries, as the
   * broker holds a request's whole record batch to that limit. A vector or a training row can be
   * many times its event's size (a last_n of long strings): sent over the limit, the rows' request
   * failed for good, the consumer crashed at every restart, and an oversized vector took the rest
   * of its fetch's vectors down with it. Such a value is left out, counted and logged instead.
   */
  let updatesLimit = DEFAULT_MESSAGE_BYTES - RECORD_OVERHEAD_BYTES;
  let rowsLimit = DEFAULT_MESSAGE_BYTES - RECORD_OVERHEAD_BYTES;
  /** The same for each source's DLQ topic, by source topic: the most one request of dead letters carries. */
  const dlqSendLimits = new Map<string, number>();
  const oversizedLog = rateLimitedLog(logger, 60_000);

  /** Said once a start: the topics' limits could not be read, so the broker's default is assumed. */
  let limitsWarned = false;
  const limitsRefused = (type: string) => {
    if (limitsWarned) return;
    limitsWarned = true;
    logger.warn(
      { type },
      "cannot read the topics' max.message.bytes (no DescribeConfigs ACL): the broker's default (1 MiB) is assumed, and a topic set lower may refuse rows, vectors or dead letters; grant DescribeConfigs on the source, DLQ, features.updates and features.rows topics",
    );
  };

  /**
   * The broker's topics, once every source topic is among them. A topic created a moment ago may
   * be missing from a broker's metadata for a little while, so the list is read again for up to
   * 15 s; a source topic still absent then stops the start with its name. kafkajs' own refusal
   * of the subscription was a raw "This server does not host this topic-partition" stack.
   */
  async function sourceTopicsFound(admin: Admin): Promise<Set<string>> {
    const deadline = Date.now() + 15_000;
    for (let warned = false; ; warned = true) {
      const existing = new Set(await admin.listTopics());
      const absent = [...sources.keys()].filter((t) => !existing.has(t));
      if (absent.length === 0) return existing;
      if (Date.now() > deadline)
        throw new TesseraError(
          'NOT_FOUND',
          `source topic${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not found on ${config.kafkaBrokers.join(',')}: create ${absent.length > 1 ? 'them' : 'it'} before the ingestor starts (the producer's --create-topic does, or kafka-topics.sh --create), or correct the definitions' topic (and TESSERA_TOPIC_PREFIX)`,
          { context: { topics: absent } },
        );
      if (!warned)
        logger.warn({ topics: absent }, 'source topics not found on the broker yet; waiting up to 15 s');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  async function ensureTopics(): Promise<void> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = await sourceTopicsFound(admin);
      const wanted = [...sources.keys()].flatMap((t) => [`${t}.dlq`]);
      wanted.push(topicName(config, UPDATES_TOPIC), topicName(config, ROWS_TOPIC));
      const missing = wanted.filter((t) => !existing.has(t));
      if (missing.length > 0) {
        // A dead letter is its record plus Tessera's headers (up to ~1.2 KB): a DLQ topic that
        // took no more than its source would refuse a record near the source's limit, and that
        // batch would then fail for ever. A DLQ created here takes its source's limit plus 64 KiB.
        const dlqLimits = await dlqMessageLimits(
          admin,
          missing.filter((t) => t.endsWith('.dlq')).map((t) => t.slice(0, -'.dlq'.length)),
          existing,
          limitsRefused,
        );
        await createServedTopics(
          admin,
          missing.map((topic) => {
            const limit = dlqLimits.get(topic);
            return limit === undefined
              ? { topic, numPartitions: 6 }
              : {
                  topic,
                  numPartitions: 6,
                  configEntries: [{ name: 'max.message.bytes', value: String(limit) }],
                };
          }),
        );
        logger.info({ topics: missing }, 'created topics');
      }
      const own = await messageLimitsIfAllowed(
        admin,
        [
          topicName(config, UPDATES_TOPIC),
          topicName(config, ROWS_TOPIC),
          ...[...sources.keys()].map((t) => `${t}.dlq`),
        ],
        limitsRefused,
      );
      const valueLimit = (topic: string) => (own.get(topic) ?? DEFAULT_MESSAGE_BYTES) - RECORD_OVERHEAD_BYTES;
      for (const t of sources.keys()) dlqSendLimits.set(t, valueLimit(`${t}.dlq`));
      updatesLimit = valueLimit(topicName(config, UPDATES_TOPIC));
      rowsLimit = valueLimit(topicName(config, ROWS_TOPIC));
    } finally {
      await admin.disconnect();
    }
  }

  // Every view's outcome series exists from the start at 0: "no event applied for 2 h" can then
  // be alerted on across restarts (a series that appears only with the first event cannot).
  for (const s of sources.values())
    for (const v of s.views)
      for (const outcome of ['applied', 'duplicate', 'dlq'])
        metrics.events.inc({ view: v.plan.view.name, outcome }, 0);
  // Likewise each crash cause: increase() cannot see a series' first sample, so a crash counter
  // born at 1 would hide the first crash from the alerts.
  for (const cause of ['kafka', 'batch']) metrics.consumerCrashes.inc({ cause }, 0);
  // And each way a push can fail, for the stages this configuration has.
  const pushStages = [
    'kafka',
    ...(config.publishUpdates ? ['publish'] : []),
    ...(config.updatesFormat === 'avro' ? ['encode'] : []),
  ];
  for (const topic of sources.keys())
    for (const stage of pushStages) metrics.pushErrors.inc({ topic, stage }, 0);
  const commits = createCommitter(consumer, config.ingestCommitIntervalMs, logger);
  let inFlight = 0;
  let drained: (() => void) | null = null;
  // kafkajs fetches every assigned partition of a broker in one request, hands each partition's
  // batch to eachBatch, and fetches again only once all of them are done. The batches of one fetch
  // are therefore handled together: one state load, one rows request, one compare-and-set
  // pipeline, one push for all of them, instead of those four round trips per partition with the
  // partitions' CPU work interleaved between them (a fetch cycle then lasted 100 ms at 10k events/s).
  let gathering: { payloads: EachBatchPayload[]; settled: Promise<void> } | null = null;
  // The push of the last fetch, then its commit: they run while the next fetch is fetched and
  // applied instead of holding it back (a push round trip was ~20 % of a fetch cycle at 10k
  // events/s). One at a time, in fetch order, so an entity's vectors stay in order.
  let pushing: Promise<void> = Promise.resolve();
  /** Per view, the newest event time applied by this process (the freshness gauge). */
  const newestApplied = new Map<string, number>();

  async function handleBatch(payload: EachBatchPayload): Promise<void> {
    if (payload.batch.messages.length === 0 || stopping) return;
    inFlight++;
    try {
      if (!gathering) {
        const payloads: EachBatchPayload[] = [];
        // The fetch's other batches reach eachBatch in the same turn of the event loop.
        const settled = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
          gathering = null;
          return processFetch(payloads);
        });
        gathering = { payloads, settled };
      }
      gathering.payloads.push(payload);
      await gathering.settled;
    } finally {
      inFlight--;
      if (inFlight === 0) drained?.();
    }
  }

  async function processFetch(payloads: EachBatchPayload[]): Promise<void> {
    const byTopic = new Map<string, EachBatchPayload[]>();
    for (const p of payloads) {
      const list = byTopic.get(p.batch.topic);
      if (list) list.push(p);
      else byTopic.set(p.batch.topic, [p]);
    }
    // All settled before failing: a topic still in progress must not overlap with its redelivery.
    const topics = [...byTopic];
    const outcomes = await Promise.allSettled(topics.map(([topic, list]) => processBatches(topic, list)));
    const failed = outcomes.flatMap((o, i) =>
      o.status === 'rejected' ? [{ topic: topics[i]![0], error: o.reason }] : [],
    );
    if (failed.length === 0) return;
    // kafkajs reports the one error the fetch fails with; the other topics' would go unseen.
    for (const { topic, error } of failed.slice(1))
      logger.error(
        { err: error, topic },
        "batch failed too (the fetch fails with another topic's error, which kafkajs reports)",
      );
    throw failed[0]!.error;
  }

  /**
   * Counts a failed batch attempt (a Kafka error as Kafka's, else in `failures`) and says whether it
   * may be tried again here: a retriable TesseraError that is not Kafka's. Kafka errors go back to
   * kafkajs, which redelivers the batch and, past its own retries, restarts the consumer.
   */
  function countRetriable(error: unknown, failures: { inc(): void }): error is TesseraError {
    const kafka = isKafkaError(error);
    (kafka ? metrics.kafkaErrors : failures).inc();
    return !kafka && isTesseraError(error) && error.retriable;
  }

  /**
   * Runs `attempt` until it succeeds, retrying in place, with backoff, while the member heartbeats,
   * when it fails with a retriable error that is not Kafka's (Redis down, compare-and-set
   * conflicts without end). Handed to kafkajs, five quick retries ended in a consumer crash, which
   * left the group and rebalanced every other ingestor at each outage. Kafka errors, errors no
   * retry fixes, and a stop still fail the batch. `/ready` names the trouble. An apply attempt
   * loads the states afresh (a failed batch leaves none in the cache), so what an earlier attempt
   * saved is a duplicate to the next. In place, not fetched again as an undecodable batch is
   * (holdUndecoded): its dead letters and its first attempt's clock must carry over, and Redis is
   * every topic's, so holding the other topics' partitions with it costs nothing.
   */
  async function retryInPlace<T>(
    topic: string,
    heartbeat: () => Promise<void>,
    failures: { inc(): void },
    attempt: () => Promise<T>,
  ): Promise<T> {
    for (let n = 1; ; n++) {
      const backoff = retryBackoffMs(n);
      try {
        await heartbeat();
        const value = await attempt();
        if (n > 1) logger.info({ topic, attempt: n }, 'batch went through after retrying');
        batchTrouble.through(topic);
        return value;
      } catch (error) {
        // The rows and dead letters are produced inside the batch too: a broker outage is not a
        // Redis error.
        if (!countRetriable(error, failures) || stopping) throw error;
        batchTrouble.retrying(
          topic,
          `a batch of ${topic} keeps failing (${error.message}); retrying every ${RETRY_MAX_MS / 1000} s at most`,
        );
        if (n === 1 || n % 10 === 0)
          logger.warn(
            { err: error.message, topic, attempt: n, retryInMs: backoff },
            'batch failed; retrying it in place',
          );
        await waitHeartbeating(backoff, heartbeat);
      }
    }
  }

  /**
   * Holds the partitions of `topic`'s batches that could not be decoded for a retriable reason
   * (the schema registry down): pauses them with their offsets unresolved, so that this fetch
   * completes and kafkajs fetches the other topics again, and resumes them after a backoff
   * (doubling, up to RETRY_MAX_MS), when their batches are fetched and decoded again. Not retried
   * in place: kafkajs fetches again only once every batch of a fetch is done, so a batch held in
   * place held every other topic of its broker with it. /ready names the topic until they decode
   * or are assigned away.
   */
  function holdUndecoded(topic: string, payloads: readonly EachBatchPayload[], reason: string): void {
    const partitions = payloads.map((p) => p.batch.partition);
    const attempts = batchTrouble.held(
      topic,
      partitions,
      `a batch of ${topic} keeps failing (${reason}); its partitions wait and are fetched again every ${RETRY_MAX_MS / 1000} s at most`,
    );
    const backoff = retryBackoffMs(attempts);
    if (attempts === 1 || attempts % 10 === 0)
      logger.warn(
        { err: reason, topic, partitions, attempt: attempts, retryInMs: backoff },
        'batch could not be decoded; its partitions are paused and fetched again',
      );
    try {
      consumer.pause([{ topic, partitions }]);
    } catch (error) {
      // The consumer has crashed (kafkajs dropped its group): the batch comes back after the restart.
      logger.warn({ err: error, topic }, 'could not pause the partitions of an undecodable batch');
    }
    const timer = setTimeout(() => {
      resumes.delete(timer);
      if (stopping) return;
      try {
        consumer.resume([{ topic, partitions }]);
      } catch (error) {
        logger.warn({ err: error, topic }, 'could not resume the partitions of an undecodable batch');
      }
    }, backoff);
    resumes.add(timer);
  }

  /** Waits `ms` (less if a stop begins), heartbeating every half second: the member stays in its group. */
  async function waitHeartbeating(ms: number, heartbeat: () => Promise<void>): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until && !stopping) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(500, until - Date.now())));
      await heartbeat();
    }
  }

  /** One source topic's batches of a fetch (one per partition): decode, apply, rows, DLQ, push, commit. */
  async function processBatches(topic: string, payloads: EachBatchPayload[]): Promise<void> {
    const runtime = sources.get(topic);
    if (!runtime) throw new Error(`no source is defined for topic ${topic}`);
    const started = performance.now();
    const stage = (name: string, since: number) => {
      const t = performance.now();
      metrics.stageSeconds.inc({ stage: name }, (t - since) / 1000);
      return t;
    };
    // kafkajs heartbeats only between fetches unless asked; a catch-up fetch on a busy machine can
    // outlast the session timeout, and the group then drops this member (its commits fail, and the
    // consumer was seen to stall). heartbeat() is a no-op until the interval has passed.
    //
    // A heartbeat that fails (the group rebalancing, the coordinator moving) does not fail the
    // batch: once a view's states are saved, failing would redeliver applied records (counted as
    // duplicates, their push late, dead letters sent twice). Finishing is safe under a rebalance:
    // the compare-and-set guards the states, and a commit refused by the new generation is
    // dropped at the rejoin (committer.forget).
    const heartbeat = () => payloads[0]!.heartbeat().catch(() => undefined);
    // The lag as this fetch found it: a batch that keeps failing (Redis down) still shows it.
    for (const { batch } of payloads)
      metrics.lag.set(
        { topic, partition: String(batch.partition) },
        Math.max(0, Number(batch.highWatermark) - Number(batch.messages[0]!.offset)),
      );
    const messages: { message: KafkaMessage; partition: number }[] = [];
    const incoming: IncomingEvent[] = [];
    const dlq: DeadLetter[] = [];
    /** Indexes in `messages` of the records dead-lettered. */
    const dead = new Set<number>();
    /** Of the undecodable ones, those the bytes alone condemn (not an unknown schema id), and why. */
    const settled: { index: number; reason: string }[] = [];
    // A Confluent source asks its schema registry for unseen ids here. A registry outage is not
    // handed to kafkajs (its retries ended in a consumer crash and a rebalance of the whole group),
    // nor retried in place (that held the other topics' partitions, see holdUndecoded).
    const decodedBatches: Awaited<ReturnType<typeof runtime.decode>>[] = [];
    try {
      await heartbeat();
      for (const { batch } of payloads) decodedBatches.push(await runtime.decode(batch.messages, heartbeat));
    } catch (error) {
      // Decoders reject only when the schema registry is out of reach (retriable). Anything else
      // is a fault of its own, counted as the consumer crash it becomes, not as a registry error.
      if (!isTesseraError(error) || !error.retriable) throw error;
      metrics.registryErrors.inc();
      // Nothing of the batches was sent or saved yet: left unresolved, they are fetched again.
      if (!stopping) holdUndecoded(topic, payloads, error.message);
      return;
    }
    const attempts = batchTrouble.decoded(
      topic,
      payloads.map((p) => p.batch.partition),
    );
    if (attempts !== null) logger.info({ topic, attempt: attempts }, 'batch went through after retrying');
    // The clock of the first attempt for every retry: an event judged `future` and dead-lettered
    // by one attempt must not be applied by the next.
    const clock = { mode: config.ingestClock, now: now() };
    for (const [b, { batch }] of payloads.entries()) {
      const decoded = decodedBatches[b]!;
      decoded.forEach((d, i) => {
        const message = batch.messages[i]!;
        const index = messages.push({ message, partition: batch.partition }) - 1;
        if (d.ok) {
          incoming.push({
            index,
            partition: batch.partition,
            offset: Number(message.offset),
            entity: d.key,
            ts: d.ts,
            arrival: arrivalOf(message.timestamp, clock.now),
            record: d.record,
          });
        } else {
          dlq.push({ message, partition: batch.partition, reason: d.reason, detail: d.message });
          dead.add(index);
          if (!d.unsettled) settled.push({ index, reason: d.reason });
        }
      });
    }

    stage('decode', started);
    // Dead letters (the undecodable records, then what applyBatch rejects) are made durable before
    // any state is saved, as the training rows are: a state saved with a later offset makes a
    // redelivered rejected record a duplicate, never dead-lettered again. If the DLQ is down this
    // throws, nothing is saved or committed, and the batches come back (the partitions wait
    // instead of dropping the event).
    const undecodable = dlq.length;
    /** Indexes already dead-lettered by an earlier attempt of this batch (retried in place). */
    const lettered = new Set<number>();
    const sendDeadLetters = async (rejected: readonly Rejection[]) => {
      // The undecodable records go with the first call; dlq is empty after it.
      const letters = dlq.splice(0);
      const fresh = rejected.filter((r) => !lettered.has(r.index));
      for (const r of fresh) letters.push({ ...messages[r.index]!, reason: r.reason, detail: r.message });
      if (letters.length === 0) return;
      const sendStarted = performance.now();
      // Source order.
      letters.sort(
        (a, b) => a.partition - b.partition || Number(BigInt(a.message.offset) - BigInt(b.message.offset)),
      );
      await sendChunked(
        producer,
        `${topic}.dlq`,
        letters.map(({ message, partition, reason, detail }) => ({
          key: message.key ?? null,
          value: message.value ?? null,
          headers: dlqHeaders(message.headers, { reason, detail, topic, partition, offset: message.offset }),
        })),
        dlqSendLimits.get(topic),
      );
      for (const r of fresh) lettered.add(r.index);
      for (const d of letters) {
        metrics.dlq.inc({ topic, reason: d.reason });
        dlqLog(
          d.reason,
          { topic, partition: d.partition, offset: d.message.offset, reason: d.reason },
          `dead-lettered: ${d.detail}`,
        );
      }
      metrics.stageSeconds.inc({ stage: 'dlq' }, (performance.now() - sendStarted) / 1000);
    };
    const result = await retryInPlace(topic, heartbeat, metrics.redisErrors, () => {
      const rows = rowsSink(topic, heartbeat);
      // The records the decoder refused have no row in any view: marked so (with the dead letter's
      // reason), with the first rows flushed. Not those of a schema id that could not be resolved
      // or compiled: another delivery may decode them (a registry follower catching up), and a
      // mark would then hide their rows.
      if (rows.training)
        for (const { index, reason } of settled) {
          const { message, partition } = messages[index]!;
          for (const v of runtime.views)
            rows.noRow(v.plan.view.name, partition, Number(message.offset), reason);
        }
      return applyBatch(
        runtime.views,
        incoming,
        clock,
        rows,
        async () => {
          await new Promise((resolve) => setImmediate(resolve));
          await heartbeat();
        },
        sendDeadLetters,
      );
    });
    const redisAckedAt = Date.now();
    for (const [name, ms] of Object.entries(result.stageMs))
      metrics.stageSeconds.inc({ stage: name }, ms / 1000);
    await heartbeat();

    const done = payloads.map(({ batch, resolveOffset }) => {
      const last = batch.messages[batch.messages.length - 1]!;
      resolveOffset(last.offset);
      return { topic, partition: batch.partition, offset: last.offset };
    });
    // At most one fetch's push behind: the previous one has almost always finished by now.
    await pushing;
    const push = pushThenCommit(topic, result.updates, done, heartbeat);
    // Another source topic of the same fetch may have started its push meanwhile: keep both.
    pushing = Promise.all([pushing, push]).then(() => undefined);

    // Metrics once the states are saved: what they count has really happened.
    for (const [view, n] of result.applied) metrics.events.inc({ view, outcome: 'applied' }, n);
    for (const [view, n] of result.duplicates) metrics.events.inc({ view, outcome: 'duplicate' }, n);
    for (const [view, n] of result.cappedDrops) metrics.capped.inc({ view }, n);
    // Undecodable records count for every view of the source; a rejected one for the views that
    // rejected it (an event late for one view may be applied by another).
    for (const view of runtime.views) {
      const name = view.plan.view.name;
      const n = undecodable + (result.rejectedByView.get(name) ?? 0);
      if (n > 0) metrics.events.inc({ view: name, outcome: 'dlq' }, n);
    }
    // The newest event applied so far, never moving back when a fetch of older events follows.
    for (const [view, t] of result.newestEventTime) {
      if (t <= (newestApplied.get(view) ?? Number.NEGATIVE_INFINITY)) continue;
      newestApplied.set(view, t);
      metrics.freshness.set({ view }, t / 1000);
    }
    metrics.conflicts.inc(result.conflicts);
    for (const v of runtime.views) {
      const view = v.plan.view.name;
      metrics.stateLoads.inc({ view, source: 'cache' }, v.store.stats.cached - v.reported.cached);
      metrics.stateLoads.inc({ view, source: 'redis' }, v.store.stats.fetched - v.reported.fetched);
      metrics.stateWrites.inc({ view, kind: 'delta' }, v.store.stats.appended - v.reported.appended);
      metrics.stateWrites.inc({ view, kind: 'full' }, v.store.stats.full - v.reported.full);
      v.reported = { ...v.store.stats };
      metrics.stateCacheEvents.set({ view }, v.cache.weight);
    }
    // Records whose state is in Redis: not the dead letters (duplicates are, from before).
    for (const r of result.rejected) dead.add(r.index);
    messages.forEach(({ message }, index) => {
      if (dead.size > 0 && dead.has(index)) return;
      metrics.eventToRedisSeconds.observe(Math.max(0, redisAckedAt - Number(message.timestamp)) / 1000);
    });
    for (const { batch } of payloads)
      metrics.lag.set(
        { topic, partition: String(batch.partition) },
        Math.max(
          0,
          Number(batch.highWatermark) - Number(batch.messages[batch.messages.length - 1]!.offset) - 1,
        ),
      );
    metrics.batchSeconds.observe((performance.now() - started) / 1000);
  }

  /**
   * Training rows packed into few records (row-records.ts): one record per row cost more in kafkajs
   * (encoding, partitioner, CRC per record) than the whole engine step. Unique by source offset.
   * Each row is encoded as it is added (RowSink), so only its line is kept until the flush.
   */
  function rowsSink(sourceTopic: string, heartbeat: () => Promise<void>): RowSink {
    // Within the rows topic's own limit too (as are its requests, sendChunked): a topic set below
    // them refused the rows for good, and the consumer crashed at every restart.
    const packed = new RowRecords(sourceTopic, json, Math.min(ROWS_RECORD_BYTES, rowsLimit));
    const training = config.trainingRows;
    return {
      training,
      add(row) {
        const line = json.row(row);
        // UTF-16 length * 3 bounds the UTF-8 bytes: measured only when it could matter. A record
        // holding only this row also holds its header.
        const header = packed.header(row.partition, row.view);
        const chars = line.length + 1 + header.length;
        const bytes = chars * 3 > rowsLimit ? Buffer.byteLength(line) + 1 + Buffer.byteLength(header) : 0;
        if (bytes > rowsLimit) {
          metrics.oversized.inc({ topic: topicName(config, ROWS_TOPIC) });
          oversizedLog(
            'row',
            {
              view: row.view,
              entity: row.entity,
              partition: row.partition,
              offset: row.offset,
              bytes,
            },
            `a training row is over ${topicName(config, ROWS_TOPIC)}'s max.message.bytes and was left out (a no-row mark takes its place); raise the topic's limit to keep such rows`,
          );
          packed.mark(
            row.partition,
            json.noRow(sourceTopic, row.view, row.partition, row.offset, 'too_large'),
          );
          return;
        }
        packed.row(row, line);
      },
      noRow(view, partition, offset, reason, ts) {
        packed.mark(partition, json.noRow(sourceTopic, view, partition, offset, reason, ts, !training));
      },
      async flush() {
        const sending = packed.take();
        if (sending.length === 0) return;
        await heartbeat();
        await sendChunked(rowsProducer, topicName(config, ROWS_TOPIC), sending, rowsLimit);
        await heartbeat();
      },
    };
  }

  /**
   * The push of one fetch's vectors, then the commit of its offsets. Made outside processBatches
   * so that it holds only the vectors and offsets, not the fetch's records and training rows (a
   * closure there would keep its whole scope alive into the next fetch, and into the old
   * generation).
   */
  async function pushThenCommit(
    topic: string,
    vectors: readonly FeatureUpdate[],
    done: readonly { topic: string; partition: number; offset: string }[],
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    const t0 = performance.now();
    // A push that fails after the producer's retries (the updates topic gone, the brokers away)
    // is retried here, with backoff, heartbeating, and nothing is committed meanwhile: the next
    // fetch waits for it, so the partitions pause instead of dropping the vectors. Dropped, with
    // the offsets committed, an entity that then went idle was stale downstream for good. At a stop
    // it is given up without committing anything after it: the restarted ingestor redelivers the
    // fetch, whose events are duplicates, and pushes their current vectors again.
    for (let n = 1; ; n++) {
      const backoff = retryBackoffMs(n);
      try {
        await publish(topic, vectors);
        if (n > 1) logger.info({ topic, attempt: n }, 'feature update push went through after retrying');
        batchTrouble.pushed(topic);
        break;
      } catch (error) {
        if (stopping) {
          pushAbandoned = true;
          logger.error(
            { err: (error as Error).message, topic, updates: vectors.length },
            'feature update push failed at a stop: its offsets are not committed, so the restarted ingestor pushes these vectors again',
          );
          break;
        }
        batchTrouble.pushFailing(
          topic,
          `the feature updates of ${topic} cannot be pushed (${(error as Error).message}); retrying every ${RETRY_MAX_MS / 1000} s at most, nothing committed meanwhile`,
        );
        if (n === 1 || n % 10 === 0)
          logger.warn(
            { err: (error as Error).message, topic, updates: vectors.length, attempt: n, retryInMs: backoff },
            'feature update push failed; retrying it',
          );
        await waitHeartbeating(backoff, heartbeat);
      }
    }
    const t1 = performance.now();
    metrics.stageSeconds.inc({ stage: 'updates' }, (t1 - t0) / 1000);
    if (pushAbandoned) return;
    try {
      await commits.done(done);
    } catch (error) {
      logger.warn({ err: error }, 'offset commit failed; a later batch or the timer commits again');
    }
    metrics.stageSeconds.inc({ stage: 'commit' }, (performance.now() - t1) / 1000);
  }

  /**
   * Pushes one fetch of `topic`'s vectors: to the updates topic, then PUBLISHed if configured.
   * Each failure is counted by the stage it failed in before it is thrown to the retry.
   */
  async function publish(topic: string, vectors: readonly FeatureUpdate[]): Promise<void> {
    const avroEncoder = avroUpdates;
    let sent: readonly FeatureUpdate[] = vectors;
    let updates: { key: string; value: string | Buffer }[];
    if (avroEncoder === null) {
      updates = vectors.map((u) => ({ key: u.entity, value: json.update(u) }));
    } else {
      // A value that does not fit its Avro type (none should: the schema is derived from the same
      // definitions as the values) loses that vector only: it is counted and logged, and the
      // others go out.
      updates = [];
      const kept: FeatureUpdate[] = [];
      for (const u of vectors) {
        try {
          updates.push({ key: u.entity, value: avroEncoder.update(u) });
          kept.push(u);
        } catch (error) {
          metrics.pushErrors.inc({ topic, stage: 'encode' });
          encodeFailures(
            `avro:${u.view}`,
            { err: error, view: u.view, entity: u.entity },
            'a feature vector does not fit its Avro schema and was not pushed',
          );
        }
      }
      sent = kept;
    }
    // The broker holds key and value together to the limit, and the value names the entity too:
    // a long entity counts twice.
    if (updates.some((u) => (u.key.length + u.value.length) * 3 > updatesLimit)) {
      const bytes = updates.map((u) => Buffer.byteLength(u.key) + Buffer.byteLength(u.value));
      const fit = bytes.map((n) => n <= updatesLimit);
      updates.forEach((u, i) => {
        if (fit[i]) return;
        metrics.oversized.inc({ topic: topicName(config, UPDATES_TOPIC) });
        oversizedLog(
          'update',
          { view: sent[i]!.view, entity: u.key, bytes: bytes[i] },
          `a feature vector is over ${topicName(config, UPDATES_TOPIC)}'s max.message.bytes and was not pushed; raise the topic's limit to push such vectors`,
        );
      });
      updates = updates.filter((_, i) => fit[i]);
      sent = sent.filter((_, i) => fit[i]);
    }
    try {
      await sendChunked(producer, topicName(config, UPDATES_TOPIC), updates, updatesLimit);
    } catch (error) {
      metrics.pushErrors.inc({ topic, stage: 'kafka' });
      throw error;
    }
    if (config.publishUpdates && updates.length > 0) {
      // The same bytes as the topic's records (JSON, or Confluent-framed Avro).
      let failed: unknown = null;
      try {
        const replies = await sendAll(
          redis,
          sent.map(
            (u, i): Command => ['publish', `${config.redisKeyPrefix}:updates:${u.view}`, updates[i]!.value],
          ),
        );
        // Each command's error is in its reply.
        failed = replies.find(([error]) => error)?.[0] ?? null;
      } catch (error) {
        failed = error;
      }
      if (failed) {
        metrics.pushErrors.inc({ topic, stage: 'publish' });
        throw failed;
      }
    }
  }

  return {
    async start() {
      await ensureTopics();
      if (config.updatesFormat === 'avro') {
        const views = [...sources.values()].flatMap((s) => s.views.map((v) => v.plan.view));
        // Avro updates without a registry URL are refused by the configuration.
        const ids = await registerUpdateSchemas(
          schemaRegistryEndpoint(config)!,
          topicName(config, UPDATES_TOPIC),
          views,
        );
        avroUpdates = createAvroUpdateEncoder(views, ids, definitions.hash);
        logger.info({ schemaIds: Object.fromEntries(ids) }, 'feature updates in Avro, schemas registered');
      }
      await producer.connect();
      await rowsProducer.connect();
      await consumer.connect();
      // A rebalance may hand a partition to another ingestor and back: its entities' cached states
      // may then be stale. The compare-and-set would refuse them, but only after the batch's rows
      // were sent from them, so the cache starts empty after every (re)join.
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        // Partitions gone to another member take their troubles with them (kafkajs always names
        // the assignment; a stand-in consumer may not, and then nothing is known to be gone).
        if (payload?.memberAssignment) batchTrouble.assigned(payload.memberAssignment);
        for (const s of sources.values())
          for (const v of s.views) {
            v.cache.clear();
            metrics.stateCacheEvents.set({ view: v.plan.view.name }, 0);
          }
        commits.forget();
        // Partitions given away must not keep their last lag here (summed with the new owner's).
        metrics.lag.reset();
      });
      for (const topic of sources.keys()) await consumer.subscribe({ topic, fromBeginning: true });
      // Partitions are independent (keyed by entity; the compare-and-set guards the rest), so
      // several batches wait on Redis and Kafka at once instead of one after another.
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 6,
        eachBatch: handleBatch,
      });
      running = true;
      logger.info(
        { topics: [...sources.keys()], group: config.ingestorGroup, trainingRows: config.trainingRows },
        'ingestor consuming',
      );
    },
    async stop() {
      const wasRunning = running;
      running = false;
      stopping = true;
      commits.stop();
      for (const timer of resumes) clearTimeout(timer);
      resumes.clear();
      if (wasRunning) {
        // No new batches; the ones in progress finish; then every partition's last processed offset
        // is committed (commits are periodic) before the consumer leaves the group.
        try {
          consumer.pause([...sources.keys()].map((topic) => ({ topic })));
        } catch (error) {
          // kafkajs drops its consumer group when the consumer crashes (a broker outage, before a
          // restart): then nothing is fetched anyway, and pause() throws. Stopping goes on.
          logger.warn({ err: error }, 'could not pause the kafka consumer (it has crashed); stopping anyway');
        }
        while (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
        await pushing;
        try {
          await commits.flush();
        } catch (error) {
          logger.warn(
            { err: error },
            'final offset commit failed: records since the last commit will be redelivered (no-ops)',
          );
        }
      }
      await consumer.disconnect();
      await producer.disconnect();
      await rowsProducer.disconnect();
    },
    async readiness() {
      const problems: string[] = [];
      const crashed = crashes.trouble();
      if (!running) problems.push('consumer not running');
      else if (crashed !== null) problems.push(crashed);
      problems.push(...batchTrouble.problems());
      try {
        await redis.ping();
      } catch (error) {
        problems.push(`redis: ${String(error)}`);
      }
      return problems;
    },
  };
}

interface DeadLetter {
  message: KafkaMessage;
  partition: number;
  reason: string;
  detail: string;
}

/** Backoff of a batch retried in place (processBatches): doubling from the first to the second. */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5000;

/** The wait before the retry that follows failed attempt `n` (from 1): doubling, capped. */
function retryBackoffMs(n: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(10, n - 1));
}

/** Size of a `features.rows` record in bytes (less when the topic's max.message.bytes is lower). */
const ROWS_RECORD_BYTES = 64 * 1024;

/**
 * kafkajs' own errors (KafkaJSError and its subclasses), by name: kafkajs is CommonJS and its error
 * classes are not visible as named ES exports.
 */
function isKafkaError(error: unknown): boolean {
  return error instanceof Error && error.name.startsWith('KafkaJS');
}

/**
 * What crashed the consumer: Kafka itself (kafkajs' own error at the bottom of the chain), or a
 * batch that kept failing past kafkajs' retries for another reason (an undecodable state, a
 * fault in a decoder; kafkajs wraps it as KafkaJSNonRetriableError).
 */
export function crashCause(error: Error): 'kafka' | 'batch' {
  let root: Error = error;
  for (let depth = 0; depth < 10; depth++) {
    const inner = (root as { cause?: unknown }).cause ?? (root as { originalError?: unknown }).originalError;
    if (!(inner instanceof Error)) break;
    root = inner;
  }
  return isKafkaError(root) ? 'kafka' : 'batch';
}

/** Room for Tessera's dead-letter headers over the source record's own limit. */
export const DLQ_HEADROOM_BYTES = 64 * 1024;

/** max.message.bytes for each source's DLQ topic (keyed by the DLQ's name): the source's + headroom. */
async function dlqMessageLimits(
  admin: Admin,
  sourceTopics: string[],
  existing: ReadonlySet<string>,
  refused: (type: string) => void,
): Promise<Map<string, number>> {
  const described = await messageLimitsIfAllowed(
    admin,
    sourceTopics.filter((t) => existing.has(t)),
    refused,
  );
  return new Map(
    sourceTopics.map((t) => [`${t}.dlq`, (described.get(t) ?? DEFAULT_MESSAGE_BYTES) + DLQ_HEADROOM_BYTES]),
  );
}

/**
 * A dead letter's headers: the original ones, then Tessera's. Kafka allows a header without a value,
 * which kafkajs reads as null, but kafkajs' produce encoder throws on a null value (it measures it
 * before checking for null): copied as is, such a header failed every send of its dead letter, and
 * the ingestor crashed on it at every restart. A null value is sent empty, its name listed in
 * `tessera-null-headers`.
 */
export function dlqHeaders(
  original: IHeaders | undefined,
  info: { reason: string; detail: string; topic: string; partition: number; offset: string },
): IHeaders {
  const headers: IHeaders = {};
  const nulls = new Set<string>();
  const present = (key: string, v: Buffer | string | null | undefined): Buffer | string => {
    if (v !== null && v !== undefined) return v;
    nulls.add(key);
    return EMPTY;
  };
  for (const [key, value] of Object.entries(original ?? {})) {
    if (!Array.isArray(value)) {
      headers[key] = present(key, value);
      continue;
    }
    // kafkajs reads a header named as an Object.prototype member (`toString`, `constructor`) as an
    // array led by that inherited function, which no produce can encode: its dead letter failed
    // every send, and the partition stalled for good. The function is not the record's.
    const own = value.filter((v) => typeof v !== 'function');
    headers[key] =
      own.length === 1 && own.length < value.length ? present(key, own[0]) : own.map((v) => present(key, v));
  }
  return {
    ...headers,
    ...(nulls.size > 0 ? { 'tessera-null-headers': [...nulls].join(',') } : {}),
    'tessera-reason': info.reason,
    'tessera-message': info.detail.slice(0, 1000),
    'tessera-source-topic': info.topic,
    'tessera-source-partition': String(info.partition),
    'tessera-source-offset': info.offset,
  };
}

const EMPTY = Buffer.alloc(0);

/** Logs the first event of each kind at once, then at most once per interval with a count. */
function rateLimitedLog(logger: Logger, intervalMs: number) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (kind: string, context: Record<string, unknown>, message: string) => {
    const t = Date.now();
    const entry = last.get(kind);
    if (entry && t - entry.at < intervalMs) {
      entry.suppressed++;
      return;
    }
    logger.warn({ ...context, suppressed: entry?.suppressed ?? 0 }, message);
    last.set(kind, { at: t, suppressed: 0 });
  };
}
