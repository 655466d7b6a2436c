// POST /push in Feast's shape: rows are validated with the same validator the ingestor uses, then
// produced to the source's Kafka topic, so a pushed event takes exactly the path of any other event
// (ingestor -> Redis, flusher -> offline store) and can never skew the two.
import type { Producer } from 'kafkajs';
import { z } from 'zod';
import { assertCoversSource, compileAvroSchema } from '../../shared/codecs/avro-codec.ts';
import { frameConfluent } from '../../shared/codecs/confluent-frame.ts';
import { createEncoder, type Encoder } from '../../shared/codecs/index.ts';
import { latestSchema, type RegistryEndpoint } from '../../shared/codecs/schema-registry.ts';
import { describe } from '../../shared/codecs/timestamp.ts';
import { createValidator, type RecordValidator } from '../../shared/codecs/validate.ts';
import { schemaRegistryEndpoint, topicName } from '../../shared/config/clients.ts';
import type { Config } from '../../shared/config/index.ts';
import type { Definitions, SourceDef } from '../../shared/definitions/schema.ts';
import { TesseraError } from '../../shared/errors.ts';
import { clockRefusal } from '../../shared/ingest-clock.ts';
import {
  authorizationFailure,
  brokerErrorType,
  DEFAULT_MESSAGE_BYTES,
  RECORD_OVERHEAD_BYTES,
} from '../../shared/kafka-topics.ts';
import { messageBytes, sendChunked } from '../../shared/send-chunked.ts';
import { clipName } from './request.ts';

export const pushSchema = z
  .object({
    push_source_name: z.string(),
    df: z.record(z.array(z.unknown())),
    // Every pushed event reaches both stores through Kafka; the field is accepted for Feast clients.
    to: z.enum(['online', 'offline', 'online_and_offline']).optional(),
    allow_registry_cache: z.boolean().optional(),
    transform_on_write: z.boolean().optional(),
  })
  .strict();

export interface PushResult {
  source: string;
  topic: string;
  rows: number;
}

interface SourceCodec {
  source: SourceDef;
  validate: RecordValidator;
  encoder: Encoder;
}

/** How long the latest registry schema of an avro-confluent source is used before asking again. */
export const REGISTRY_SCHEMA_TTL_MS = 60_000;

/** How long a source topic's max.message.bytes is used before asking the broker again. */
export const TOPIC_LIMIT_TTL_MS = 60_000;

/** A topic's max.message.bytes as the broker has it (undefined: the broker's default). */
export type TopicLimitLookup = (topic: string) => Promise<number | undefined>;

export interface PusherOptions {
  /**
   * Reads a source topic's max.message.bytes (server: DescribeConfigs through an admin client).
   * Without it, pushes go out in requests of up to 512 KiB and a row is held to the broker's default.
   */
  topicLimit?: TopicLimitLookup;
  /** Told once per topic and minute that its limit could not be read and 512 KiB is assumed. */
  warn?: (message: string, error: unknown) => void;
  /** The wall clock rows are judged by (TESSERA_INGEST_CLOCK=wall); Date.now by default. */
  now?: () => number;
}

/** An avro-confluent source, pushed with the latest schema of its topic's value subject. */
interface RegistrySource {
  source: SourceDef;
  validate: RecordValidator;
  codec: SourceCodec | null;
  until: number;
}

export class Pusher {
  private readonly codecs = new Map<string, SourceCodec>();
  private readonly viaRegistry = new Map<string, RegistrySource>();
  /** The producer's connection, made on first need and again after a failed or lost one. */
  private connection: Promise<void> | null = null;
  /** The schema registry and its login (read at construction: a wrong password file fails the start). */
  private readonly registry: RegistryEndpoint | undefined;
  /** Each source topic's max.message.bytes, as read (or assumed) until `until`. */
  private readonly limits = new Map<string, { limit: Promise<number>; until: number }>();
  /** The views each source feeds, whose allowed lateness a pushed row's time must be within. */
  private readonly viewsOf = new Map<string, readonly { name: string; allowedLatenessMs: number }[]>();

  constructor(
    private readonly producer: Producer,
    private readonly config: Config,
    definitions: Definitions,
    definitionsDir: string,
    private readonly options: PusherOptions = {},
  ) {
    this.registry = schemaRegistryEndpoint(config);
    producer.on(producer.events.DISCONNECT, () => {
      this.connection = null;
    });
    for (const source of definitions.sources) {
      this.viewsOf.set(
        source.name,
        definitions.views.filter((v) => v.source.name === source.name),
      );
      if (source.format !== 'avro-confluent')
        this.codecs.set(source.name, {
          source,
          validate: createValidator(source),
          encoder: createEncoder(source, { definitionsDir }),
        });
      else if (this.registry !== undefined)
        this.viaRegistry.set(source.name, {
          source,
          validate: createValidator(source),
          codec: null,
          until: 0,
        });
    }
  }

  /** Sources a push may name. */
  pushable(): string[] {
    return [...this.codecs.keys(), ...this.viaRegistry.keys()];
  }

  /**
   * An avro-confluent source's codec: the latest schema registered under `<topic>-value` (the
   * subject Confluent's serializers use by default), its id in each frame. Asked again after
   * REGISTRY_SCHEMA_TTL_MS, so a new schema version is picked up; a registry down answers 503.
   */
  private async registryCodec(name: string): Promise<SourceCodec | undefined> {
    const entry = this.viaRegistry.get(name);
    if (!entry) return undefined;
    if (entry.codec !== null && entry.until > Date.now()) return entry.codec;
    const { source } = entry;
    const subject = `${topicName(this.config, source.topic)}-value`;
    // viaRegistry holds sources only when a registry is configured.
    const latest = await latestSchema(this.registry!, subject);
    if (latest === undefined)
      throw invalid(
        `push_source_name: the schema registry has no Avro schema under subject ${subject}; register the source's schema there first`,
        'push_source_name',
      );
    const avro = compileAvroSchema(latest.schema, `schema id ${latest.id} (subject ${subject})`, source);
    assertCoversSource(avro, source);
    entry.codec = {
      source,
      validate: entry.validate,
      encoder: { source, encode: (record) => frameConfluent(latest.id, avro.write(record)) },
    };
    entry.until = Date.now() + REGISTRY_SCHEMA_TTL_MS;
    return entry.codec;
  }

  /**
   * The topic's max.message.bytes, read from the broker once a minute (a topic's limit can be
   * altered while the server runs). The broker holds a produce request's whole record batch to it:
   * requests sized only to the broker-wide 512 KiB got a push to a topic set lower refused whole
   * although every row fit. A broker that refuses DescribeConfigs (no ACL for it) leaves the limit
   * at the broker's default, as before; one that does not answer, or has no such topic, fails the
   * push before anything is written.
   */
  private topicLimit(topic: string): Promise<number> {
    const lookup = this.options.topicLimit;
    if (lookup === undefined) return Promise.resolve(DEFAULT_MESSAGE_BYTES);
    const cached = this.limits.get(topic);
    if (cached !== undefined && cached.until > Date.now()) return cached.limit;
    const limit = lookup(topic).then(
      (value) => value ?? DEFAULT_MESSAGE_BYTES,
      (error: unknown) => {
        const refused = authorizationFailure(error);
        if (refused !== undefined) {
          this.options.warn?.(
            `cannot read ${topic}'s max.message.bytes (${refused}: grant DescribeConfigs on the topic); pushes to it go out in requests of up to 512 KiB`,
            error,
          );
          return DEFAULT_MESSAGE_BYTES;
        }
        const type = brokerErrorType(error);
        this.limits.delete(topic);
        if (type === 'UNKNOWN_TOPIC_OR_PARTITION')
          throw new TesseraError(
            'SERVICE_UNAVAILABLE',
            `Kafka has no topic ${topic}: create the source topic (npx tsx services/producer/main.ts --create-topic, kafka-topics.sh, or your own tooling), then push again; nothing was written`,
            { retriable: true, cause: error },
          );
        throw new TesseraError(
          'SERVICE_UNAVAILABLE',
          `Kafka did not answer for ${topic}'s size limit (check TESSERA_KAFKA_BROKERS); nothing was written`,
          { retriable: true, cause: error },
        );
      },
    );
    this.limits.set(topic, { limit, until: Date.now() + TOPIC_LIMIT_TTL_MS });
    return limit;
  }

  /**
   * Connects the producer, once; a failed attempt (Kafka down at start) is tried again by the next
   * call, and a connection kafkajs reports lost is made again. kafkajs gives up on a producer
   * whose connect failed, and every send then throws "The producer is disconnected".
   */
  connect(): Promise<void> {
    if (this.connection === null) {
      this.connection = this.producer.connect().catch((error: unknown) => {
        this.connection = null;
        throw error;
      });
    }
    return this.connection;
  }

  /** Validates every row first: one bad row refuses the whole push (400), nothing is produced. */
  async push(body: unknown): Promise<PushResult> {
    const parsed = pushSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = clipName(issue.path.join('.')) || 'body';
      // zod quotes unknown keys and received values in full: a long one is cut, as request.ts does.
      const message =
        issue.code === 'unrecognized_keys'
          ? `Unrecognized key(s) in object: ${issue.keys
              .slice(0, 5)
              .map((key) => describe(key))
              .join(', ')}${issue.keys.length > 5 ? ` and ${issue.keys.length - 5} more` : ''}`
          : issue.code === 'invalid_enum_value'
            ? `expected one of ${issue.options.join(', ')}, received ${describe(issue.received)}`
            : issue.message;
      throw invalid(`${path}: ${message}`, path);
    }
    const { push_source_name: name, df } = parsed.data;
    const codec = this.codecs.get(name) ?? (await this.registryCodec(name));
    if (!codec)
      throw invalid(
        `push_source_name: unknown or unpushable source ${describe(name)}; pushable sources: ${this.pushable().join(', ') || 'none'} (avro-confluent sources need TESSERA_SCHEMA_REGISTRY_URL)`,
        'push_source_name',
      );
    const columns = Object.entries(df);
    const rows = columns[0]?.[1].length ?? 0;
    // Lengths first: an empty first column beside full ones is a length mismatch, not "no rows".
    for (const [column, values] of columns)
      if (values.length !== rows)
        throw invalid(
          `df.${clipName(column)}: has ${values.length} values, the first column has ${rows}`,
          `df.${clipName(column)}`,
        );
    if (rows === 0) throw invalid('df: give at least one row, as {"column": [values...]}', 'df');

    const messages: { key: string; value: Buffer; timestamp?: string }[] = [];
    // The ingestors dead-letter an event too far ahead or later than a view's lateness, judged on
    // the wall clock or by the record's timestamp (stamped here, with the time the rows are judged
    // by): refused here, so that a push answered 200 is applied. On the event clock lateness
    // depends on each entity's newest event, which the ingestor alone knows.
    const clock = this.config.ingestClock;
    const now = (this.options.now ?? Date.now)();
    const timestamp = clock === 'record' ? String(now) : undefined;
    const views = this.viewsOf.get(codec.source.name)!;
    for (let row = 0; row < rows; row++) {
      const raw: Record<string, unknown> = {};
      for (const [column, values] of columns) raw[column] = values[row];
      const result = codec.validate(raw, null);
      if (!result.ok)
        throw invalid(`df row ${row}: ${result.message} (${result.reason})`, `df.${result.field ?? 'row'}`);
      const refused = clockRefusal(clock, result.ts, now, views);
      if (refused !== undefined)
        throw invalid(
          `df row ${row}: ${refused}; push recent events only (history is replayed by ingestors on TESSERA_INGEST_CLOCK=event, with the server set alike); nothing was written`,
          `df.${clipName(codec.source.timestampField)}`,
        );
      let value: Buffer;
      try {
        value = codec.encoder.encode(result.record);
      } catch (error) {
        // A value the validator let through that the source's format cannot hold (e.g. a fraction
        // of a second in an Avro long of epoch seconds).
        throw invalid(`df row ${row}: ${(error as Error).message}`, 'df');
      }
      messages.push(
        timestamp === undefined ? { key: result.key, value } : { key: result.key, value, timestamp },
      );
    }
    const topic = topicName(this.config, codec.source.topic);
    // Every row within the topic's limit, or nothing is written: one row over it would be refused
    // after the rows before it were.
    const maxBytes = (await this.topicLimit(topic)) - RECORD_OVERHEAD_BYTES;
    for (let row = 0; row < rows; row++) {
      const bytes = messageBytes(messages[row]!);
      if (bytes > maxBytes)
        throw invalid(
          `df row ${row}: its record is ${bytes} bytes, over what ${topic} takes (max.message.bytes ${maxBytes + RECORD_OVERHEAD_BYTES}, less ${RECORD_OVERHEAD_BYTES} for framing); nothing was written`,
          'df',
        );
    }
    try {
      await this.connect();
      // In requests under the topic's limit (the broker holds a request's whole batch to it) and
      // 512 KiB (sendChunked's own bound): a push of ~10,000 rows to one key in one send() once
      // exceeded message.max.bytes, refused for good.
      await sendChunked(this.producer, topic, messages, maxBytes);
    } catch (cause) {
      // A refusal a retry cannot change (a row over the topic's size limit, say) is not a 503.
      const refused = brokerRefusal(cause);
      // The topic's limit may have been lowered since it was read: the next push reads it again.
      if (refused === 'MESSAGE_TOO_LARGE') this.limits.delete(topic);
      if (refused !== undefined)
        throw new TesseraError(
          refused === 'MESSAGE_TOO_LARGE' ? 'INVALID_ARGUMENT' : 'INTERNAL',
          `Kafka refused the push to ${topic}: ${refused} (not retriable; rows before it may be written)`,
          {
            cause,
            context: {
              field: 'df',
              // What a 500's client is told instead of the message (app.ts): it must know of the
              // partial write before it retries.
              clientMessage:
                'Kafka refused the push, and a retry would be refused too; rows before the refused one may be written already',
            },
          },
        );
      // Not "nothing was written": a request spread over several partitions can be partly
      // written, and a timed-out one may have been.
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `Kafka did not acknowledge the push to ${topic} (check TESSERA_KAFKA_BROKERS); some rows may be written already, so a retry can add them twice`,
        { retriable: true, cause },
      );
    }
    return { source: name, topic, rows };
  }
}

/**
 * The broker's own non-retriable answer in a kafkajs error chain (a protocol error's type, e.g.
 * MESSAGE_TOO_LARGE), or undefined. Not "not retriable" alone: kafkajs also marks retries
 * exhausted (Kafka down) as such, which is a 503.
 */
function brokerRefusal(error: unknown): string | undefined {
  let e = error as { retriable?: boolean; type?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 5; depth++, e = e.cause as typeof e)
    if (typeof e.type === 'string' && e.retriable === false) return e.type;
  return undefined;
}

function invalid(message: string, field: string): TesseraError {
  return new TesseraError('INVALID_ARGUMENT', message, { context: { field } });
}
