// `npx tsx services/flusher/restore.ts --view <view> [--version v_...] [--reset-offsets] [--allow-gap]`: rebuilds
// a view's Redis state from an entity snapshot in the offline store
// (docs/offline-store.md#restore-redis-from-snapshots). Stop the ingestors first. Each key gets its
// state bytes and a fresh random version (as a new key does, so no process trusts a cached state),
// with the view's TTL. Then the ingestor group must restart from the snapshot's offsets:
// `--reset-offsets` sets them (refused while the group has members), otherwise the commands that
// do are printed. A snapshot older than what the topic still holds (retention deleted records after
// its offsets) is refused before anything is written, unless --allow-gap accepts losing those
// records. Store, Redis, Kafka and prefix: TESSERA_* env.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type Admin, Kafka } from 'kafkajs';
import { kafkaOptions, topicName } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import type { Config } from '../../shared/config/schema.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import type { ViewDef } from '../../shared/definitions/schema.ts';
import { isTesseraError, TesseraError } from '../../shared/errors.ts';
import { openConfiguredStore } from '../../shared/offline/configured-store.ts';
import { SNAPSHOT_STATE } from '../../shared/offline/feature-columns.ts';
import { readParquet } from '../../shared/offline/parquet.ts';
import { type Command, connectRedis, sendAll } from '../../shared/state-store/redis-client.ts';
import { stateKey } from '../../shared/state-store/redis-state-store.ts';
import { newestSnapshot } from './entity-snapshot.ts';
import { type RestartOffset, restartOffsets } from './restart-offsets.ts';

const USAGE = `usage: npx tsx services/flusher/restore.ts --view <view> [--version v_...] [--reset-offsets] [--allow-gap]

  Rebuilds a view's Redis state from an entity snapshot in the offline store. Stop the
  ingestors first (docs/offline-store.md, "Restore Redis from snapshots").

  --view           the feature view to restore (required)
  --version        the snapshot's version folder (default: the newest complete snapshot)
  --reset-offsets  also move the ingestor group to the snapshot's offsets (refused while the
                   group has members); without it the commands that do so are printed
  --allow-gap      accept a snapshot older than what the source topic still holds (the
                   records retention deleted since are lost)

  Store, Redis, Kafka and key prefix: the TESSERA_* environment (shared/config).`;

/** The flags, or null (exit 2) for a command line parseArgs refuses (an unknown or valueless flag). */
function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        view: { type: 'string' },
        version: { type: 'string' },
        'reset-offsets': { type: 'boolean' },
        'allow-gap': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    // Said plainly, not as a stack trace; exit 2, a wrong command line, as the other CLIs.
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    process.exitCode = 2;
    return null;
  }
}

async function main(): Promise<void> {
  const values = parseCommandLine();
  if (values === null) return;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const config = loadConfig({ argv: [] });
  const definitions = loadDefinitionsFile(config.definitions);
  const view = definitions.views.find((v) => v.name === values.view);
  if (!view)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `--view ${values.view ?? '(missing)'} is not a view; one of: ${definitions.views.map((v) => v.name).join(', ')}`,
    );
  const store = openConfiguredStore(config);
  let version = values.version;
  if (!version) {
    version = await newestSnapshot(store, view.name);
    if (!version) throw new TesseraError('NOT_FOUND', `no snapshot of ${view.name} in ${store.location}`);
  }
  const dir = `${view.name}/snapshots/${version}`;
  const meta = JSON.parse(Buffer.from(await store.get(`${dir}/metadata.json`)).toString('utf8')) as {
    ingestor_offsets: Record<string, string>;
    definitions_hash: string;
    states_left_out?: number;
  };
  if (meta.definitions_hash !== definitions.hash)
    console.warn(
      `warning: snapshot made with definitions ${meta.definitions_hash}, current ${definitions.hash}`,
    );
  if ((meta.states_left_out ?? 0) > 0)
    console.warn(
      `warning: the snapshot left out ${meta.states_left_out} states that did not decode when it was taken (another layout, or corrupt); they are not restored: replay the source to rebuild those entities`,
    );
  // Where the ingestors must restart, checked before anything is written: a snapshot older than
  // what the topic still holds would skip the events retention deleted since.
  const topic = topicName(config, view.source.topic);
  const admin = new Kafka(kafkaOptions(config, `tessera-restore-${process.pid}`)).admin();
  await admin.connect();
  try {
    const starts = restartOffsets(
      meta.ingestor_offsets,
      await admin.fetchTopicOffsets(topic),
      values['allow-gap'] === true,
    );
    if (values['reset-offsets']) await refuseLiveGroup(admin, config.ingestorGroup);
    const n = await restoreStates(config, view, dir, await store.get(`${dir}/entities.parquet`));
    console.log(`restored ${n} entities of ${view.name} from ${store.location}/${dir}`);
    if (values['reset-offsets']) await resetOffsets(admin, config.ingestorGroup, topic, starts);
    else printResetCommands(config, topic, starts);
  } finally {
    await admin.disconnect();
  }
}

const RESTORE_STATE = readFileSync(new URL('./restore-state.lua', import.meta.url), 'utf8');

/** Writes every state of the snapshot file back to Redis; answers how many. */
async function restoreStates(config: Config, view: ViewDef, dir: string, file: Uint8Array): Promise<number> {
  const table = readParquet(file);
  const entities = table.getChild(view.entity.joinKey);
  const states = table.getChild(SNAPSHOT_STATE);
  if (!entities || !states)
    throw new TesseraError('STATE_CORRUPT', `${dir}/entities.parquet lacks its columns`);
  const redis = connectRedis(config);
  redis.defineCommand('tesseraRestoreState', { lua: RESTORE_STATE, numberOfKeys: 1 });
  try {
    for (let i = 0; i < table.numRows; i += 1000) {
      const commands: Command[] = [];
      for (let j = i; j < Math.min(table.numRows, i + 1000); j++) {
        const key = stateKey(config.redisKeyPrefix, view.name, String(entities.get(j)));
        const bytes = states.get(j) as Uint8Array;
        // One script: written as HSET, HDEL d, PEXPIRE, a reader between them saw the restored
        // state beside the delta records of the one it replaces, and replayed them onto it.
        commands.push([
          'tesseraRestoreState',
          key,
          1 + Math.floor(Math.random() * 1e12),
          Buffer.from(bytes),
          view.ttlMs,
        ]);
      }
      // Each command's error is in its reply: a write Redis refused (out of memory, a key of
      // another type) stops the restore instead of being reported as restored.
      const replies = await sendAll(redis, commands);
      const failed = replies.findIndex(([error]) => error !== null);
      if (failed >= 0) {
        const [method, key] = commands[failed]!;
        const cause = replies[failed]![0]!;
        throw new TesseraError(
          'SERVICE_UNAVAILABLE',
          `restore: Redis refused ${method} ${String(key)} (${cause.message}); entities before row ${i} are restored, run the restore again once Redis takes writes`,
          { cause },
        );
      }
    }
  } finally {
    redis.disconnect();
  }
  return table.numRows;
}

/** A group with members would commit over the reset: refused. */
async function refuseLiveGroup(admin: Admin, group: string): Promise<void> {
  const { groups } = await admin.describeGroups([group]);
  const members = groups[0]?.members.length ?? 0;
  if (members > 0)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `group ${group} has ${members} member(s): stop the ingestors, then run the restore again with --reset-offsets`,
    );
}

/** Commits the restart offsets for the ingestor group, and reads them back. */
async function resetOffsets(
  admin: Admin,
  group: string,
  topic: string,
  starts: RestartOffset[],
): Promise<void> {
  await refuseLiveGroup(admin, group); // again: one may have joined while the states were written
  const partitions = starts.map(({ partition, offset }) => ({ partition, offset }));
  await admin.setOffsets({ groupId: group, topic, partitions });
  // kafkajs commits a partition through the broker that leads it: on several brokers, check that
  // every one took.
  const [set] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const now = new Map((set?.partitions ?? []).map((p) => [p.partition, p.offset]));
  const missed = partitions.filter((p) => now.get(p.partition) !== p.offset);
  if (missed.length > 0)
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `group ${group}: offsets of partitions ${missed.map((p) => p.partition).join(', ')} did not take; run the restore again with --reset-offsets`,
    );
  console.log(`group ${group} on ${topic} now starts from the snapshot's offsets:`);
  for (const { partition, offset, note } of starts)
    console.log(`  partition ${partition}: ${offset}${note ? ` (${note})` : ''}`);
}

/** One command per partition: kafka-consumer-groups takes one --to-offset per run. */
function printResetCommands(config: Config, topic: string, starts: RestartOffset[]): void {
  console.log(
    `now reset group ${config.ingestorGroup} on ${topic} to the snapshot's offsets (or rerun with --reset-offsets):`,
  );
  for (const { partition, offset, note } of starts)
    console.log(
      `  kafka-consumer-groups.sh --bootstrap-server ${config.kafkaBrokers[0]} --group ${config.ingestorGroup} --reset-offsets --topic ${topic}:${partition} --to-offset ${offset} --execute${note ? `   # ${note}` : ''}`,
    );
}

main().catch((error: unknown) => {
  console.error(isTesseraError(error) ? `${error.code}: ${error.message}` : error);
  process.exit(1);
});
