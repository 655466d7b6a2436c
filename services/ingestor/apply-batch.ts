// The ingestor's core step for one fetch of a source topic: group decoded events by entity, load
// every touched entity's state in one Redis round trip, apply the events in offset order with the
// engine (recording each event's "features before it"), make the training rows and the rejected
// events' dead letters durable, and only then write the states back in one compare-and-set round
// trip. Losing a compare-and-set (another ingestor wrote the entity during a rebalance) reloads
// that entity and re-applies: the engine skips already-applied offsets.

import {
  applyEvent,
  BeforeEventReader,
  type EngineEvent,
  type EntityState,
  eventCount,
  type FeatureValue,
  readFeatures,
  readFloor,
  toEngineEvent,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { isTesseraError, TesseraError } from '../../shared/errors.ts';
import { futureRefusal, type IngestClock } from '../../shared/ingest-clock.ts';
import type { LoadedState, SaveRequest } from '../../shared/state-store/redis-state-store.ts';

const MAX_CAS_ATTEMPTS = 8;
/** States of at most this many events (with the batch's) are read without a BeforeEventReader. */
export const DIRECT_READ_EVENTS = 32;

export interface StateStore {
  loadMany(entities: readonly string[]): Promise<Map<string, LoadedState>>;
  saveMany(requests: readonly SaveRequest[]): Promise<{ conflicts: string[]; versions: Map<string, number> }>;
}

export interface ViewRuntime {
  plan: ViewPlan;
  /**
   * A store that caches states gives each one back with the before-event reader the last batch
   * built over it (LoadedState.reader, handed back with SaveRequest.reader): the reader's typed
   * mirror then carries over instead of being rebuilt from the whole state, so a busy entity costs
   * O(new events) per batch. A state loaded from Redis is a new object and gets a new reader.
   */
  store: StateStore;
}

/** A decoded, validated source event, with its Kafka position. */
export interface IncomingEvent {
  index: number;
  partition: number;
  offset: number;
  entity: string;
  ts: number;
  /** When the record reached Kafka: its timestamp (the producer's, or the broker's on LogAppendTime). */
  arrival: number;
  record: Readonly<Record<string, unknown>>;
}

export interface Rejection {
  index: number;
  reason: 'late' | 'future';
  message: string;
}

export interface TrainingRow {
  view: string;
  entity: string;
  ts: number;
  partition: number;
  offset: number;
  /** Features as of the event's own time, before it: the training value of this event. */
  values: FeatureValue[];
}

export interface FeatureUpdate {
  view: string;
  entity: string;
  /** Read as of the entity's newest event time + 1 ms: the vector includes that event. */
  asOf: number;
  /**
   * The state's version in Redis once this vector's events are saved (cas-state.lua's `v`: +1 per
   * write of the entity, whichever ingestor writes it). Two vectors of an entity with the same
   * `asOf` (an out-of-order event changed the values, not the newest time) are told apart by it.
   */
  version: number;
  values: FeatureValue[];
}

export interface BatchResult {
  /** Each rejected record once, whichever views rejected it. */
  rejected: Rejection[];
  /**
   * Rejected records per view: a record too far in the future counts for every view, a late one
   * for the views it was late for (with several views on a source, another may have applied it).
   */
  rejectedByView: Map<string, number>;
  updates: FeatureUpdate[];
  applied: Map<string, number>;
  duplicates: Map<string, number>;
  cappedDrops: Map<string, number>;
  conflicts: number;
  newestEventTime: Map<string, number>;
  /** Wall time of each stage, summed over views and compare-and-set attempts (the stage breakdown). */
  stageMs: { load: number; apply: number; rows: number; save: number };
}

export interface ClockOptions {
  /**
   * What lateness is judged by besides the entity's own newest event: its record's Kafka timestamp
   * (`record`), the ingestor's wall clock (`wall`), or nothing (`event`). docs/ingestor.md, "Clocks".
   */
  mode: IngestClock;
  /** The wall clock when the fetch was first tried (`future` on every clock but `event`). */
  now: number;
}

/**
 * Where applyBatch hands each training row, the moment it is read. The ingestor encodes it into
 * its `features.rows` record at once: a row kept as an object (and its values as an array) until
 * the records were built lived across the fetch's Redis and Kafka round trips, long enough to be
 * promoted (their value arrays alone: 13 % of what full collections freed at 10k events/s).
 */
export interface RowSink {
  /**
   * false: the training rows are off (TESSERA_TRAINING_ROWS=false): no rows, no before-event reads
   * (they, the rows' encoding and produce were about a third of the ingestor's CPU per event), only
   * the late events' marks, which point-in-time retrieval needs all the more then.
   */
  readonly training: boolean;
  /** One row; `row` and its `values` are the caller's again once this returns (copy what you keep). */
  add(row: TrainingRow): void;
  /**
   * A source offset that has no row in `view` and never will under these definitions
   * (dead-lettered by the decoder, with its reason, or as late; not `future`, which a later
   * redelivery may apply, nor a schema id that could not be resolved). Sent
   * with the rows so the offline writer can close the gap in the offsets it has written: without
   * it every dead letter was one more interval in the flusher's state, kept forever. A late
   * event's mark carries its event time (`ts`): the flusher files it by day as a late mark, which
   * point-in-time retrieval uses to leave the event out as online did.
   */
  noRow(view: string, partition: number, offset: number, reason: string, ts?: number): void;
  /**
   * Makes the rows added so far durable; awaited before each compare-and-set. Once a state is
   * saved its events are duplicates and yield no row again, so the rows must be durable first
   * (at-least-once: a lost compare-and-set re-applies and adds the entity's rows again; the
   * offline writer keeps one row per source offset).
   */
  flush(): Promise<void>;
}

/**
 * Where applyBatch hands the events it rejects (late, future), before saving any state that skipped
 * them: once a state is saved with a later offset of the same partition, a redelivered rejected
 * event counts as a duplicate and would never be dead-lettered, so its dead letter must already be
 * durable (at-least-once, like the rows). Called before every compare-and-set round trip and once
 * more at the end, each time with the rejections not handed over yet (often none).
 */
export type RejectionSink = (rejected: readonly Rejection[]) => Promise<void>;

/**
 * Longest stretch of engine work before applyBatch yields to the event loop: far below any session
 * timeout, and long enough that the partitions' batches do not interleave finely (which would make
 * their produce round trips start together while the CPU idles).
 */
const SLICE_MS = 1000;

/**
 * `pause`: awaited after every SLICE_MS of engine work (the ingestor heartbeats the group there).
 * A large catch-up batch is seconds of synchronous work; without yielding, the other partitions'
 * batches and the consumer's heartbeats wait behind it, and a member silent for a whole session
 * timeout is dropped from the group (seen: an ingestor rejoining forever, never committing).
 */
export async function applyBatch(
  views: readonly ViewRuntime[],
  events: readonly IncomingEvent[],
  clock: ClockOptions,
  /** null: neither training rows nor late marks (tests); `training: false`: late marks only. */
  rows: RowSink | null = null,
  pause: () => Promise<void> = () => new Promise((resolve) => setImmediate(resolve)),
  deadLetters: RejectionSink = async () => {},
): Promise<BatchResult> {
  const result: BatchResult = {
    rejected: [],
    rejectedByView: new Map(),
    updates: [],
    applied: new Map(),
    duplicates: new Map(),
    cappedDrops: new Map(),
    conflicts: 0,
    newestEventTime: new Map(),
    stageMs: { load: 0, apply: 0, rows: 0, save: 0 },
  };
  const ms = result.stageMs;
  const rejected = new Set<number>();
  /** Rejections not handed to deadLetters yet. */
  let unsent: Rejection[] = [];
  /** `${view}/${index}` of the records each view rejected (a re-applied late event comes again). */
  const rejectedInView = new Set<string>();
  const countFor = (view: string) =>
    result.rejectedByView.set(view, (result.rejectedByView.get(view) ?? 0) + 1);
  const reject = (r: Rejection, view: string | null) => {
    if (view === null) for (const v of views) countFor(v.plan.view.name);
    else if (!rejectedInView.has(`${view}/${r.index}`)) {
      rejectedInView.add(`${view}/${r.index}`);
      countFor(view);
    }
    if (rejected.has(r.index)) return;
    rejected.add(r.index);
    result.rejected.push(r);
    unsent.push(r);
  };
  const handOver = async () => {
    const batch = unsent;
    unsent = [];
    await deadLetters(batch);
  };
  const accepted: IncomingEvent[] = [];
  for (const e of events) {
    const ahead = futureRefusal(clock, e);
    if (ahead !== undefined) {
      reject({ index: e.index, reason: 'future', message: ahead }, null);
    } else {
      accepted.push(e);
    }
  }
  const byEntity = new Map<string, IncomingEvent[]>();
  for (const e of accepted) {
    const list = byEntity.get(e.entity);
    if (list) list.push(e);
    else byEntity.set(e.entity, [e]);
  }
  for (const list of byEntity.values()) list.sort((a, b) => a.partition - b.partition || a.offset - b.offset);

  for (const view of views) {
    let pending = [...byEntity.keys()];
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > MAX_CAS_ATTEMPTS) {
        // Retriable: the batch is redelivered and tried again once the other writer is gone.
        throw new TesseraError(
          'SERVICE_UNAVAILABLE',
          `gave up after ${MAX_CAS_ATTEMPTS} compare-and-set conflicts on ${pending.length} entities of view ${view.plan.view.name}: is another ingestor writing the same entities under another consumer group?`,
          { retriable: true, context: { view: view.plan.view.name, entities: pending.slice(0, 10) } },
        );
      }
      let t = performance.now();
      const loaded = await view.store.loadMany(pending);
      ms.load += performance.now() - t;
      t = performance.now();
      const outcomes = new Map<string, EntityOutcome>();
      const saves: SaveRequest[] = [];
      let slice = t;
      for (const entity of pending) {
        if (performance.now() - slice > SLICE_MS) {
          await pause();
          slice = performance.now();
        }
        const current = loaded.get(entity)!;
        const outcome = applyEntity(view.plan, current, byEntity.get(entity)!, clock, rows);
        outcomes.set(entity, outcome);
        if (outcome.applied.length > 0)
          saves.push({
            entity,
            version: current.version,
            stored: current.stored,
            state: current.state,
            applied: outcome.applied,
            now: clock.mode === 'wall' ? clock.now : undefined,
            reader: outcome.reader,
          });
      }
      ms.apply += performance.now() - t;
      t = performance.now();
      // Late events of every entity applied in this attempt, also of those whose write will lose
      // (re-applied, they are late again and not handed over twice).
      for (const outcome of outcomes.values()) for (const r of outcome.late) reject(r, view.plan.view.name);
      await Promise.all([rows?.flush(), handOver()]);
      ms.rows += performance.now() - t;
      t = performance.now();
      const { conflicts, versions } =
        saves.length > 0
          ? await view.store.saveMany(saves)
          : { conflicts: [], versions: new Map<string, number>() };
      ms.save += performance.now() - t;
      const lost = new Set(conflicts);
      result.conflicts += conflicts.length;
      for (const [entity, outcome] of outcomes) {
        if (lost.has(entity)) continue;
        collect(result, view.plan, entity, outcome, versions.get(entity) ?? loaded.get(entity)!.version);
      }
      pending = conflicts;
    }
  }
  // The rows not flushed yet: the no-row marks of a batch in which no entity was left to apply.
  await Promise.all([rows?.flush(), handOver()]);
  return result;
}

interface EntityOutcome {
  /** The events applied, in order: the delta record a save may append instead of the full state. */
  applied: EngineEvent[];
  duplicates: number;
  dropped: number;
  late: Rejection[];
  state: EntityState;
  /** The reader over `state`, to keep with it (none for a small state read directly). */
  reader: BeforeEventReader | undefined;
  newest: number;
  /** The fresh vector to push: when anything was applied, or the events were all applied before. */
  update: { asOf: number; values: FeatureValue[] } | null;
}

function applyEntity(
  plan: ViewPlan,
  current: LoadedState,
  events: readonly IncomingEvent[],
  clock: ClockOptions,
  rows: RowSink | null,
): EntityOutcome {
  const state = current.state;
  // Incremental reads: a busy entity's before-event values cost O(1) each, not a window scan. Room
  // for as many appended events as the state holds, so a reader kept across batches is rebuilt
  // (bigger) only after the entity has doubled, and a small entity's mirror stays small.
  //
  // A small state without a reader is read directly instead (readFeatures: the same values, a scan
  // of its few events): a reader costs ~1 KB per exact feature, kept in the cache with the state,
  // and most entities of a stream are small.
  const direct = current.reader === undefined && eventCount(state) + events.length <= DIRECT_READ_EVENTS;
  const reader = direct
    ? undefined
    : (current.reader ?? new BeforeEventReader(plan, state, Math.max(events.length, eventCount(state), 16)));
  const read = (t: number) => (reader ? reader.read(t) : readFeatures(plan, state, t));
  const outcome: EntityOutcome = {
    applied: [],
    duplicates: 0,
    dropped: 0,
    late: [],
    state,
    reader,
    newest: Number.NEGATIVE_INFINITY,
    update: null,
  };
  const now = clock.mode === 'wall' ? clock.now : undefined;
  const byArrival = clock.mode === 'record';
  for (const e of events) {
    const engineEvent: EngineEvent = toEngineEvent(plan, e.record, e.ts, e.partition, e.offset);
    // "Features before this event": only answerable (and only needed) when the event is not late.
    const before = rows?.training && e.ts >= readFloor(plan, state) ? read(e.ts) : null;
    try {
      const { outcome: kind, dropped } = applyEvent(
        plan,
        state,
        engineEvent,
        now,
        byArrival ? e.arrival : undefined,
      );
      reader?.synced(engineEvent);
      if (kind === 'duplicate') {
        outcome.duplicates++;
        continue;
      }
      outcome.applied.push(engineEvent);
      outcome.dropped += dropped;
      outcome.newest = Math.max(outcome.newest, e.ts);
      if (before && rows)
        rows.add({
          view: plan.view.name,
          entity: e.entity,
          ts: e.ts,
          partition: e.partition,
          offset: e.offset,
          values: before,
        });
    } catch (error) {
      if (!isTesseraError(error, 'EVENT_LATE')) throw error;
      outcome.late.push({ index: e.index, reason: 'late', message: error.message });
      rows?.noRow(plan.view.name, e.partition, e.offset, 'late', e.ts);
    }
  }
  // As of just after the entity's newest event (from this batch or an earlier one), read with the
  // same reader: its windows only move forward from the last event, no window scan. Also when the
  // events were all duplicates: a fetch redelivered after its states were saved but before its push
  // (a crash, a failure later in the fetch) pushes them now, or they would never be pushed.
  const latest = state.events[state.events.length - 1]?.ts ?? outcome.newest;
  if (outcome.applied.length > 0 || (outcome.duplicates > 0 && Number.isFinite(latest))) {
    const asOf = Math.max(latest, outcome.newest) + 1;
    outcome.update = { asOf, values: read(asOf) };
  }
  return outcome;
}

function collect(
  result: BatchResult,
  plan: ViewPlan,
  entity: string,
  outcome: EntityOutcome,
  version: number,
): void {
  const view = plan.view.name;
  bump(result.applied, view, outcome.applied.length);
  bump(result.duplicates, view, outcome.duplicates);
  bump(result.cappedDrops, view, outcome.dropped);
  if (outcome.update) result.updates.push({ view, entity, version, ...outcome.update });
  if (outcome.applied.length > 0) {
    result.newestEventTime.set(
      view,
      Math.max(result.newestEventTime.get(view) ?? Number.NEGATIVE_INFINITY, outcome.newest),
    );
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  if (by > 0) map.set(key, (map.get(key) ?? 0) + by);
}
