// Entity snapshots: every entity's engine state in Redis at flush time, with its feature values as
// of that time, so Redis can be rebuilt from the offline store (services/flusher/restore.ts,
// docs/offline-store.md#restore). The state bytes are the `s` field of `<prefix>:{<view>:<entity>}`
// unchanged, or re-encoded with the key's delta records folded in (docs/state-format.md).
import type { ViewDef } from '../../shared/definitions/schema.ts';
import {
  type EntityState,
  encodeState,
  planView,
  readFeatures,
  readFloor,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import {
  featureColumnType,
  SNAPSHOT_AS_OF,
  SNAPSHOT_STATE,
  SNAPSHOT_STATE_VERSION,
} from '../../shared/offline/feature-columns.ts';
import type { ObjectStore } from '../../shared/offline/object-store.ts';
import { type ColumnInput, type ColumnSpec, writeParquet } from '../../shared/offline/parquet.ts';
import {
  type Command,
  escapeGlob,
  type RedisClient,
  scanKeys,
  sendAll,
} from '../../shared/state-store/redis-client.ts';
import { decodeStoredState, STATE_FIELDS, stateKey } from '../../shared/state-store/redis-state-store.ts';
import { columnFromValues } from './columns.ts';

export function snapshotColumns(view: ViewDef): ColumnSpec[] {
  return [
    { name: view.entity.joinKey, type: view.entity.keyType },
    { name: SNAPSHOT_AS_OF, type: 'timestamp_ms' },
    ...view.features.map((f) => ({ name: f.name, type: featureColumnType(f, view.source) })),
    { name: SNAPSHOT_STATE_VERSION, type: 'int64' },
    { name: SNAPSHOT_STATE, type: 'binary' },
  ];
}

export interface Snapshot {
  body: Uint8Array;
  entities: number;
  /** Entities whose state did not decode (logged and left out). */
  corrupt: string[];
}

/**
 * Scans the view's keys (SCAN, 1000 at a time, on every master of a Cluster; HMGETs in one round
 * trip per node) and encodes them as parquet.
 */
export async function takeSnapshot(
  redis: RedisClient,
  view: ViewDef,
  prefix: string,
  asOf: number,
  metadata: Readonly<Record<string, string>>,
): Promise<Snapshot> {
  const plan: ViewPlan = planView(view);
  const head = stateKey(prefix, view.name, '');
  const pattern = `${escapeGlob(head.slice(0, -1))}*}`;
  const entities: string[] = [];
  const versions: number[] = [];
  const states: Uint8Array[] = [];
  const readAt: number[] = [];
  const values: unknown[][] = view.features.map(() => []);
  const corrupt: string[] = [];
  for await (const keys of scanKeys(redis, pattern)) {
    const replies = await sendAll(
      redis,
      keys.map((key): Command => ['hmgetBuffer', key, ...STATE_FIELDS]),
    );
    keys.forEach((key, i) => {
      const [error, reply] = replies[i] ?? [new Error('no reply'), null];
      if (error) throw error;
      const [v, s, d] = reply as [Buffer | null, Buffer | null, Buffer | null];
      if (v === null || s === null) return; // expired between SCAN and HMGET
      const entity = key.slice(head.length - 1, -1);
      let bytes = new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
      let state: EntityState;
      try {
        state = decodeStoredState(plan, key, s, d);
      } catch {
        corrupt.push(entity);
        return;
      }
      // The snapshot holds full states only: delta records are folded in (restore writes `s`).
      if (d !== null && d.length > 0) bytes = encodeState(plan, state);
      // A flush retried or redone later than allowed_lateness after it started finds states
      // whose newest events are past that: they are read as early as they can answer.
      const at = Math.max(asOf, readFloor(plan, state));
      const features = readFeatures(plan, state, at);
      entities.push(entity);
      readAt.push(at);
      versions.push(Number(v.toString()));
      states.push(bytes);
      features.forEach((f, j) => {
        values[j]!.push(f);
      });
    });
  }

  // Sorted by entity so the file is the same whatever order SCAN returned the keys in.
  const order = entities.map((_, i) => i).sort((a, b) => compareEntities(entities[a]!, entities[b]!));
  const pick = <T>(list: readonly T[]) => order.map((i) => list[i]!);
  const specs = snapshotColumns(view);
  const columns: Record<string, ColumnInput> = {};
  for (const spec of specs) {
    let col: unknown[];
    if (spec.name === view.entity.joinKey) col = pick(entities);
    else if (spec.name === SNAPSHOT_AS_OF) col = pick(readAt);
    else if (spec.name === SNAPSHOT_STATE_VERSION) col = pick(versions);
    else if (spec.name === SNAPSHOT_STATE) col = pick(states);
    else col = pick(values[view.features.findIndex((f) => f.name === spec.name)]!);
    columns[spec.name] = columnFromValues(spec, col);
  }
  return {
    body: writeParquet(specs, columns, order.length, { metadata, compression: 'snappy' }),
    entities: order.length,
    corrupt,
  };
}

function compareEntities(a: string, b: string): number {
  if (a.length !== b.length && /^-?\d+$/.test(a) && /^-?\d+$/.test(b)) {
    const d = BigInt(a) - BigInt(b);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The newest complete snapshot version of a view, or undefined: metadata.json is written after
 * entities.parquet, so a crash between the two leaves one without it (restore once picked that
 * one, and failed).
 */
export async function newestSnapshot(store: ObjectStore, view: string): Promise<string | undefined> {
  return newestCompleteSnapshot(view, new Set((await store.list(`${view}/snapshots/`)).map((o) => o.key)));
}

/**
 * Of the object keys under `<view>/snapshots/`, the newest snapshot version with both its files:
 * the one restore takes, and so the one retention must keep.
 */
export function newestCompleteSnapshot(view: string, keys: ReadonlySet<string>): string | undefined {
  return [...keys]
    .filter((k) => k.endsWith('/metadata.json'))
    .map((k) => k.split('/')[2]!)
    .filter((v) => keys.has(`${view}/snapshots/${v}/entities.parquet`))
    .sort()
    .at(-1);
}
