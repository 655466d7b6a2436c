// `npx tsx shared/definitions/cli.ts <file> [--mode exact|tiled]`: validates a definitions file
// and prints what it declares (exit 0), or the errors (exit 1); a wrong command line exits 2.
import { parseArgs } from 'node:util';
import { isTesseraError } from '../errors.ts';
import { formatDuration } from './duration.ts';
import { loadDefinitionsFile } from './load.ts';

const USAGE = 'usage: npx tsx shared/definitions/cli.ts [<definitions file>] [--mode exact|tiled]';

/** A wrong command line names what was wrong; before, a typo in --mode was silently ignored. */
function usage(problem: string): never {
  console.error(`${problem}\n${USAGE}`);
  process.exit(2);
}

let parsed: ReturnType<typeof parseArgs<{ allowPositionals: true; options: { mode: { type: 'string' } } }>>;
try {
  parsed = parseArgs({ allowPositionals: true, options: { mode: { type: 'string' } } });
} catch (error) {
  usage((error as Error).message);
}
const { values, positionals } = parsed;
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
} catch (error) {
  console.error(isTesseraError(error) ? error.message : error);
  process.exit(1);
}
