// Per-entity state and the two operations the services call: apply an event, read features as
// of a time. Pure: no I/O, no clock (the caller passes `now`). Raw events are kept as far back
// as reads can need them; tiled features also fold every event into tiles, which serve the part
// of a window older than the raw horizon.
import { TesseraError } from '../errors.ts';
import {
  addEvent,
  compareEvents,
  emptyAcc,
  type FeatureValue,
  finalize,
  type StoredEvent,
  type Value,
} from './acc.ts';
import type { FeaturePlan, ViewPlan } from './plan.ts';
import { TileSeries } from './tile-series.ts';
import { floorTo, windowStart } from './window.ts';

/** An event as the engine takes it: its values follow `plan.columns`. */
export interface EngineEvent {
  ts: number;
  partition: number;
  offset: number;
  values: (Value | null)[];
}

export interface EntityState {
  /** Newest time the state has seen: max(event times applied, `now` passed to apply); null when new. */
  clock: number | null;
  /** Raw events, ascending by (ts, partition, offset); the live ones start at `head`. */
  events: StoredEvent[];
  /** Index of the first live event: pruning moves it (O(1)); the array is compacted now and then. */
  head: number;
  /** Per tile group of the plan: its tiles ascending by start, packed (tile-series.ts). */
  tiles: TileSeries[];
  /** Last applied offset per source partition: a redelivered record is a no-op. */
  offsets: Map<number, number>;
  /** Events dropped because the entity exceeded max_events_per_entity (reads are then partial). */
  dropped: number;
}

export type ApplyOutcome = 'applied' | 'duplicate';

export interface ApplyResult {
  outcome: ApplyOutcome;
  /** Events this apply dropped to respect max_events_per_entity (0 almost always). */
  dropped: number;
}

export function emptyState(plan: ViewPlan): EntityState {
  return {
    clock: null,
    events: [],
    head: 0,
    tiles: plan.tileGroups.map((group) => new TileSeries(group.features)),
    offsets: new Map(),
    dropped: 0,
  };
}

/** The oldest time a read can be answered exactly at: allowed lateness before the clock. */
export function readFloor(plan: ViewPlan, state: EntityState): number {
  return state.clock === null ? Number.NEGATIVE_INFINITY : state.clock - plan.latenessMs;
}

/**
 * Raw events at or after this time are kept for tiled features: a read as of t >= readFloor takes
 * whole tiles up to its own tile, floorTo(t, tile), and raw events from there to t.
 */
export function rawFloor(plan: ViewPlan, state: EntityState): number {
  if (state.clock === null || plan.tileGroups.length === 0) return Number.NEGATIVE_INFINITY;
  const reachable = state.clock - plan.latenessMs;
  let floor = Number.POSITIVE_INFINITY;
  for (const group of plan.tileGroups) floor = Math.min(floor, floorTo(reachable, group.tileMs));
  return floor;
}

export function lateEventError(plan: ViewPlan, state: EntityState, event: EngineEvent): TesseraError {
  return new TesseraError(
    'EVENT_LATE',
    `event at ${new Date(event.ts).toISOString()} is older than the allowed lateness of view ${plan.view.name} ` +
      `(state clock ${new Date(state.clock ?? 0).toISOString()}); raise allowed_lateness to accept it`,
    {
      context: {
        reason: 'late',
        view: plan.view.name,
        ts: event.ts,
        partition: event.partition,
        offset: event.offset,
      },
    },
  );
}

/**
 * Applies one event. Returns 'duplicate' (and changes nothing) for a record at or below the last
 * applied offset of its partition. Throws EVENT_LATE (context.reason 'late') for an event older
 * than max(clock, now) - allowed lateness.
 */
export function applyEvent(
  plan: ViewPlan,
  state: EntityState,
  event: EngineEvent,
  now?: number,
): ApplyResult {
  const last = state.offsets.get(event.partition);
  if (last !== undefined && event.offset <= last) return { outcome: 'duplicate', dropped: 0 };
  let clock = state.clock ?? event.ts;
  if (now !== undefined && now > clock) clock = now;
  if (event.ts < clock - plan.latenessMs) throw lateEventError(plan, state, event);
  state.offsets.set(event.partition, event.offset);

  const stored: StoredEvent = { ts: event.ts, p: event.partition, o: event.offset, v: event.values };
  insertSorted(state.events, state.head, stored);
  for (let g = 0; g < plan.tileGroups.length; g++) {
    const group = plan.tileGroups[g]!;
    state.tiles[g]!.add(floorTo(event.ts, group.tileMs), stored);
  }
  if (event.ts > clock) clock = event.ts;
  if (clock !== state.clock) {
    state.clock = clock;
    prune(plan, state);
  }
  let dropped = 0;
  const live = state.events.length - state.head;
  if (live > plan.maxEvents) {
    dropped = live - plan.maxEvents;
    dropFront(state, state.head + dropped);
    state.dropped += dropped;
  }
  return { outcome: 'applied', dropped };
}

/** Moves the clock forward to `now` (never back) and drops what no read can need any more. */
export function advanceClock(plan: ViewPlan, state: EntityState, now: number): void {
  if (state.clock !== null && now > state.clock) {
    state.clock = now;
    prune(plan, state);
  }
}

/**
 * Feature values as of `t` (window [start(t), t)), in plan order. `only: 'tiled'` leaves the exact
 * features out (undefined), for callers that compute those another way (BeforeEventReader).
 */
export function readFeatures(plan: ViewPlan, state: EntityState, t: number, only?: 'tiled'): FeatureValue[] {
  if (t < readFloor(plan, state)) {
    throw new TesseraError(
      'AS_OF_OUT_OF_RANGE',
      `cannot read view ${plan.view.name} as of ${new Date(t).toISOString()}: state only answers back to ` +
        `${new Date(readFloor(plan, state)).toISOString()} (allowed_lateness before its newest event)`,
      { context: { view: plan.view.name, t } },
    );
  }
  const out = new Array<FeatureValue>(plan.features.length);
  if (only !== 'tiled') {
    for (const feature of plan.exactFeatures)
      out[feature.index] = readExact(feature, state.events, state.head, t);
  }
  // After the newest event every stored event is before t, so whole tiles answer the read.
  const afterAll = state.clock === null || t > state.clock;
  for (let g = 0; g < plan.tileGroups.length; g++) {
    for (const feature of plan.tileGroups[g]!.features) {
      out[feature.index] = readTiled(feature, state.tiles[g]!, state.events, state.head, afterAll, t);
    }
  }
  return out;
}

function readExact(feature: FeaturePlan, events: StoredEvent[], head: number, t: number): FeatureValue {
  const lo = lowerBoundTs(events, windowStart(t, feature), head);
  const hi = lowerBoundTs(events, t, lo);
  const acc = emptyAcc(feature.acc);
  if (acc.k === 'count') acc.n = hi - lo;
  else for (let i = lo; i < hi; i++) addEvent(acc, feature, events[i]!);
  return finalize(feature, acc);
}

function readTiled(
  feature: FeaturePlan,
  tiles: TileSeries,
  events: StoredEvent[],
  head: number,
  afterAll: boolean,
  t: number,
): FeatureValue {
  const start = windowStart(t, feature);
  const split = afterAll ? Number.POSITIVE_INFINITY : floorTo(t, feature.tileMs);
  const acc = emptyAcc(feature.acc);
  // [start, split): whole tiles (start is a tile boundary; every applied event is in a tile).
  tiles.mergeRange(acc, feature.slot, start, split);
  // [split, t): raw events of t's own tile, exact up to t.
  if (!afterAll) {
    const lo = lowerBoundTs(events, split, head);
    const hi = lowerBoundTs(events, t, lo);
    if (acc.k === 'count') acc.n += hi - lo;
    else for (let i = lo; i < hi; i++) addEvent(acc, feature, events[i]!);
  }
  return finalize(feature, acc);
}

function prune(plan: ViewPlan, state: EntityState): void {
  const clock = state.clock as number;
  const reachable = clock - plan.latenessMs;
  let keepFrom = Number.POSITIVE_INFINITY;
  if (plan.exactFeatures.length > 0) keepFrom = reachable - plan.exactKeepMs;
  if (plan.tileGroups.length > 0) keepFrom = Math.min(keepFrom, rawFloor(plan, state));
  const events = state.events;
  if (events.length > state.head && events[state.head]!.ts < keepFrom)
    dropFront(state, lowerBoundTs(events, keepFrom, state.head));
  for (let g = 0; g < plan.tileGroups.length; g++) {
    const group = plan.tileGroups[g]!;
    state.tiles[g]!.dropBefore(floorTo(reachable - group.keepMs, group.tileMs));
  }
}

/**
 * Time of the entity's newest event as the state knows it: its last live raw event, else the start
 * of its newest tile (a lower bound, once raw events have been pruned); null for a new entity.
 */
export function newestEventTime(state: EntityState): number | null {
  if (state.events.length > state.head) return state.events[state.events.length - 1]!.ts;
  let newest: number | null = null;
  for (const group of state.tiles) {
    if (group.length === 0) continue;
    const start = group.startOf(group.length - 1);
    if (newest === null || start > newest) newest = start;
  }
  return newest;
}

/** Live events of the state. */
export function eventCount(state: EntityState): number {
  return state.events.length - state.head;
}

/** Drops the live events before index `until`. Moving `head` is O(1); compacting the array (a
 * copy) happens only once the dead prefix outweighs the live part, so pruning is O(1) amortized. */
function dropFront(state: EntityState, until: number): void {
  state.head = until;
  if (state.head > 64 && state.head * 2 > state.events.length) {
    state.events = state.events.slice(state.head);
    state.head = 0;
  }
}

function insertSorted(events: StoredEvent[], head: number, event: StoredEvent): void {
  let i = events.length;
  if (i === head || compareEvents(events[i - 1]!, event) <= 0) {
    events.push(event);
    return;
  }
  while (i > head && compareEvents(events[i - 1]!, event) > 0) i--;
  events.splice(i, 0, event);
}

export function lowerBoundTs(events: StoredEvent[], bound: number, from = 0): number {
  let lo = from;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.ts < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
