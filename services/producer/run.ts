// The producer CLI's process (started by main.ts, once kafkajs' fast paths are in place).
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAvroSchemaFile } from '../../shared/codecs/avro-codec.ts';
import { registerSchema } from '../../shared/codecs/schema-registry.ts';
import { schemaRegistryEndpoint, topicName } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { formatDuration } from '../../shared/definitions/duration.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { isTesseraError, TesseraError } from '../../shared/errors.ts';
import { parseProducerArgs, USAGE, wantsHelp } from './args.ts';
import { type ProduceProgress, produceEvents } from './produce.ts';

/** The reference Avro schema, for sources that declare none. */
const SHIPPED_SCHEMA = fileURLToPath(new URL('../../definitions/schemas/transaction.avsc', import.meta.url));

function line(p: ProduceProgress): string {
  const pct = p.total > 0 ? ` (${((100 * p.sent) / p.total).toFixed(0)}%)` : '';
  return `producer: sent ${p.sent}/${p.total}${pct}  ${Math.round(p.ratePerSec)} msg/s  elapsed ${(p.elapsedMs / 1000).toFixed(1)}s`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (wantsHelp(argv)) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { args, configArgv } = parseProducerArgs(argv);
  const config = loadConfig({ argv: configArgv });
  const definitionsFile = args.definitions ?? config.definitions;
  const definitions = loadDefinitionsFile(definitionsFile);
  const source =
    args.source === undefined
      ? definitions.sources[0]
      : definitions.sources.find((s) => s.name === args.source);
  if (source === undefined) {
    throw new TesseraError(
      'CONFIG_INVALID',
      `--source ${args.source}: no such source; declared: ${definitions.sources.map((s) => s.name).join(', ')}`,
    );
  }
  // A `late` bad message is an event moved back by --late-by from its neighbours: within a view's
  // allowed lateness it is applied, an extra transaction, though counted and labelled as late.
  const lateness = Math.max(
    0,
    ...definitions.views.filter((v) => v.source.name === source.name).map((v) => v.allowedLatenessMs),
  );
  if (args.badFraction > 0 && args.lateByMs <= lateness)
    throw new TesseraError(
      'CONFIG_INVALID',
      `--late-by ${formatDuration(args.lateByMs)} is within the allowed_lateness (${formatDuration(lateness)}) of source ${source.name}'s views: its 'late' messages would be applied; give more than ${formatDuration(lateness)}`,
    );
  const format = args.format ?? source.format;
  if (format !== 'avro-confluent' && (args.schemaId !== undefined || args.schemaDir !== undefined))
    process.stderr.write(
      `producer: --schema-id and --schema-dir are for avro-confluent; ignored for ${format}\n`,
    );
  // The reference source is JSON; Avro needs a schema: the source's own, else the one shipped in
  // the repository's definitions/schemas (wherever --definitions is).
  const avroSchema = source.avroSchema ?? (format === 'json' ? undefined : SHIPPED_SCHEMA);
  const topic = topicName(config, args.topic ?? source.topic);
  // With a schema registry, the frames carry the id it gives the schema (subject <topic>-value,
  // as Confluent's serializers): the id 1 written regardless named another schema, or none, at
  // the registry the ingestor asks, so it could not decode the messages.
  let schemaId = args.schemaId ?? 1;
  let registered: string | undefined;
  const registry = schemaRegistryEndpoint(config);
  if (format === 'avro-confluent' && args.schemaId === undefined && registry !== undefined) {
    const subject = `${topic}-value`;
    const text = readAvroSchemaFile(resolve(dirname(definitionsFile), avroSchema as string), source);
    schemaId = await registerSchema(registry, subject, text);
    registered = subject;
  }

  const controller = new AbortController();
  let stops = 0;
  const stop = (signal: NodeJS.Signals) => {
    stops++;
    if (stops > 1) process.exit(130); // a second Ctrl-C: do not wait for the flush
    process.stderr.write(`producer: ${signal}, flushing and stopping\n`);
    controller.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const summary = await produceEvents({
    config,
    topic,
    source: { ...source, format, ...(avroSchema === undefined ? {} : { avroSchema }) },
    definitionsDir: dirname(definitionsFile),
    schemaId,
    // A registered id names the source's schema: a file of the same id in --schema-dir is not it.
    ...(args.schemaDir === undefined || registered !== undefined ? {} : { schemaDir: args.schemaDir }),
    events: args.events,
    seed: args.seed,
    rate: args.rate,
    batchSize: args.batchSize,
    createTopic: args.createTopic,
    partitions: args.partitions,
    warn: (message) => process.stderr.write(`producer: ${message}\n`),
    badFraction: args.badFraction,
    nowBased: args.nowBased,
    lateByMs: args.lateByMs,
    signal: controller.signal,
    onProgress: (p) => process.stderr.write(`${line(p)}\n`),
  });
  const bad = Object.entries(summary.bad)
    .map(([reason, n]) => `${reason}=${n}`)
    .join(' ');
  process.stdout.write(
    `produced ${summary.sent} messages (${summary.good} events${bad ? `, bad: ${bad}` : ''}) to ${summary.topic} as ${summary.format} ` +
      `in ${(summary.elapsedMs / 1000).toFixed(1)}s, ${Math.round(summary.ratePerSec)} msg/s` +
      `${registered === undefined ? '' : `, schema id ${schemaId} (registry subject ${registered})`}` +
      `${summary.shiftMs !== 0 ? `, times shifted by ${summary.shiftMs} ms` : ''}${summary.aborted ? ', stopped early' : ''}\n`,
  );
}

/** Exit 2: the command line, the configuration or the definitions are wrong, or the topic is
 * missing; 1: a failure while running (Kafka unreachable). Every error exited 1. */
const USAGE_ERRORS = new Set(['CONFIG_INVALID', 'DEFINITIONS_INVALID', 'NOT_FOUND']);

main().catch((error: unknown) => {
  process.stderr.write(
    `producer: ${isTesseraError(error) || error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(isTesseraError(error) && USAGE_ERRORS.has(error.code) ? 2 : 1);
});
