// The feature-definitions file format: a zod schema for what users write, and the compiled,
// typed form (durations in ms, defaults filled in) that the engine and services consume.
import { z } from 'zod';
import { parseDuration } from './duration.ts';

export const AGGREGATIONS = [
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'count_distinct',
  'approx_count_distinct',
  'first',
  'last',
  'stddev',
  'variance',
  'last_n',
] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

/** Aggregations over a numeric column; the others accept any column type. */
export const NUMERIC_AGGREGATIONS: ReadonlySet<Aggregation> = new Set([
  'sum',
  'avg',
  'min',
  'max',
  'stddev',
  'variance',
]);

export const COLUMN_TYPES = ['int64', 'double', 'string', 'timestamp', 'bool'] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];

const NAME_RE = /^[a-z_][a-z0-9_]*$/;
// `__proto__` is snake_case but not a usable key: a column of that name vanished from the parsed
// schema, and a feature of that name from every object the services build per feature.
const name = z
  .string()
  .regex(NAME_RE, 'must be snake_case: lower-case letters, digits and _')
  .refine((s) => s !== '__proto__', 'must not be __proto__ (a reserved JavaScript key); choose another name');
/** Kafka's rule for a topic name (its Topic.validate): these characters, and not `.` or `..`. */
const TOPIC_CHARACTERS = /^[a-zA-Z0-9._-]{1,249}$/;
const DOT_TOPICS: ReadonlySet<string> = new Set(['.', '..']);
export const isKafkaTopicName = (name: string): boolean =>
  TOPIC_CHARACTERS.test(name) && !DOT_TOPICS.has(name);

const DURATION_HELP =
  'must be a positive duration such as 90s, 5m, 1h, 7d or 2w (one whole number above 0 and its unit)';
const duration = z
  .string({ invalid_type_error: DURATION_HELP })
  .refine((s) => parseDuration(s) !== undefined, { message: DURATION_HELP });

const featureSchema = z
  .object({
    name,
    aggregation: z.enum(AGGREGATIONS),
    column: name.optional(),
    window: duration,
    /** exact: identical to the oracle; tiled: window start rounded down to `tile`. */
    mode: z.enum(['exact', 'tiled']).optional(),
    tile: duration.optional(),
    // Finite only: `.inf` (or 1e400) was served as Infinity, and hashed as `null`.
    default: z
      .union([z.number().finite('must be a finite number'), z.string(), z.null()], {
        errorMap: () => ({ message: 'must be a finite number, a string or null' }),
      })
      .optional(),
    /** last_n only: how many values. */
    n: z.number().int().min(1).max(1000).optional(),
    /** approx_count_distinct only: HyperLogLog precision (registers = 2^precision). */
    precision: z.number().int().min(4).max(16).optional(),
    description: z.string().optional(),
  })
  .strict();

const viewSchema = z
  .object({
    name,
    entity: name,
    source: name,
    mode: z.enum(['exact', 'tiled']).default('exact'),
    allowed_lateness: duration.default('1h'),
    ttl: duration.optional(),
    max_events_per_entity: z.number().int().min(1).max(10_000_000).default(100_000),
    /** Serving: a value older than this is reported OUTSIDE_MAX_AGE. */
    max_age: duration.optional(),
    features: z.array(featureSchema).min(1),
    description: z.string().optional(),
  })
  .strict();

export const definitionsSchema = z
  .object({
    version: z.literal(1),
    project: name,
    entities: z
      .array(
        z
          .object({
            name,
            join_key: name,
            type: z.enum(['int64', 'string']),
            description: z.string().optional(),
          })
          .strict(),
      )
      .min(1),
    sources: z
      .array(
        z
          .object({
            name,
            // Kafka's own rule for topic names: a topic the broker refuses stopped the services at start.
            topic: z
              .string()
              .regex(TOPIC_CHARACTERS, 'must be a Kafka topic name: 1-249 of a-z A-Z 0-9 . _ -')
              .refine((t) => !DOT_TOPICS.has(t), 'must not be . or .. (Kafka refuses them)'),
            format: z.enum(['json', 'avro', 'avro-confluent']),
            key_field: name,
            timestamp_field: name,
            timestamp_format: z.enum(['epoch_ms', 'epoch_s', 'iso8601']).default('iso8601'),
            /**
             * avro (required) and avro-confluent (what the producer and /push register when the
             * registry has no schema): path of the .avsc file, relative to the definitions file.
             */
            avro_schema: z.string().optional(),
            schema: z.record(name, z.enum(COLUMN_TYPES)),
          })
          .strict(),
      )
      .min(1),
    views: z.array(viewSchema).min(1),
    feature_services: z.array(z.object({ name, features: z.array(z.string()).min(1) }).strict()).default([]),
  })
  .strict();

export type DefinitionsInput = z.input<typeof definitionsSchema>;
export type DefinitionsParsed = z.output<typeof definitionsSchema>;

// ---- compiled form -------------------------------------------------------------------------

export type EntityKeyType = 'int64' | 'string';

export interface EntityDef {
  name: string;
  joinKey: string;
  keyType: EntityKeyType;
}

export interface SourceDef {
  name: string;
  topic: string;
  format: 'json' | 'avro' | 'avro-confluent';
  keyField: string;
  timestampField: string;
  timestampFormat: 'epoch_ms' | 'epoch_s' | 'iso8601';
  avroSchema?: string;
  schema: Record<string, ColumnType>;
  /**
   * int64 columns a numeric aggregation (sum, avg, min, max, stddev, variance) of some view reads:
   * their values must be numbers, so values beyond 2^53 (carried as decimal strings elsewhere) are
   * refused there instead of being left out of the aggregate. Filled by the definitions loader.
   */
  numericInt64Columns?: readonly string[];
}

export type FeatureDefault = number | string | null;

export interface FeatureDef {
  name: string;
  /** `view:feature`, the name clients ask for. */
  ref: string;
  aggregation: Aggregation;
  column: string | null;
  windowMs: number;
  mode: 'exact' | 'tiled';
  /** Tile (hop) size; 0 in exact mode. */
  tileMs: number;
  default: FeatureDefault;
  n: number;
  precision: number;
}

/**
 * Feast's full feature name, `view__feature` (its `full_feature_names`): the column or response
 * name of a feature wherever full names are asked for (server, point-in-time retrieval).
 */
export function fullFeatureName(view: string, feature: string): string {
  return `${view}__${feature}`;
}

export interface ViewDef {
  name: string;
  entity: EntityDef;
  source: SourceDef;
  allowedLatenessMs: number;
  ttlMs: number;
  maxEventsPerEntity: number;
  maxAgeMs: number | null;
  features: FeatureDef[];
}

export interface Definitions {
  project: string;
  /** Content hash of the normalized definitions: identifies a definitions version. */
  hash: string;
  file: string;
  entities: EntityDef[];
  sources: SourceDef[];
  views: ViewDef[];
  featureServices: Map<string, string[]>;
}
