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
import { sendChunked } from '../../shared/send-chunked.ts';
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

  constructor(
    private readonly producer: Producer,
    private readonly config: Config,
    definitions: Definitions,
    definitionsDir: string,
  ) {
    this.registry = schemaRegistryEndpoint(config);
    producer.on(producer.events.DISCONNECT, () => {
      this.connection = null;
    });
    for (const source of definitions.sources)
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
    if (rows === 0) throw invalid('df: give at least one row, as {"column": [values...]}', 'df');
    for (const [column, values] of columns)
      if (values.length !== rows)
        throw invalid(
          `df.${clipName(column)}: has ${values.length} values, the first column has ${rows}`,
          `df.${clipName(column)}`,
        );

    const messages: { key: string; value: Buffer }[] = [];
    for (let row = 0; row < rows; row++) {
      const raw: Record<string, unknown> = {};
      for (const [column, values] of columns) raw[column] = values[row];
      const result = codec.validate(raw, null);
      if (!result.ok)
        throw invalid(`df row ${row}: ${result.message} (${result.reason})`, `df.${result.field ?? 'row'}`);
      let value: Buffer;
      try {
        value = codec.encoder.encode(result.record);
      } catch (error) {
        // A value the validator let through that the source's format cannot hold (e.g. a fraction
        // of a second in an Avro long of epoch seconds).
        throw invalid(`df row ${row}: ${(error as Error).message}`, 'df');
      }
      messages.push({ key: result.key, value });
    }
    const topic = topicName(this.config, codec.source.topic);
    try {
      await this.connect();
      // In requests under the broker's batch limit: one send() is one record batch per partition,
      // and a push of ~10,000 rows to one key once exceeded message.max.bytes (refused for good).
      await sendChunked(this.producer, topic, messages);
    } catch (cause) {
      // A refusal a retry cannot change (a row over the topic's size limit, say) is not a 503.
      const refused = brokerRefusal(cause);
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
