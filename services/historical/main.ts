// `tessera historical`: builds a point-in-time training set from the raw event log in the offline
// store (docs/offline-retrieval.md). Flags below; S3 endpoint and credentials come from the usual
// TESSERA_S3_* variables (shared/config), the definitions from --definitions or TESSERA_DEFINITIONS.
//
//   npx tsx services/historical/main.ts --entities labels.csv --out train.parquet \
//     [--store s3://bucket/prefix | /local/dir] [--view name] [--features view:f,...]
//     [--feature-service name] [--full-feature-names] [--include-late]
import { parseArgs } from 'node:util';
import { cliErrorLine, cliExitCode } from '../../shared/cli-exit.ts';
import { s3Options } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { TesseraError } from '../../shared/errors.ts';
import { offlineStoreUri } from '../../shared/offline/configured-store.ts';
import { openObjectStore } from '../../shared/offline/object-store.ts';
import { retrieveHistorical } from '../../shared/pit/retrieve.ts';

const USAGE = `usage: npx tsx services/historical/main.ts --entities <file.csv|file.parquet> --out <file.parquet|file.csv>
         [--store s3://bucket/prefix | /local/dir] [--view <name>] [--features view:f,...]
         [--feature-service <name>] [--full-feature-names] [--include-late]
         [--definitions definitions/fraud.yaml] [--mode exact|tiled] [--shard-events 4000000]
         [--temp-dir DIR] [--quiet]

  --entities      entity dataframe: ${'<join keys>'},event_timestamp[,label...] (the join key of every
                  view asked for; other columns pass through); timestamps ISO-8601 (no zone = UTC)
                  or epoch milliseconds
  --out           training set to write (.parquet or .csv), rows in input order: join keys,
                  event_timestamp, the other columns, then the features in the order asked for
  --store         offline store holding raw/<source>/date=YYYY-MM-DD/*.parquet
                  (default $TESSERA_OFFLINE_STORE, else s3://$TESSERA_S3_BUCKET with an S3
                  endpoint configured, else the local directory offline-store/)
  --view          feature view: all its features, or the view of --features names without view:
                  (default: the view of --features, or the only view)
  --features      comma-separated view:feature or feature names, of one view or several
                  (default: all of the view)
  --feature-service  the features of a feature service of the definitions, in its order
                  (instead of --features and --view)
  --full-feature-names  name the feature columns view__feature (Feast's full_feature_names);
                  needed when two views have a feature of the same name
  --include-late  count the raw events the ingestor refused as late (what happened); by default
                  they are left out, as online left them out (the flusher's late marks)
  --mode          force every feature into one window mode (default: as declared)
  --shard-events  target raw events per in-memory shard: the memory bound (default 4000000)
  --temp-dir      where shard spill files go (default the OS temp dir)
  --quiet         no progress on stderr

exit 0 done, 2 bad input (flags, files, a store without the raw log), 1 failure while running,
130 stopped by Ctrl-C / SIGTERM (spill files and partial output removed)`;

/** Aborted by Ctrl-C or SIGTERM: the run stops, cleans up, and the process exits 130. */
const stopped = new AbortController();

async function main(): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse();
  } catch (error) {
    process.stderr.write(`tessera historical: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!args.entities || !args.out) {
    process.stderr.write(`tessera historical: --entities and --out are required\n${USAGE}\n`);
    return 2;
  }
  // Environment only: this command's own flags are not configuration options.
  const config = loadConfig({ argv: [] });
  const mode = args.mode;
  if (mode !== undefined && mode !== 'exact' && mode !== 'tiled')
    throw new TesseraError('INVALID_ARGUMENT', `--mode ${mode}: use exact or tiled`);
  const shardEvents = args['shard-events'] === undefined ? undefined : Number(args['shard-events']);
  if (shardEvents !== undefined && !(Number.isInteger(shardEvents) && shardEvents > 0))
    throw new TesseraError('INVALID_ARGUMENT', `--shard-events ${args['shard-events']}: a positive integer`);
  // An empty --features or --view ("", ",": an unset shell variable) ran with every feature of
  // the view and exit 0, as if the flag were absent.
  const features = args.features
    ?.split(',')
    .map((f) => f.trim())
    .filter(Boolean);
  if (features !== undefined && features.length === 0)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `--features ${JSON.stringify(args.features)} names no feature; pass view:feature[,...], or leave --features out for every feature of the view`,
    );
  if (args.view !== undefined && args.view.trim() === '')
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `--view ${JSON.stringify(args.view)} names no view; pass a feature view's name, or leave --view out`,
    );
  const definitions = loadDefinitionsFile(args.definitions ?? config.definitions, mode ? { mode } : {});
  const store = openObjectStore(args.store ?? offlineStoreUri(config), s3Options(config));
  // Ctrl-C / SIGTERM: the run stops at its next check and removes its spill files and its
  // unfinished output (killed outright, it left both behind); a second signal exits at once.
  const stop = (signal: NodeJS.Signals) => {
    if (stopped.signal.aborted) process.exit(130);
    process.stderr.write(
      `tessera historical: ${signal}, stopping: removing spill files and partial output\n`,
    );
    stopped.abort(new Error(`stopped by ${signal}; nothing was written to --out`));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const summary = await retrieveHistorical({
    store,
    definitions,
    entities: args.entities,
    out: args.out,
    ...(args.view !== undefined ? { view: args.view } : {}),
    ...(args['feature-service'] !== undefined ? { featureService: args['feature-service'] } : {}),
    ...(args['full-feature-names'] ? { fullFeatureNames: true } : {}),
    ...(args['include-late'] ? { includeLate: true } : {}),
    ...(features ? { features } : {}),
    ...(shardEvents ? { maxShardEvents: shardEvents } : {}),
    ...(args['temp-dir'] !== undefined ? { tempDir: args['temp-dir'] } : {}),
    progress: !args.quiet,
    signal: stopped.signal,
  });
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return 0;
}

function parse() {
  return parseArgs({
    options: {
      entities: { type: 'string' },
      out: { type: 'string' },
      store: { type: 'string' },
      view: { type: 'string' },
      features: { type: 'string' },
      'feature-service': { type: 'string' },
      'full-feature-names': { type: 'boolean', default: false },
      'include-late': { type: 'boolean', default: false },
      definitions: { type: 'string' },
      mode: { type: 'string' },
      'shard-events': { type: 'string' },
      'temp-dir': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // Exit codes: docs/offline-retrieval.md.
    const message = stopped.signal.aborted
      ? String((stopped.signal.reason as Error).message)
      : cliErrorLine(error);
    process.stderr.write(`tessera historical: ${message}\n`);
    process.exitCode = stopped.signal.aborted ? 130 : cliExitCode(error);
  },
);
