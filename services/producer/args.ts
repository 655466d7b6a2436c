// Command-line flags of the producer. Flags it does not know are handed to the shared config
// loader (--kafka-brokers, --topic-prefix, ...), which rejects unknown ones by name.
import { parseDuration } from '../../shared/definitions/duration.ts';
import { isKafkaTopicName } from '../../shared/definitions/schema.ts';
import { TesseraError } from '../../shared/errors.ts';

export interface ProducerArgs {
  /** Events to generate. Default 200000. */
  events: number;
  /** Messages per second, 0 = as fast as possible. Default 10000. */
  rate: number;
  /** Overrides the source's format. Default: the source's own. */
  format?: 'json' | 'avro' | 'avro-confluent';
  /** Base topic name (TESSERA_TOPIC_PREFIX is put before it). Default: the source's topic. */
  topic?: string;
  /** Generator seed. Default 1. */
  seed: number;
  /** Partitions when creating the topic. Default 6. */
  partitions: number;
  /** Create the topic if it does not exist. Default false. */
  createTopic: boolean;
  /** Definitions file. Default: TESSERA_DEFINITIONS (definitions/fraud.yaml). */
  definitions?: string;
  /** Source of the definitions file to write. Default: the first one. */
  source?: string;
  /** Extra bad messages, as a fraction of the events. Default 0. */
  badFraction: number;
  /** Shift event times so the stream ends now. Default false. */
  nowBased: boolean;
  /** avro-confluent schema id. Default: registered with the schema registry when one is
   * configured, else 1. */
  schemaId?: number;
  /** avro-confluent: directory of <id>.avsc files. */
  schemaDir?: string;
  /** Messages per send. Default 500. */
  batchSize: number;
  /** Age of `late` bad messages relative to their neighbours. Default 7d. */
  lateByMs: number;
}

export const USAGE = `usage: npx tsx services/producer/main.ts [options]
  --events N            events to generate (default 200000, at most 100000000)
  --rate N              messages per second, 0 = as fast as possible (default 10000)
  --format F            json | avro | avro-confluent (default: the source's format)
  --topic NAME          topic (default: the source's topic; TESSERA_TOPIC_PREFIX applies)
  --seed N              generator seed, 0 to 4294967295 (default 1)
  --partitions N        partitions of a created topic (default 6)
  --create-topic        create the topic first if missing
  --definitions FILE    definitions file (default TESSERA_DEFINITIONS or definitions/fraud.yaml)
  --source NAME         source of the definitions file (default: the first)
  --bad-fraction X      mix in X * events deliberately bad messages (default 0)
  --late-by DURATION    how late the 'late' bad messages are (default 7d)
  --now-based           shift event times so the stream ends at the current time
  --schema-id N         avro-confluent schema id written in each frame (default: the id the
                        schema registry gives, with --schema-registry-url, else 1)
  --schema-dir DIR      avro-confluent: <id>.avsc files (default: the source's avro_schema)
  --batch-size N        messages per send request (default 500)
  --kafka-brokers ...   and the other TESSERA_* flags (docs/local-stack.md)`;

const FORMATS = ['json', 'avro', 'avro-confluent'] as const;
const BOOLEAN_FLAGS = new Set(['--create-topic', '--now-based']);
const VALUE_FLAGS = new Set([
  '--events',
  '--rate',
  '--format',
  '--topic',
  '--seed',
  '--partitions',
  '--definitions',
  '--source',
  '--bad-fraction',
  '--late-by',
  '--schema-id',
  '--schema-dir',
  '--batch-size',
]);

function invalid(flag: string, message: string): TesseraError {
  return new TesseraError('CONFIG_INVALID', `${flag}: ${message}`, { context: { invalid: [flag] } });
}

function integer(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max)
    throw invalid(
      flag,
      `expected an integer >= ${min}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ''}, got ${JSON.stringify(text)}`,
    );
  return n;
}

/**
 * The generator holds each event's draft in typed columns (24 bytes an event) before sending:
 * past this a run needs gigabytes (a trillion failed with a raw RangeError). More: several runs
 * with other seeds.
 */
export const MAX_EVENTS = 100_000_000;
/** The generator's seed is 32 bits: 1 and 2^32 + 1 gave the same events. */
const MAX_SEED = 2 ** 32 - 1;

/**
 * Whether the command line asks for the usage: it wins over whatever else the line holds (a bad
 * value beside it included), as the services' --help does, so it is asked before parsing.
 */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** Splits argv into the producer's options and the rest (for loadConfig). */
export function parseProducerArgs(argv: readonly string[]): { args: ProducerArgs; configArgv: string[] } {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  const configArgv: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (BOOLEAN_FLAGS.has(name)) {
      flags.add(name);
    } else if (VALUE_FLAGS.has(name)) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined) throw invalid(name, 'needs a value');
      values.set(name, value);
    } else if (arg.startsWith('--')) {
      configArgv.push(arg);
      if (eq === -1 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--'))
        configArgv.push(argv[++i]!);
    } else {
      throw invalid(arg, `unexpected argument\n${USAGE}`);
    }
  }
  const get = (flag: string) => values.get(flag);
  const format = get('--format');
  if (format !== undefined && !(FORMATS as readonly string[]).includes(format)) {
    throw invalid('--format', `expected one of ${FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  }
  const badText = get('--bad-fraction') ?? '0';
  const badFraction = Number(badText);
  if (!/^[0-9.]+$/.test(badText) || !(badFraction >= 0 && badFraction <= 1)) {
    throw invalid('--bad-fraction', `expected a number between 0 and 1, got ${JSON.stringify(badText)}`);
  }
  const lateText = get('--late-by') ?? '7d';
  const lateByMs = parseDuration(lateText);
  if (lateByMs === undefined)
    throw invalid('--late-by', `expected a duration such as 2h or 7d, got ${JSON.stringify(lateText)}`);
  const optional = <K extends string>(key: K, flag: string) => {
    const v = get(flag);
    return v === undefined ? {} : ({ [key]: v } as Record<K, string>);
  };
  const schemaDir = get('--schema-dir');
  const topic = get('--topic');
  if (topic !== undefined && !isKafkaTopicName(topic))
    throw invalid(
      '--topic',
      `expected a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -, not . or ..), got ${JSON.stringify(topic)}`,
    );
  return {
    args: {
      events: integer('--events', get('--events') ?? '200000', 0, MAX_EVENTS),
      rate: integer('--rate', get('--rate') ?? '10000', 0),
      ...(format === undefined ? {} : { format: format as ProducerArgs['format'] & string }),
      ...optional('topic', '--topic'),
      seed: integer('--seed', get('--seed') ?? '1', 0, MAX_SEED),
      partitions: integer('--partitions', get('--partitions') ?? '6', 1),
      createTopic: flags.has('--create-topic'),
      ...optional('definitions', '--definitions'),
      ...optional('source', '--source'),
      badFraction,
      nowBased: flags.has('--now-based'),
      ...(get('--schema-id') === undefined
        ? {}
        : { schemaId: integer('--schema-id', get('--schema-id') as string, 0) }),
      ...(schemaDir === undefined ? {} : { schemaDir }),
      batchSize: integer('--batch-size', get('--batch-size') ?? '500', 1),
      lateByMs,
    },
    configArgv,
  };
}
