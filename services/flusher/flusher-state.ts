// The flusher's durable progress, one JSON object in the offline store (`_flusher/state.json`):
// how far each consumed topic-partition has been written, which source offsets already have a
// training row, and the flush in progress (the intent). It is the source of truth for
// exactly-once: Kafka's committed offsets only save re-reading (docs/offline-store.md).
import { z } from 'zod';
import { TesseraError } from '../../shared/errors.ts';
import type { ObjectStore } from '../../shared/offline/object-store.ts';
import { OffsetRanges, type Range } from './offset-ranges.ts';

export const STATE_KEY = '_flusher/state.json';

/** Per topic, per partition (as a decimal string): a number. */
export type Positions = Record<string, Record<string, number>>;

/** A flush that was started: what it covers and what it is called, so a restart redoes it exactly. */
export interface FlushIntent {
  /** Version directory name of this flush, `v_YYYYMMDDTHHMMSS`. */
  version: string;
  /** Exclusive end offset per consumed topic-partition: the flush holds records below it. */
  cut: Positions;
  startedAt: string;
}

export interface FlusherState {
  /** Next offset to write per consumed topic-partition (everything below is in the store). */
  positions: Positions;
  /** Source offsets that already have a training row, per source topic and partition. */
  written: Map<string, Map<number, OffsetRanges>>;
  /** Newest version name written (versions are named strictly increasing). */
  lastVersion: string | null;
  flushes: number;
  pending: FlushIntent | null;
}

const positionsSchema = z.record(z.string(), z.record(z.string().regex(/^\d+$/), z.number().int().min(0)));
const rangeSchema = z.tuple([z.number().int(), z.number().int()]);
const stateSchema = z.object({
  format: z.literal(1),
  positions: positionsSchema,
  written: z.record(z.string(), z.record(z.string().regex(/^\d+$/), z.array(rangeSchema))),
  last_version: z.string().nullable(),
  flushes: z.number().int().min(0),
  pending: z.object({ version: z.string(), cut: positionsSchema, started_at: z.string() }).nullable(),
});

export function emptyState(): FlusherState {
  return { positions: {}, written: new Map(), lastVersion: null, flushes: 0, pending: null };
}

export async function loadState(store: ObjectStore): Promise<FlusherState> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(STATE_KEY);
  } catch (error) {
    if (error instanceof TesseraError && error.code === 'NOT_FOUND') return emptyState();
    throw error;
  }
  const parsed = stateSchema.safeParse(JSON.parse(Buffer.from(bytes).toString('utf8')));
  if (!parsed.success)
    throw new TesseraError(
      'STATE_CORRUPT',
      `${store.location}/${STATE_KEY} is not a flusher state: ${parsed.error.message}; restore it from a backup or start a new offline store and flusher group`,
    );
  const s = parsed.data;
  const written = new Map<string, Map<number, OffsetRanges>>();
  for (const [topic, parts] of Object.entries(s.written)) {
    const m = new Map<number, OffsetRanges>();
    for (const [p, ranges] of Object.entries(parts)) m.set(Number(p), new OffsetRanges(ranges as Range[]));
    written.set(topic, m);
  }
  return {
    positions: s.positions,
    written,
    lastVersion: s.last_version,
    flushes: s.flushes,
    pending: s.pending && { version: s.pending.version, cut: s.pending.cut, startedAt: s.pending.started_at },
  };
}

export async function saveState(store: ObjectStore, state: FlusherState): Promise<void> {
  const written: Record<string, Record<string, Range[]>> = {};
  for (const [topic, parts] of state.written) {
    written[topic] = {};
    for (const [p, ranges] of parts) written[topic][String(p)] = ranges.toJSON();
  }
  const body = {
    format: 1,
    positions: state.positions,
    written,
    last_version: state.lastVersion,
    flushes: state.flushes,
    pending: state.pending && {
      version: state.pending.version,
      cut: state.pending.cut,
      started_at: state.pending.startedAt,
    },
  };
  await store.put(STATE_KEY, JSON.stringify(body, null, 1), 'application/json');
}

export function positionOf(positions: Positions, topic: string, partition: number): number {
  return positions[topic]?.[String(partition)] ?? 0;
}

/** An intent's cut without the topics not in `topics`, and those topics. */
export function withinTopics(
  intent: FlushIntent,
  topics: readonly string[],
): { intent: FlushIntent; gone: string[] } {
  const gone = Object.keys(intent.cut).filter((t) => !topics.includes(t));
  if (gone.length === 0) return { intent, gone };
  const cut = { ...intent.cut };
  for (const t of gone) delete cut[t];
  return { intent: { ...intent, cut }, gone };
}

/** A copy to change and save before the live state takes it (written ranges copied too). */
export function copyState(state: FlusherState): FlusherState {
  const written = new Map<string, Map<number, OffsetRanges>>();
  for (const [topic, parts] of state.written)
    written.set(topic, new Map([...parts].map(([p, ranges]) => [p, new OffsetRanges(ranges.toJSON())])));
  return { ...state, written };
}

export function writtenRanges(state: FlusherState, topic: string, partition: number): OffsetRanges {
  let parts = state.written.get(topic);
  if (!parts) {
    parts = new Map();
    state.written.set(topic, parts);
  }
  let ranges = parts.get(partition);
  if (!ranges) {
    ranges = new OffsetRanges();
    parts.set(partition, ranges);
  }
  return ranges;
}

/** Version directory name for a time, strictly after `previous` (flushes within one second). */
export function versionName(now: number, previous: string | null): string {
  let t = Math.floor(now / 1000) * 1000;
  if (previous) {
    const prev = parseVersion(previous);
    if (prev !== null && t <= prev) t = prev + 1000;
  }
  return `v_${new Date(t).toISOString().slice(0, 19).replace(/[-:]/g, '')}`;
}

/** Epoch ms of a version name, or null when it is not one. */
export function parseVersion(name: string): number | null {
  const m = /^v_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$/.exec(name);
  if (!m) return null;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}
