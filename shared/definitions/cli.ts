// `npx tsx shared/definitions/cli.ts <file> [--mode exact|tiled]`: validates a definitions file
// and prints what it declares, or the errors (exit 1).
import { parseArgs } from 'node:util';
import { isTesseraError } from '../errors.ts';
import { formatDuration } from './duration.ts';
import { loadDefinitionsFile } from './load.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { mode: { type: 'string' } } });
const file = positionals[0] ?? process.env.TESSERA_DEFINITIONS ?? 'definitions/fraud.yaml';
const mode = values.mode === 'exact' || values.mode === 'tiled' ? values.mode : undefined;
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
