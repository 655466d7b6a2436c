// `tessera keys`: what the online store holds under a key prefix, view by view, against the
// definitions (states the current definitions read, states of another layout, damaged ones, views
// no longer defined), and the removal of what the user names. docs/ingestor.md, "Online store keys".
import { readFileSync } from 'node:fs';
import type { Definitions } from '../../shared/definitions/schema.ts';
import { FORMAT_VERSION, planView, stateHeader, type ViewPlan } from '../../shared/engine/index.ts';
import {
  type Command,
  escapeGlob,
  type RedisClient,
  scanKeys,
  sendAll,
} from '../../shared/state-store/redis-client.ts';
import { decodeStoredState, STATE_FIELDS } from '../../shared/state-store/redis-state-store.ts';

const DELETE_UNCHANGED = readFileSync(new URL('./delete-unchanged.lua', import.meta.url), 'utf8');

/**
 * What one key holds:
 * - `current`: a state the definitions read;
 * - `other-layout`: a state of a defined view written under other definitions (an earlier format
 *   version, or another plan fingerprint: the ingestor and server refuse it as STATE_CORRUPT);
 * - `corrupt`: bytes that do not decode: too short for a header, a format version no Tessera up
 *   to this one wrote (a damaged first byte; or a newer Tessera's), or the current layout's header
 *   over a body that does not decode;
 * - `undefined-view`: a state (a hash with a version and a state header) of a view the
 *   definitions no longer have;
 * - `foreign`: under the prefix but not a Tessera state (no `{view:entity}` tag, or not a hash
 *   with a version and a state): counted, never deleted.
 */
export type KeyStatus = 'current' | 'other-layout' | 'corrupt' | 'undefined-view' | 'foreign';

export interface ViewKeys {
  view: string;
  defined: boolean;
  counts: Record<KeyStatus, number>;
  deleted: number;
}

export interface DeleteChoice {
  /** Every state of the views the definitions do not have. */
  undefinedViews: boolean;
  /** States of defined views written under other definitions (other-layout). */
  otherLayout: boolean;
  /** States that do not decode (corrupt). */
  corrupt: boolean;
  /** Every state of these views, whatever it holds. */
  views: ReadonlySet<string>;
}

export interface InventoryOptions {
  redis: RedisClient;
  definitions: Definitions;
  prefix: string;
  /** Keys to remove; none when absent. */
  remove?: DeleteChoice;
  /** Count what `remove` would delete without deleting it. */
  dryRun?: boolean;
  /** Called after each SCAN page with the keys seen and deleted so far. */
  onPage?: (seen: number, deleted: number) => void;
}

export interface Inventory {
  views: ViewKeys[];
  /** Keys under the prefix that are not `<prefix>:{<view>:<entity>}`. */
  untagged: number;
  seen: number;
  deleted: number;
  /** Keys chosen for deletion that a writer changed (or that expired) between read and delete. */
  skipped: number;
}

/** The view and entity of `<prefix>:{<view>:<entity>}` (view names have no `:`), or null. */
export function parseStateKey(prefix: string, key: string): { view: string; entity: string } | null {
  const head = `${prefix}:{`;
  if (!key.startsWith(head) || !key.endsWith('}')) return null;
  const tag = key.slice(head.length, -1);
  const colon = tag.indexOf(':');
  if (colon <= 0) return null;
  return { view: tag.slice(0, colon), entity: tag.slice(colon + 1) };
}

/** A state format version some Tessera up to this one wrote. */
const knownVersion = (version: number | undefined) =>
  version !== undefined && version >= 1 && version <= FORMAT_VERSION;

/** The status of a defined view's state from its stored fields (null `s`: no state). */
export function classifyState(
  plan: ViewPlan,
  key: string,
  base: Buffer | null,
  delta: Buffer | null,
): KeyStatus {
  if (base === null) return 'foreign';
  const header = stateHeader(base);
  if (header === null || !knownVersion(header.version)) return 'corrupt';
  if (header.version !== FORMAT_VERSION || header.fingerprint !== plan.fingerprint) return 'other-layout';
  try {
    decodeStoredState(plan, key, base, delta);
    return 'current';
  } catch {
    return 'corrupt';
  }
}

/** Whether `choice` removes a key of `status` in `view`. */
export function chosen(choice: DeleteChoice | undefined, view: string, status: KeyStatus): boolean {
  if (choice === undefined || status === 'foreign') return false;
  return (
    choice.views.has(view) ||
    (status === 'undefined-view' && choice.undefinedViews) ||
    (status === 'other-layout' && choice.otherLayout) ||
    (status === 'corrupt' && choice.corrupt)
  );
}

/**
 * Scans every key under `<prefix>:{` (every master of a Cluster), sorts each into a view and a
 * status, and deletes the chosen ones, each only if its version is still the one read.
 */
export async function takeInventory(options: InventoryOptions): Promise<Inventory> {
  const { redis, definitions, prefix, remove, dryRun = false } = options;
  if (!('tesseraDeleteUnchanged' in redis))
    redis.defineCommand('tesseraDeleteUnchanged', { lua: DELETE_UNCHANGED, numberOfKeys: 1 });
  const plans = new Map(definitions.views.map((v) => [v.name, planView(v)]));
  const views = new Map<string, ViewKeys>();
  const viewKeys = (view: string): ViewKeys => {
    let entry = views.get(view);
    if (entry === undefined) {
      entry = {
        view,
        defined: plans.has(view),
        counts: { current: 0, 'other-layout': 0, corrupt: 0, 'undefined-view': 0, foreign: 0 },
        deleted: 0,
      };
      views.set(view, entry);
    }
    return entry;
  };
  for (const plan of plans.values()) viewKeys(plan.view.name);
  const result: Inventory = { views: [], untagged: 0, seen: 0, deleted: 0, skipped: 0 };

  for await (const page of scanKeys(redis, `${escapeGlob(prefix)}:{*`)) {
    const keys: { key: string; view: string }[] = [];
    for (const key of page) {
      const parsed = parseStateKey(prefix, key);
      if (parsed === null) result.untagged++;
      else keys.push({ key, view: parsed.view });
    }
    result.seen += page.length;
    // `type` first: HMGET on a key that is not a hash fails (WRONGTYPE), and such keys are not ours.
    const replies = await sendAll(redis, [
      ...keys.map(({ key }): Command => ['type', key]),
      ...keys.map(({ key }): Command => ['hmgetBuffer', key, ...STATE_FIELDS]),
    ]);
    const doomed: { key: string; view: ViewKeys; version: string }[] = [];
    keys.forEach(({ key, view }, i) => {
      const [typeError, type] = replies[i]!;
      if (typeError) throw typeError;
      const entry = viewKeys(view);
      const [error, fields] = replies[keys.length + i]!;
      if (type !== 'hash' || error) {
        // Expired since SCAN ('none'), or another type: not a state.
        if (type !== 'none') entry.counts.foreign++;
        return;
      }
      const [v, s, d] = fields as [Buffer | null, Buffer | null, Buffer | null];
      if (v === null) {
        entry.counts.foreign++;
        return;
      }
      const plan = plans.get(view);
      // No plan reads an undefined view's states: a state header is all that tells one from a
      // hash of someone else's that happens to have a `v` field (never deleted).
      const status =
        plan !== undefined
          ? classifyState(plan, key, s, d)
          : s !== null && knownVersion(stateHeader(s)?.version)
            ? 'undefined-view'
            : 'foreign';
      entry.counts[status]++;
      if (chosen(remove, view, status)) doomed.push({ key, view: entry, version: v.toString() });
    });
    if (doomed.length > 0) {
      if (dryRun) {
        for (const d of doomed) d.view.deleted++;
        result.deleted += doomed.length;
      } else {
        const done = await sendAll(
          redis,
          doomed.map(({ key, version }): Command => ['tesseraDeleteUnchanged', key, version]),
        );
        done.forEach(([error, reply], i) => {
          if (error) throw error;
          if (reply === 1) {
            doomed[i]!.view.deleted++;
            result.deleted++;
          } else result.skipped++;
        });
      }
    }
    options.onPage?.(result.seen, result.deleted);
  }
  result.views = [...views.values()].sort((a, b) =>
    a.defined === b.defined ? (a.view < b.view ? -1 : 1) : a.defined ? -1 : 1,
  );
  return result;
}
