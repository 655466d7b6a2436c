// Per-entity state and the two operations the services call: apply an event, read features as
// of a time. Pure: no I/O, no clock (the caller passes `now`). Every applied event is held once:
// as a raw event, or folded into the tiles of every tile size. Raw events stay as long as a read
// can need them; tiled features fold the oldest ones into tiles only once an entity holds more than
// `plan.foldAt` of them, so a sparse entity costs what it costs in exact mode and a busy one stays
// bounded. Every accumulator is exact and order-independent, so where an event is held never
// changes a value (docs/state-format.md, "Raw events and tiles").
import { TesseraError } from '../errors.ts';
import { compareEvents, type FeatureValue, type StoredEvent } from './acc.ts';
import type { FeaturePlan, TileGroupPlan, ViewPlan } from './plan.ts';
import { TileSeries } from './tile-series.ts';
import { floorTo, windowStart } from './window.ts';
import { beginRead, readWindow } from './window-read.ts';

/** An event as the engine takes it (acc.ts StoredEvent): kept as it is, so never changed after. */
export type EngineEvent = StoredEvent;

export interface EntityState {
  /** Newest time the state has seen: max(event times applied, `now` passed to apply); null when new. */
  clock: number | null;
  /**
   * Raw events, ascending by time; the live ones start at `head`. Events tied in time are in
   * (partition, offset) order when a feature needs it (first/last/last_n, whose bytes keep
   * positions), else in the order they were applied (insertSorted).
   */
  events: StoredEvent[];
  /** Index of the first live event: pruning moves it (O(1)); the array is compacted now and then. */
  head: number;
  /**
   * Per tile group of the plan: its tiles ascending by start, packed (tile-series.ts). They hold
   * the folded events, all older than the read floor, and none of the raw ones.
   */
  tiles: TileSeries[];
  /**
   * Last applied offset per source partition: a redelivered record is a no-op. An entity's events
   * come from one partition (sources are keyed by entity), whose offset is kept in the state itself
   * (`partition` -1 until the first event); other partitions' (after a repartitioning) in
   * `moreOffsets`. Read them with lastOffset / offsetEntries.
   */
  partition: number;
  offset: number;
  moreOffsets: Map<number, number> | null;
  /** Events dropped because the entity exceeded max_events_per_entity (reads are then partial). */
  dropped: number;
  /**
   * Pruning can drop nothing while the clock is below this: the earliest clock at which the oldest
   * raw event or the oldest tile of a size leaves (a lower bound; -Infinity when unknown). Spares
   * most applies a look at the oldest raw event and tiles, which are rarely in cache.
   */
  pruneAt: number;
}

export type ApplyOutcome = 'applied' | 'duplicate';

export interface ApplyResult {
  readonly outcome: ApplyOutcome;
  /** Events this apply dropped to respect max_events_per_entity (0 almost always). */
  readonly dropped: number;
}

// The usual results, shared: an apply then allocates nothing (the state keeps the caller's event).
const APPLIED: ApplyResult = Object.freeze({ outcome: 'applied', dropped: 0 });
const DUPLICATE: ApplyResult = Object.freeze({ outcome: 'duplicate', dropped: 0 });

export function emptyState(plan: ViewPlan): EntityState {
  return newState(
    null,
    [],
    plan.tileGroups.map((group) => new TileSeries(group.features)),
    0,
    Number.POSITIVE_INFINITY,
  );
}

/** A state from its parts, every field in one order (one object shape for every state). */
export function newState(
  clock: number | null,
  events: StoredEvent[],
  tiles: TileSeries[],
  dropped: number,
  pruneAt = Number.NEGATIVE_INFINITY,
): EntityState {
  return { clock, events, head: 0, tiles, partition: -1, offset: -1, moreOffsets: null, dropped, pruneAt };
}

/** The last applied offset of a source partition, undefined when none. */
export function lastOffset(state: EntityState, partition: number): number | undefined {
  if (partition === state.partition) return state.offset;
  return state.moreOffsets?.get(partition);
}

/** Records the last applied offset of a source partition. */
export function setLastOffset(state: EntityState, partition: number, offset: number): void {
  if (partition === state.partition || state.partition < 0) {
    state.partition = partition;
    state.offset = offset;
  } else {
    state.moreOffsets ??= new Map();
    state.moreOffsets.set(partition, offset);
  }
}

/** Every partition's last applied offset, the first partition seen first. */
export function offsetEntries(state: EntityState): [number, number][] {
  const entries: [number, number][] = state.partition < 0 ? [] : [[state.partition, state.offset]];
  if (state.moreOffsets) entries.push(...state.moreOffsets);
  return entries;
}

/** The oldest time a read can be answered exactly at: allowed lateness before the clock. */
export function readFloor(plan: ViewPlan, state: EntityState): number {
  return state.clock === null ? Number.NEGATIVE_INFINITY : state.clock - plan.latenessMs;
}

/**
 * Tiles of a group that start before this can never be read again: no window of a read as of
 * t >= `reachable` (the read floor) starts before it.
 */
export function tileCutoff(group: TileGroupPlan, reachable: number): number {
  return floorTo(reachable - group.keepMs, group.tileMs);
}

/**
 * `clock`: the one the event was judged against, max(the state's clock, the ingestor's `now`, the
 * event's `arrival`): a new entity's state has none, and its message named 1970 when the wall clock
 * made the event late.
 */
export function lateEventError(
  plan: ViewPlan,
  state: EntityState,
  event: EngineEvent,
  clock: number,
  arrival?: number,
): TesseraError {
  const whose =
    state.clock !== null && state.clock >= clock
      ? "the entity's clock is"
      : arrival !== undefined && arrival >= clock
        ? 'it reached Kafka at'
        : "the ingestor's clock is";
  return new TesseraError(
    'EVENT_LATE',
    `event at ${new Date(event.ts).toISOString()} is older than the allowed lateness of view ${plan.view.name} ` +
      `(${whose} ${new Date(clock).toISOString()}); raise allowed_lateness to accept it`,
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
 * than max(clock, now, arrival) - allowed lateness.
 *
 * `now` (the wall clock) also moves the state's clock, and so what pruning keeps. `arrival` (when
 * the event reached the source: its Kafka record timestamp) only judges the event: the state is
 * the same as without it, so a replay that does not know it (a delta, the server's byte reader)
 * rebuilds the writer's state, and every writer of the record judges it alike.
 */
export function applyEvent(
  plan: ViewPlan,
  state: EntityState,
  event: EngineEvent,
  now?: number,
  arrival?: number,
): ApplyResult {
  const last = lastOffset(state, event.partition);
  if (last !== undefined && event.offset <= last) return DUPLICATE;
  let clock = state.clock ?? event.ts;
  if (now !== undefined && now > clock) clock = now;
  // The arrival judges the event but, unlike `now`, does not become the state's clock.
  const judge = arrival !== undefined && arrival > clock ? arrival : clock;
  if (event.ts < judge - plan.latenessMs) throw lateEventError(plan, state, event, judge, arrival);
  setLastOffset(state, event.partition, event.offset);

  // The caller's object is stored as it is (no copy per event). Newer than the clock, so than
  // every stored event, it is appended without reading the last one (rarely in cache for an
  // entity that was idle).
  if (state.clock === null || event.ts > state.clock) state.events.push(event);
  else insertSorted(state.events, state.head, event, plan.needsOrder);
  // Usually not the oldest raw event, whose threshold is lower: only a lower bound is compared.
  if (event.ts + plan.rawLifeMs < state.pruneAt)
    state.pruneAt = Math.min(state.pruneAt, rawPruneAt(plan, event.ts));
  if (event.ts > clock) clock = event.ts;
  if (clock !== state.clock) {
    state.clock = clock;
    if (clock >= state.pruneAt) prune(plan, state);
  }
  if (plan.tileGroups.length > 0 && state.events.length - state.head > plan.foldAt) fold(plan, state);
  const live = state.events.length - state.head;
  if (live <= plan.maxEvents) return APPLIED;
  const dropped = live - plan.maxEvents;
  dropOverCap(plan, state, dropped);
  state.dropped += dropped;
  return { outcome: 'applied', dropped };
}

/**
 * max_events_per_entity: drops the `count` oldest raw events (by time; ties in their array order,
 * see insertSorted). Tiled features keep the dropped events that are older than the read floor,
 * folded into their tiles (as `fold` would have, had no exact feature still needed them raw): a
 * tiled feature then loses only events dropped within the allowed lateness, whatever exact
 * features share its view.
 */
function dropOverCap(plan: ViewPlan, state: EntityState, count: number): void {
  const events = state.events;
  const head = state.head;
  const until = head + count;
  // Only events older than the read floor may fold: a tile must hold nothing a read can find
  // after its own time.
  const reachable = (state.clock as number) - plan.latenessMs;
  const end = plan.tileGroups.length > 0 ? Math.min(until, lowerBoundTs(events, reachable, head)) : head;
  for (let g = 0; g < plan.tileGroups.length && end > head; g++) {
    const group = plan.tileGroups[g]!;
    const cutoff = tileCutoff(group, reachable);
    const series = state.tiles[g]!;
    for (let i = head; i < end; i++) series.add(events[i]!, group.tileMs, cutoff);
  }
  dropFront(state, until);
  if (end > head) state.pruneAt = pruneAtOf(plan, state);
}

/** Moves the clock forward to `now` (never back) and drops what no read can need any more. */
export function advanceClock(plan: ViewPlan, state: EntityState, now: number): void {
  if (state.clock !== null && now > state.clock) {
    state.clock = now;
    if (now >= state.pruneAt) prune(plan, state);
  }
}

/** Throws AS_OF_OUT_OF_RANGE for a read below the read floor, whose events may be pruned. */
export function assertReadable(plan: ViewPlan, state: EntityState, t: number): void {
  if (t < readFloor(plan, state))
    throw new TesseraError(
      'AS_OF_OUT_OF_RANGE',
      `cannot read view ${plan.view.name} as of ${new Date(t).toISOString()}: state only answers back to ` +
        `${new Date(readFloor(plan, state)).toISOString()} (allowed_lateness before its newest event)`,
      { context: { view: plan.view.name, t } },
    );
}

/**
 * Feature values as of `t` (window [start(t), t)), in plan order. `only: 'tiled'` leaves the exact
 * features out (undefined), for callers that compute those another way (BeforeEventReader).
 */
export function readFeatures(plan: ViewPlan, state: EntityState, t: number, only?: 'tiled'): FeatureValue[] {
  assertReadable(plan, state, t);
  const out = new Array<FeatureValue>(plan.features.length);
  const events = state.events;
  const head = state.head;
  // Window bounds are found searching back from the end (lowerBoundBack): an event is an object of
  // its own, so every probe of a bisection over the whole array is a cache miss, while a window's
  // bounds are mostly among its newest events. The end (the events before t) is the same for every
  // feature: found once.
  const hi = lowerBoundBack(events, t, head, events.length);
  beginRead();
  if (only !== 'tiled') {
    // Shortest window first: a longer one starts at or before the shorter one's start, so is searched
    // back from there, and sums of one column reuse the shorter window's (window-read.ts).
    let to = hi;
    for (const feature of exactReadOrder(plan)) {
      const lo = lowerBoundBack(events, windowStart(t, feature), head, to);
      to = lo;
      out[feature.index] = readWindow(feature, events, lo, hi, null, lo);
    }
  }
  for (let g = 0; g < plan.tileGroups.length; g++) {
    const series = state.tiles[g]!;
    // The folded events from the window's start on (every one older than the read floor, so before
    // t), and the raw events of [start, t).
    const tiles = series.length > 0 ? series : null;
    for (const feature of plan.tileGroups[g]!.features) {
      const start = windowStart(t, feature);
      const lo = lowerBoundBack(events, start, head, hi);
      out[feature.index] = readWindow(feature, events, lo, hi, tiles, start);
    }
  }
  return out;
}

/** The plan's exact features by window, shortest first (ties in plan order), computed once per plan. */
const exactOrders = new WeakMap<ViewPlan, readonly FeaturePlan[]>();

function exactReadOrder(plan: ViewPlan): readonly FeaturePlan[] {
  let order = exactOrders.get(plan);
  if (order === undefined) {
    order = [...plan.exactFeatures].sort((a, b) => a.windowMs - b.windowMs);
    exactOrders.set(plan, order);
  }
  return order;
}

/** The oldest time exact features read back to from `reachable` (+Infinity without any). */
function exactKeepFrom(plan: ViewPlan, reachable: number): number {
  return plan.exactFeatures.length > 0 ? reachable - plan.exactKeepMs : Number.POSITIVE_INFINITY;
}

/**
 * Raw events before this can never be read again from the read floor `reachable`: no exact window
 * and no tile size's window reaches them. fast-read.ts prunes its replay with it too.
 */
export function rawKeepFrom(plan: ViewPlan, reachable: number): number {
  let keepFrom = exactKeepFrom(plan, reachable);
  for (const group of plan.tileGroups) keepFrom = Math.min(keepFrom, tileCutoff(group, reachable));
  return keepFrom;
}

/** Drops what no read as of the read floor or later can need: old raw events and old tiles. */
function prune(plan: ViewPlan, state: EntityState): void {
  const reachable = (state.clock as number) - plan.latenessMs;
  for (let g = 0; g < plan.tileGroups.length; g++)
    state.tiles[g]!.dropBefore(tileCutoff(plan.tileGroups[g]!, reachable));
  const keepFrom = rawKeepFrom(plan, reachable);
  const events = state.events;
  if (events.length > state.head && events[state.head]!.ts < keepFrom)
    dropFront(state, lowerBoundTs(events, keepFrom, state.head));
  state.pruneAt = pruneAtOf(plan, state);
}

/** The earliest clock at which prune drops a raw event at `ts`: when keepFrom passes it. */
function rawPruneAt(plan: ViewPlan, ts: number): number {
  // exact: reachable - exactKeepMs > ts; a tile size: tileCutoff > ts, i.e. reachable - keepMs >=
  // the tile boundary after ts. keepFrom is the least of them, so all must hold.
  let at = Number.NEGATIVE_INFINITY;
  if (plan.exactFeatures.length > 0) at = ts + plan.latenessMs + plan.exactKeepMs;
  for (const group of plan.tileGroups) {
    const after = floorTo(ts, group.tileMs) + group.tileMs + plan.latenessMs + group.keepMs;
    if (after > at) at = after;
  }
  return at;
}

/** state.pruneAt after a prune or a fold: the oldest raw event's threshold, or a tile size's. */
function pruneAtOf(plan: ViewPlan, state: EntityState): number {
  let at = Number.POSITIVE_INFINITY;
  if (state.events.length > state.head) at = rawPruneAt(plan, state.events[state.head]!.ts);
  for (let g = 0; g < plan.tileGroups.length; g++) {
    const series = state.tiles[g]!;
    if (series.length === 0) continue;
    const group = plan.tileGroups[g]!;
    // dropBefore(tileCutoff) drops the oldest tile once the cutoff passes its start.
    const after = series.startOf(0) + group.tileMs + plan.latenessMs + group.keepMs;
    if (after < at) at = after;
  }
  return at;
}

/** Written by fold's first pass so that the pass is not optimized away (never read). */
let _foldTouched = 0;

/**
 * Folds the oldest raw events into the tiles of every size once the entity holds more than
 * `plan.foldAt`, leaving the newest half of that raw. Only events older than the read floor fold
 * (a tile must hold nothing a read can find after its own time), and none an exact feature still
 * reads; a tile that can never be read again is not opened.
 */
function fold(plan: ViewPlan, state: EntityState): void {
  const events = state.events;
  const reachable = (state.clock as number) - plan.latenessMs;
  const bound = Math.min(
    reachable,
    exactKeepFrom(plan, reachable),
    events[events.length - Math.max(1, plan.foldAt >> 1)]!.ts,
  );
  const until = lowerBoundTs(events, bound, state.head);
  if (until === state.head) return;
  // The events folded were applied long ago and are rarely in cache. A first pass that only reads
  // each one's values lets the processor fetch several at once (independent loads), so the tile
  // updates below find them in cache instead of waiting for one at a time.
  let touched = 0;
  for (let i = state.head; i < until; i++) touched += events[i]!.values.length;
  _foldTouched = touched;
  for (let g = 0; g < plan.tileGroups.length; g++) {
    const group = plan.tileGroups[g]!;
    const cutoff = tileCutoff(group, reachable);
    const series = state.tiles[g]!;
    for (let i = state.head; i < until; i++) series.add(events[i]!, group.tileMs, cutoff);
  }
  dropFront(state, until);
  state.pruneAt = pruneAtOf(plan, state);
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

/**
 * The newest event time before t that the state can tell (null: none), what the values of a read
 * at t reflect (windows end before t). Raw events give it exactly; folded into tiles, an event is
 * known by its tile's start only: then it is the start of the newest tile starting before t (never
 * after t, possibly up to a tile's size off). Events older than the longest window before the read
 * floor are no longer held. newestEventTime with a bound: the server's as_of reads (their values
 * reflect the events before t). For t past every event both give the same time.
 */
export function newestEventBefore(state: EntityState, t: number): number | null {
  // Raw events ascend by time: the last one before t, by bisection.
  let lo = state.head;
  let hi = state.events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (state.events[mid]!.ts < t) lo = mid + 1;
    else hi = mid;
  }
  let newest = lo > state.head ? state.events[lo - 1]!.ts : null;
  for (const group of state.tiles) {
    let k = group.length - 1;
    while (k >= 0 && group.startOf(k) >= t) k--;
    if (k >= 0 && (newest === null || group.startOf(k) > newest)) newest = group.startOf(k);
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

/**
 * Inserts an event after the last one not after it: by (ts, partition, offset) when `byPosition`,
 * else by time alone, after every event of its time. Without first/last/last_n the state bytes
 * keep no positions (a decoded event is partition 0, offset 0), so ordering ties by position would
 * place an event of a delta record differently in the writer's state and in one rebuilt from its
 * bytes, and the cap (which drops by place) would then drop other events in each.
 */
function insertSorted(events: StoredEvent[], head: number, event: StoredEvent, byPosition: boolean): void {
  let i = events.length;
  if (byPosition) while (i > head && compareEvents(events[i - 1]!, event) > 0) i--;
  else while (i > head && events[i - 1]!.ts > event.ts) i--;
  if (i === events.length) events.push(event);
  else events.splice(i, 0, event);
}

/**
 * lowerBoundTs(events, bound, from) for a bound no later than the time of the event at `to` (or with
 * `to` the array's length): the first position in [from, to] whose event is at or after `bound`,
 * found by probing back from `to` in doubling steps, then bisecting the last step. Costs
 * O(log(to - result)) probes near `to` instead of O(log(length)) across the array.
 */
export function lowerBoundBack(
  events: readonly StoredEvent[],
  bound: number,
  from: number,
  to: number,
): number {
  if (to === from || events[to - 1]!.ts < bound) return to;
  if (events[from]!.ts >= bound) return from;
  // Invariant: events[hi] is at or after bound, and events[from] before it.
  let hi = to - 1;
  let step = 1;
  let lo = hi - step;
  while (lo > from && events[lo]!.ts >= bound) {
    hi = lo;
    step *= 2;
    lo = hi - step;
  }
  if (lo < from) lo = from;
  // events[lo] is before bound: the answer is in (lo, hi].
  lo++;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.ts < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
