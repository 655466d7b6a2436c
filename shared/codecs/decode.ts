// The decoder of one source: bytes of a Kafka message -> validated record or a refusal reason.
// JSON and raw Avro decode synchronously; Confluent Avro is synchronous once its schema id is
// cached, and fetches an unseen id once (concurrent messages share the fetch).
import { resolve } from 'node:path';
import type { SourceDef } from '../definitions/schema.ts';
import { TesseraError } from '../errors.ts';
import { type AvroCodec, assertCoversSource, compileAvroSchema, loadAvroSchemaFile } from './avro-codec.ts';
import { CONFLUENT_HEADER_BYTES, parseConfluentFrame } from './confluent-frame.ts';
import { parseJsonValue } from './json-codec.ts';
import {
  chainLookups,
  directoryLookup,
  type RegistryAuth,
  registryLookup,
  type SchemaLookup,
} from './schema-registry.ts';
import { type DecodeResult, failure, type KafkaMessageLike } from './types.ts';
import { createValidator } from './validate.ts';

export interface DecoderOptions {
  /** Directory of the definitions file: `avro_schema` paths are relative to it. */
  definitionsDir: string;
  /** Confluent schema registry base URL (GET <url>/schemas/ids/<id>). */
  schemaRegistryUrl?: string;
  /** The registry's login when it is not in the URL (basic auth, or a bearer token file). */
  schemaRegistryAuth?: RegistryAuth;
  /** Directory of `<id>.avsc` files; consulted before the registry. */
  schemaDir?: string;
  /** Registry request timeout, ms. Default 5000. */
  registryTimeoutMs?: number;
  /** How long an unknown schema id is remembered before asking again, ms. Default 30000. */
  unknownIdTtlMs?: number;
  /** How many unknown or unusable schema ids are remembered at once. Default 1000. */
  maxUnusableIds?: number;
}

export interface Decoder {
  readonly source: SourceDef;
  /** Never throws on bad input; rejects only when a schema store is unreachable (retriable). */
  decode(message: KafkaMessageLike): DecodeResult | Promise<DecodeResult>;
  /**
   * Decodes a batch, resolving all unseen schema ids of the batch first, a few at a time, calling
   * `between` after each round (a consumer heartbeats there: a batch of junk frames with random
   * ids is hundreds of rounds).
   */
  decodeBatch(messages: readonly KafkaMessageLike[], between?: () => Promise<void>): Promise<DecodeResult[]>;
}

type CachedSchema = { codec: AvroCodec } | { unusable: string; until: number };

/** Schema lookups of one batch in flight at once. */
const REGISTRY_CONCURRENCY = 8;

export function createDecoder(source: SourceDef, options: DecoderOptions): Decoder {
  const validate = createValidator(source);
  const keyOf = (m: KafkaMessageLike) => (m.key === null ? null : m.key.toString('utf8'));

  if (source.format === 'json') {
    const decode = (m: KafkaMessageLike): DecodeResult => {
      const parsed = parseJsonValue(m.value);
      return parsed.ok ? validate(parsed.raw, keyOf(m)) : parsed;
    };
    return { source, decode, decodeBatch: async (messages) => messages.map(decode) };
  }

  if (source.format === 'avro') {
    const codec = loadAvroSchemaFile(avroSchemaPath(source, options.definitionsDir), source);
    assertCoversSource(codec, source);
    const decode = (m: KafkaMessageLike): DecodeResult => {
      if (m.value === null || m.value.length === 0)
        return failure('undecodable', 'message has no value (tombstone or empty)');
      const read = codec.read(m.value, 0);
      return read.ok ? validate(read.raw, keyOf(m), codec.timestampUnits) : read;
    };
    return { source, decode, decodeBatch: async (messages) => messages.map(decode) };
  }

  const lookups: SchemaLookup[] = [];
  if (options.schemaDir !== undefined) lookups.push(directoryLookup(options.schemaDir));
  if (options.schemaRegistryUrl !== undefined) {
    const { schemaRegistryUrl: url, schemaRegistryAuth: auth } = options;
    lookups.push(registryLookup(auth === undefined ? url : { url, auth }, options.registryTimeoutMs));
  }
  if (lookups.length === 0) {
    throw new TesseraError(
      'CONFIG_INVALID',
      `source ${source.name} has format avro-confluent: set schemaRegistryUrl or schemaDir to resolve schema ids`,
      { context: { source: source.name } },
    );
  }
  const lookup = chainLookups(lookups);
  const unknownTtl = options.unknownIdTtlMs ?? 30_000;
  const cache = new Map<number, CachedSchema>();
  const pending = new Map<number, Promise<CachedSchema>>();
  /**
   * The ids remembered as unusable, oldest first. Junk frames carry random ids: each was a registry
   * request and an entry kept for good (an expired one goes only when asked again), so a stream of
   * junk grew the decoder without bound. At most maxUnusableIds are kept; the oldest goes first.
   */
  const maxUnusable = options.maxUnusableIds ?? 1000;
  const unusableIds = new Set<number>();
  const markUnusable = (id: number, why: string) => {
    if (!unusableIds.has(id) && unusableIds.size >= maxUnusable) {
      const oldest = unusableIds.values().next().value as number;
      unusableIds.delete(oldest);
      cache.delete(oldest);
    }
    unusableIds.delete(id);
    unusableIds.add(id);
    const entry = { unusable: why, until: Date.now() + unknownTtl };
    cache.set(id, entry);
    return entry;
  };

  const usable = (id: number): CachedSchema | undefined => {
    const entry = cache.get(id);
    if (entry !== undefined && 'unusable' in entry && entry.until < Date.now()) {
      cache.delete(id);
      unusableIds.delete(id);
      return undefined;
    }
    return entry;
  };

  /** The entry of an id once looked up (the same lookup for concurrent callers). */
  const load = (id: number): Promise<CachedSchema> => {
    let p = pending.get(id);
    if (p === undefined) {
      p = (async (): Promise<CachedSchema> => {
        const text = await lookup(id);
        if (text === undefined) return markUnusable(id, `unknown schema id ${id}`);
        try {
          const entry = { codec: compileAvroSchema(text, `schema id ${id}`, source) };
          cache.set(id, entry);
          return entry;
        } catch (error) {
          return markUnusable(id, (error as Error).message);
        }
      })().finally(() => pending.delete(id));
      pending.set(id, p);
    }
    return p;
  };

  const decodeWith = (entry: CachedSchema, m: KafkaMessageLike & { value: Buffer }): DecodeResult => {
    if ('unusable' in entry) return { ...failure('undecodable', entry.unusable), unsettled: true };
    const read = entry.codec.read(m.value, CONFLUENT_HEADER_BYTES);
    return read.ok ? validate(read.raw, keyOf(m), entry.codec.timestampUnits) : read;
  };

  const decode = (m: KafkaMessageLike): DecodeResult | Promise<DecodeResult> => {
    const frame = parseConfluentFrame(m.value);
    if (!frame.ok) return frame;
    const message = m as KafkaMessageLike & { value: Buffer };
    const entry = usable(frame.schemaId);
    if (entry !== undefined) return decodeWith(entry, message);
    return load(frame.schemaId).then((loaded) => decodeWith(loaded, message));
  };

  const decodeBatch = async (
    messages: readonly KafkaMessageLike[],
    between?: () => Promise<void>,
  ): Promise<DecodeResult[]> => {
    // The batch's entries, held here: re-read from the cache, the first of more unknown ids than
    // it keeps would have been let go already, each asked again and letting the next one go.
    const entries = new Map<number, CachedSchema | undefined>();
    for (const m of messages) {
      const frame = parseConfluentFrame(m.value);
      if (frame.ok && !entries.has(frame.schemaId)) entries.set(frame.schemaId, usable(frame.schemaId));
    }
    // A few lookups at a time: a batch of junk frames is thousands of distinct ids, and one
    // request each at once swamped the registry.
    const unseen = [...entries].filter(([, e]) => e === undefined).map(([id]) => id);
    for (let i = 0; i < unseen.length; i += REGISTRY_CONCURRENCY) {
      if (i > 0) await between?.();
      await Promise.all(
        unseen.slice(i, i + REGISTRY_CONCURRENCY).map(async (id) => entries.set(id, await load(id))),
      );
    }
    return messages.map((m) => {
      const frame = parseConfluentFrame(m.value);
      if (!frame.ok) return frame;
      return decodeWith(entries.get(frame.schemaId)!, m as KafkaMessageLike & { value: Buffer });
    });
  };

  return { source, decode, decodeBatch };
}

export function avroSchemaPath(source: SourceDef, definitionsDir: string): string {
  if (source.avroSchema === undefined) {
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `source ${source.name} has format ${source.format} but no avro_schema (path of an .avsc file)`,
      { context: { source: source.name } },
    );
  }
  return resolve(definitionsDir, source.avroSchema);
}
