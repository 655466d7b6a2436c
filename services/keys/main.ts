// `tessera keys`: lists what the online store holds under TESSERA_REDIS_KEY_PREFIX against the
// definitions, and deletes what the flags name (docs/ingestor.md, "Online store keys"). Redis
// from the usual TESSERA_REDIS_* variables (shared/config); a report on stdout, progress on stderr.
//
//   npx tsx services/keys/main.ts [--definitions F] [--delete-undefined-views] [--delete-other-layout]
//       [--delete-corrupt] [--delete-view NAME ...] [--dry-run] [--json] [--quiet]
import { parseArgs } from 'node:util';
import { cliErrorLine, cliExitCode } from '../../shared/cli-exit.ts';
import { type Config, loadConfig, redactConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { TesseraError } from '../../shared/errors.ts';
import { connectRedis, type RedisClient } from '../../shared/state-store/redis-client.ts';
import { type DeleteChoice, type Inventory, takeInventory } from './inventory.ts';

const USAGE = `usage: npx tsx services/keys/main.ts [--definitions definitions/fraud.yaml] [--delete-undefined-views]
         [--delete-other-layout] [--delete-corrupt] [--delete-view NAME]... [--dry-run] [--json] [--quiet]

Counts the entity states under TESSERA_REDIS_KEY_PREFIX view by view:
  current          states the definitions read
  other layout     states of a defined view written under other definitions (refused as STATE_CORRUPT)
  corrupt          states that do not decode (a damaged header, or the current layout's body)
  undefined view   states of a view the definitions no longer have
  foreign          keys under the prefix that are not Tessera states (never deleted)

  --definitions             definitions file (default $TESSERA_DEFINITIONS)
  --delete-undefined-views  delete the states of views the definitions do not have
  --delete-other-layout     delete the states written under other definitions: their entities
                            start empty until the source is replayed (docs/ingestor.md)
  --delete-corrupt          delete the states that do not decode
  --delete-view NAME        delete every state of view NAME (repeatable)
  --dry-run                 count what would be deleted, delete nothing
  --json                    the report as one JSON object
  --quiet                   no progress on stderr

A state is deleted only if no writer changed it since it was read. Stop the ingestors that still
run older definitions first: they would write those states again.
exit 0 done, 2 bad input (flags, definitions, configuration), 1 failure (Redis)`;

async function main(): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse();
  } catch (error) {
    process.stderr.write(`tessera keys: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // Environment only: this command's own flags are not configuration options.
  const config = loadConfig({ argv: [] });
  const definitions = loadDefinitionsFile(args.definitions ?? config.definitions);
  const views = new Set(args['delete-view'] ?? []);
  const remove: DeleteChoice = {
    undefinedViews: args['delete-undefined-views'],
    otherLayout: args['delete-other-layout'],
    corrupt: args['delete-corrupt'],
    views,
  };
  const deleting = remove.undefinedViews || remove.otherLayout || remove.corrupt || views.size > 0;
  if (args['dry-run'] && !deleting) {
    process.stderr.write(`tessera keys: --dry-run needs a --delete-* flag\n${USAGE}\n`);
    return 2;
  }
  const redis = connectRedis(config, { maxRetriesPerRequest: 1 });
  // ioredis reports the cause ("ECONNREFUSED") as an event, and fails commands with a vaguer one.
  let lastError: Error | undefined;
  redis.on('error', (error: Error) => {
    lastError = error;
  });
  const started = Date.now();
  let lastProgress = started;
  try {
    await reachable(redis, () => lastError, config);
    const inventory = await takeInventory({
      redis,
      definitions,
      prefix: config.redisKeyPrefix,
      ...(deleting ? { remove } : {}),
      dryRun: args['dry-run'],
      onPage: (seen, deleted) => {
        if (args.quiet || Date.now() - lastProgress < 1000) return;
        lastProgress = Date.now();
        process.stderr.write(
          `tessera keys: ${seen.toLocaleString('en-US')} keys read, ${deleted.toLocaleString('en-US')} ${args['dry-run'] ? 'to delete' : 'deleted'}, ${((lastProgress - started) / 1000).toFixed(0)} s\n`,
        );
      },
    });
    // A misspelt --delete-view deletes nothing: say so rather than report success quietly.
    for (const view of views)
      if (!inventory.views.some((v) => v.view === view))
        process.stderr.write(
          `tessera keys: --delete-view ${view}: no states of that view under "${config.redisKeyPrefix}"\n`,
        );
    process.stdout.write(
      args.json
        ? `${JSON.stringify({ prefix: config.redisKeyPrefix, dryRun: args['dry-run'], ...inventory })}\n`
        : report(config.redisKeyPrefix, inventory, deleting, args['dry-run']),
    );
    return 0;
  } finally {
    redis.disconnect();
  }
}

/**
 * Fails fast, naming the option to check, when Redis does not answer a PING within 5 s: ioredis
 * would otherwise keep reconnecting (a Cluster queues commands until it has a slot map).
 */
async function reachable(
  redis: RedisClient,
  lastError: () => Error | undefined,
  config: Config,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer to PING in 5 s')), 5000);
  });
  try {
    await Promise.race([redis.ping(), timeout]);
  } catch (cause) {
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `cannot reach Redis at ${redactConfig(config).redisUrl} (${(lastError() ?? (cause as Error)).message}): check TESSERA_REDIS_URL${config.redisCluster ? ' and TESSERA_REDIS_CLUSTER' : ''}`,
      { cause },
    );
  } finally {
    clearTimeout(timer);
  }
}

function report(prefix: string, inv: Inventory, deleting: boolean, dryRun: boolean): string {
  const header = ['view', 'defined', 'current', 'other layout', 'corrupt', 'undefined view', 'foreign'];
  if (deleting) header.push(dryRun ? 'would delete' : 'deleted');
  const rows = inv.views.map((v) => {
    const row = [
      v.view,
      v.defined ? 'yes' : 'no',
      ...(['current', 'other-layout', 'corrupt', 'undefined-view', 'foreign'] as const).map((s) =>
        v.counts[s].toLocaleString('en-US'),
      ),
    ];
    if (deleting) row.push(v.deleted.toLocaleString('en-US'));
    return row;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const lines = [
    `keys under "${prefix}:{": ${inv.seen.toLocaleString('en-US')}`,
    line(header),
    ...rows.map(line),
  ];
  if (inv.untagged > 0)
    lines.push(
      `${inv.untagged.toLocaleString('en-US')} keys under the prefix without a {view:entity} tag (left alone)`,
    );
  if (deleting)
    lines.push(
      dryRun
        ? `dry run: ${inv.deleted.toLocaleString('en-US')} keys would be deleted`
        : `deleted ${inv.deleted.toLocaleString('en-US')} keys; ${inv.skipped.toLocaleString('en-US')} left because a writer changed them (or they expired) after they were read`,
    );
  return `${lines.join('\n')}\n`;
}

function parse() {
  return parseArgs({
    options: {
      definitions: { type: 'string' },
      'delete-undefined-views': { type: 'boolean', default: false },
      'delete-other-layout': { type: 'boolean', default: false },
      'delete-corrupt': { type: 'boolean', default: false },
      'delete-view': { type: 'string', multiple: true },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`tessera keys: ${cliErrorLine(error)}\n`);
    process.exitCode = cliExitCode(error);
  },
);
