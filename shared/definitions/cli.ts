// `npx tsx shared/definitions/cli.ts <file> [--mode exact|tiled]`: validates a definitions file
// and prints what it declares (exit 0), or the errors (exit 1); a wrong command line exits 2.
// `... cli.ts plan <old> <new>`: what changing the definitions does (plan-command.ts).
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { assertCoversSource, loadAvroSchemaFile } from '../codecs/avro-codec.ts';
import { avroSchemaPath } from '../codecs/decode.ts';
import { isTesseraError } from '../errors.ts';
import { formatDuration } from './duration.ts';
import { loadDefinitionsFile } from './load.ts';
import { planCommand } from './plan-command.ts';

const USAGE = `usage: npx tsx shared/definitions/cli.ts [<definitions file>] [--mode exact|tiled]
       npx tsx shared/definitions/cli.ts plan <old definitions> <new definitions> [--mode exact|tiled] [--redis] [--json]`;

if (process.argv[2] === 'plan') process.exit(await planCommand(process.argv.slice(3)));

/** A wrong command line names what was wrong; before, a typo in --mode was silently ignored. */
function usage(problem: string): never {
  console.error(`${problem}\n${USAGE}`);
  process.exit(2);
}

const OPTIONS = { mode: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
let parsed: ReturnType<typeof parseArgs<{ allowPositionals: true; options: typeof OPTIONS }>>;
try {
  parsed = parseArgs({ allowPositionals: true, options: OPTIONS });
} catch (error) {
  usage((error as Error).message);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (positionals.length > 1) usage(`one definitions file at a time, got ${positionals.join(' ')}`);
if (values.mode !== undefined && values.mode !== 'exact' && values.mode !== 'tiled')
  usage(`--mode must be exact or tiled, not ${values.mode}`);
const file = positionals[0] ?? process.env.TESSERA_DEFINITIONS ?? 'definitions/fraud.yaml';
const mode = values.mode;
try {
  const defs = loadDefinitionsFile(file, mode ? { mode } : {});
  console.log(`${file}: project ${defs.project}, definitions hash ${defs.hash}`);
  for (const view of defs.views) {
    console.log(
      `view ${view.name}: entity ${view.entity.name} (${view.entity.joinKey}: ${view.entity.keyType}), source ${view.source.name} (topic ${view.source.topic}, ${view.source.format})`,
    );
    console.log(
      `  allowed lateness ${formatDuration(view.allowedLatenessMs)}, ttl ${formatDuration(view.ttlMs)}, max events/entity ${view.maxEventsPerEntity}`,
    );
    for (const f of view.features) {
      const col = f.column ? `(${f.column})` : '';
      const tile = f.mode === 'tiled' ? ` tile ${formatDuration(f.tileMs)}` : '';
      console.log(
        `  ${f.ref}: ${f.aggregation}${col} over ${formatDuration(f.windowMs)}, ${f.mode}${tile}, default ${JSON.stringify(f.default)}`,
      );
    }
  }
  for (const [name, refs] of defs.featureServices)
    console.log(`feature service ${name}: ${refs.length} features`);
  // A missing or short .avsc stopped the services at start, after a clean bill from here.
  for (const source of defs.sources) {
    if (source.avroSchema === undefined) continue;
    const path = avroSchemaPath(source, dirname(file));
    assertCoversSource(loadAvroSchemaFile(path, source), source);
    console.log(`source ${source.name}: Avro schema ${path} holds its columns`);
  }
} catch (error) {
  console.error(isTesseraError(error) ? error.message : error);
  process.exit(1);
}
