// `npx tsx shared/definitions/cli.ts plan <old> <new> [--mode exact|tiled] [--redis] [--json]`:
// what replacing the old definitions with the new ones does, view by view (change-plan.ts), and
// with --redis how many states of each view the new definitions would read or refuse.
// Exit 0 nothing to rebuild, 3 a rebuild is needed, 2 bad input, 1 a failure (Redis).
import { parseArgs } from 'node:util';
import { takeInventory, type ViewKeys } from '../../services/keys/inventory.ts';
import { cliErrorLine, cliExitCode } from '../cli-exit.ts';
import { loadConfig, redactConfig } from '../config/index.ts';
import { TesseraError } from '../errors.ts';
import { connectRedis } from '../state-store/redis-client.ts';
import { type ChangePlan, isoDuration, planChange, spelledDuration, type ViewChange } from './change-plan.ts';
import { type CompileOptions, loadDefinitionsFile } from './load.ts';

export const PLAN_USAGE = `usage: npx tsx shared/definitions/cli.ts plan <old definitions> <new definitions> [--mode exact|tiled] [--redis] [--json]
  --mode   force every feature of both files into one mode (as the services' --mode)
  --redis  count each view's states under TESSERA_REDIS_KEY_PREFIX (TESSERA_REDIS_URL) by layout
  --json   the plan as one JSON object
exit 0 no rebuild needed, 3 a rebuild is needed (docs/ingestor.md, "Rebuilding a view"),
2 bad input (command line, definitions), 1 a failure (Redis)`;

/** Exit code when some view's states are refused, stale or short of history. */
export const REBUILD_NEEDED = 3;

const WHAT: Record<ViewChange['kind'], string> = {
  rebuild:
    'REBUILD: its state layout changed; the ingestor and the server refuse every state written before (STATE_CORRUPT, the ingestor exits 1)',
  source:
    'REBUILD (source): its states stay readable, but hold what the old source gave (below), which the new definitions would read wrong',
  history:
    'REBUILD (history): its states stay readable, but a longer window (or lateness) reads only what they hold, undercounting until the new span has passed',
  'read-side': 'no rebuild: only reading or expiry changes; states stay as they are',
  added: 'added: its states start empty (replay its source the same way to fill its windows now)',
  removed:
    'removed: its states are no longer read; they expire after their ttl (or npx tsx services/keys/main.ts --delete-undefined-views)',
  unchanged: 'unchanged',
};

export async function planCommand(argv: string[]): Promise<number> {
  let values: { mode?: string; redis: boolean; json: boolean; help: boolean };
  let files: string[];
  try {
    const parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        mode: { type: 'string' },
        redis: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    values = parsed.values;
    files = parsed.positionals;
  } catch (error) {
    return usage((error as Error).message);
  }
  if (values.help) {
    console.log(PLAN_USAGE);
    return 0;
  }
  if (files.length !== 2)
    return usage(`plan takes the old and the new definitions file, got ${files.length}`);
  if (values.mode !== undefined && values.mode !== 'exact' && values.mode !== 'tiled')
    return usage(`--mode must be exact or tiled, not ${values.mode}`);
  const forced = values.mode;
  const mode: CompileOptions = forced === 'exact' || forced === 'tiled' ? { mode: forced } : {};
  try {
    const before = loadDefinitionsFile(files[0]!, mode);
    const after = loadDefinitionsFile(files[1]!, mode);
    const plan = planChange(before, after);
    const keys = values.redis ? await countStates(after) : null;
    // States the new definitions would refuse are there whatever the files say (a deployment of
    // other definitions before the old file, a damaged key): the ingestor exits 1 at the first.
    const refused = keys ? refusedStates(plan, keys.views) : 0;
    const checked: ChangePlan = { ...plan, rebuildNeeded: plan.rebuildNeeded || refused > 0 };
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ ...checked, redis: keys && { prefix: keys.prefix, views: keys.views, refused } })}\n`
        : report(files, checked, keys),
    );
    return checked.rebuildNeeded ? REBUILD_NEEDED : 0;
  } catch (error) {
    process.stderr.write(`${cliErrorLine(error)}\n`);
    return cliExitCode(error);
  }
}

function usage(problem: string): number {
  process.stderr.write(`${problem}\n${PLAN_USAGE}\n`);
  return 2;
}

/** Each view's states under the configured prefix, sorted by the new definitions (read only). */
async function countStates(after: Parameters<typeof planChange>[1]) {
  const config = loadConfig({ argv: [] });
  const redis = connectRedis(config, { maxRetriesPerRequest: 1 });
  let lastError: Error | undefined;
  redis.on('error', (error: Error) => {
    lastError = error;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer to PING in 5 s')), 5000);
      }),
    ]).catch((cause: Error) => {
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `cannot reach Redis at ${redactConfig(config).redisUrl} (${(lastError ?? cause).message}): check TESSERA_REDIS_URL, or leave out --redis`,
        { cause },
      );
    });
    const inventory = await takeInventory({ redis, definitions: after, prefix: config.redisKeyPrefix });
    return { prefix: config.redisKeyPrefix, views: inventory.views };
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/** States of the new definitions' views that they would refuse: other layout or corrupt. */
function refusedStates(plan: ChangePlan, views: readonly ViewKeys[]): number {
  let refused = 0;
  for (const v of plan.views) {
    if (v.kind === 'removed') continue;
    const k = views.find((x) => x.view === v.view);
    refused += (k?.counts['other-layout'] ?? 0) + (k?.counts.corrupt ?? 0);
  }
  return refused;
}

const n = (x: number) => x.toLocaleString('en-US');

/** Offline column changes as `+name type`, `-name type`, `name a -> b`. */
function columnChanges(v: ViewChange): string[] {
  const parse = (cols: string[]) => new Map(cols.map((c) => c.split(' ') as [string, string]));
  const b = parse(v.columns.before);
  const a = parse(v.columns.after);
  const out: string[] = [];
  for (const [name, type] of b) if (!a.has(name)) out.push(`-${name} ${type}`);
  for (const [name, type] of a) {
    const was = b.get(name);
    if (was === undefined) out.push(`+${name} ${type}`);
    else if (was !== type) out.push(`${name} ${was} -> ${type}`);
  }
  if (out.length === 0 && v.columns.changed) out.push('same columns, another order');
  return out;
}

function report(
  files: string[],
  plan: ChangePlan,
  keys: { prefix: string; views: ViewKeys[] } | null,
): string {
  const lines = [
    `${files[0]} -> ${files[1]}`,
    `definitions hash ${plan.hash.before} -> ${plan.hash.after}${plan.hash.before === plan.hash.after ? ' (same)' : ''}`,
  ];
  const hex = (f: number | null) => (f === null ? 'none' : f.toString(16).padStart(8, '0'));
  for (const v of plan.views) {
    lines.push(`view ${v.view}: ${WHAT[v.kind]}`);
    if (v.kind !== 'unchanged')
      lines.push(`  state layout fingerprint ${hex(v.fingerprint.before)} -> ${hex(v.fingerprint.after)}`);
    for (const c of v.changes) lines.push(`  ${c}`);
    const cols = columnChanges(v);
    lines.push(
      cols.length === 0
        ? '  offline columns (features.parquet, training rows, pushed vectors): unchanged'
        : `  offline columns (features.parquet, training rows, pushed vectors) change: ${cols.join(', ')}`,
    );
    if (v.replayMs !== null && v.kind !== 'added')
      lines.push(
        `  to rebuild: stop its ingestors, npx tsx services/keys/main.ts --delete-view ${v.view}, replay its source from now - ${spelledDuration(v.replayMs)} (kafka-consumer-groups.sh --reset-offsets --by-duration ${isoDuration(v.replayMs)}), with TESSERA_INGEST_CLOCK=event until caught up`,
      );
    const k = keys?.views.find((x) => x.view === v.view);
    if (keys && v.kind !== 'removed') {
      const current = k?.counts.current ?? 0;
      const other = k?.counts['other-layout'] ?? 0;
      const corrupt = k?.counts.corrupt ?? 0;
      lines.push(
        `  redis (${keys.prefix}): ${n(current)} states the new definitions read, ${n(other)} they would refuse (other layout)${corrupt ? `, ${n(corrupt)} corrupt` : ''}`,
      );
      if (v.kind !== 'rebuild' && other + corrupt > 0)
        lines.push(
          `  the ingestor exits 1 (STATE_CORRUPT) at the first refused state: rebuild the view, or delete them (npx tsx services/keys/main.ts --delete-other-layout --delete-corrupt)`,
        );
    } else if (keys && k)
      lines.push(`  redis (${keys.prefix}): ${n(k.counts['undefined-view'])} states of this view`);
  }
  const fs = plan.featureServices;
  for (const name of fs.added) lines.push(`feature service ${name}: added`);
  for (const name of fs.removed) lines.push(`feature service ${name}: removed`);
  for (const name of fs.changed) lines.push(`feature service ${name}: its features changed (read side only)`);
  lines.push(
    plan.rebuildNeeded
      ? `rebuild needed (exit ${REBUILD_NEEDED}): docs/ingestor.md, "Rebuilding a view"`
      : 'no rebuild needed',
  );
  return `${lines.join('\n')}\n`;
}
