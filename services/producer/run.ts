// The producer CLI's process (started by main.ts, once kafkajs' fast paths are in place).
import { dirname } from 'node:path';
import { topicName } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { parseProducerArgs, USAGE } from './args.ts';
import { type ProduceProgress, produceEvents } from './produce.ts';

function line(p: ProduceProgress): string {
  const pct = p.total > 0 ? ` (${((100 * p.sent) / p.total).toFixed(0)}%)` : '';
  return `producer: sent ${p.sent}/${p.total}${pct}  ${Math.round(p.ratePerSec)} msg/s  elapsed ${(p.elapsedMs / 1000).toFixed(1)}s`;
}

async function main(): Promise<void> {
  const { args, configArgv } = parseProducerArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const config = loadConfig({ argv: configArgv });
  const definitionsFile = args.definitions ?? config.definitions;
  const definitions = loadDefinitionsFile(definitionsFile);
  const source =
    args.source === undefined
      ? definitions.sources[0]
      : definitions.sources.find((s) => s.name === args.source);
  if (source === undefined) {
    throw new Error(
      `--source ${args.source}: no such source; declared: ${definitions.sources.map((s) => s.name).join(', ')}`,
    );
  }
  const format = args.format ?? source.format;
  // The reference source is JSON; Avro needs a schema: the source's own, else the shipped one.
  const avroSchema = source.avroSchema ?? (format === 'json' ? undefined : 'schemas/transaction.avsc');
  const topic = topicName(config, args.topic ?? source.topic);

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
    schemaId: args.schemaId,
    ...(args.schemaDir === undefined ? {} : { schemaDir: args.schemaDir }),
    events: args.events,
    seed: args.seed,
    rate: args.rate,
    batchSize: args.batchSize,
    createTopic: args.createTopic,
    partitions: args.partitions,
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
      `${summary.shiftMs !== 0 ? `, times shifted by ${summary.shiftMs} ms` : ''}${summary.aborted ? ', stopped early' : ''}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `producer: ${isTesseraError(error) || error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
