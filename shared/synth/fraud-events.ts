// Seeded generator of fraud-like transaction streams for tests, benchmarks and the demo producer:
// Zipf-distributed users and merchants, bursts of rapid transactions, ties on one timestamp,
// events exactly at window edges, out-of-order arrival within the allowed lateness, cent amounts.
import { type EngineEvent, toEngineEvent, type ViewPlan } from '../engine/index.ts';
import { seededRng, zipfSampler } from './random.ts';

export interface FraudEvent {
  user_id: number;
  /** Epoch milliseconds, UTC. */
  event_timestamp: number;
  amount: number;
  merchant_id: string;
  partition: number;
  offset: number;
}

export interface FraudStreamOptions {
  events: number;
  seed?: number;
  users?: number;
  merchants?: number;
  /** Zipf exponent of user activity. */
  userSkew?: number;
  /** First event time (ms). */
  start?: number;
  /** Span of event times (ms). */
  spanMs?: number;
  partitions?: number;
  /** Max arrival delay of out-of-order events (ms); keep it under the view's allowed lateness. */
  maxDelayMs?: number;
  /** Fraction of events that arrive late (out of order). */
  lateFraction?: number;
}

const HOUR = 3_600_000;
const EDGES = [HOUR, 24 * HOUR, 7 * 24 * HOUR, 30 * 24 * HOUR];

/**
 * A generated stream, iterable as often as wanted (each pass yields the same events, offsets
 * counted afresh). The events are built on demand: the stream itself holds ~30 bytes per event of
 * typed columns rather than ~300 as JS objects, so a producer can send millions of events in
 * bounded chunks. Arrival order is a sort over the whole stream, so these columns stay O(events).
 */
export interface FraudStream extends Iterable<FraudEvent> {
  /** Number of events. */
  readonly count: number;
  /** Largest event_timestamp (-Infinity when empty). */
  readonly lastTimestamp: number;
  /** The events in arrival order, at most `size` per array. */
  chunks(size: number): Generator<FraudEvent[]>;
}

/** Generates `events` events in ARRIVAL order (not time order); offsets follow arrival per partition. */
export function generateFraudEvents(options: FraudStreamOptions): FraudEvent[] {
  return Array.from(streamFraudEvents(options));
}

/**
 * The events of generateFraudEvents (same options, same seed: the same events, field for field),
 * as a stream that builds them a chunk at a time.
 */
export function streamFraudEvents(options: FraudStreamOptions): FraudStream {
  const n = options.events;
  const rng = seededRng(options.seed ?? 42);
  // About 10 transactions per user per month on average, Zipf-skewed: a few very busy users.
  const users = options.users ?? Math.max(10, Math.ceil(n / 10));
  const merchants = options.merchants ?? Math.max(20, Math.ceil(users / 5));
  const start = options.start ?? Date.UTC(2026, 0, 1);
  const span = options.spanMs ?? 35 * 24 * HOUR;
  const partitions = options.partitions ?? 6;
  const maxDelay = options.maxDelayMs ?? 50 * 60_000;
  const lateFraction = options.lateFraction ?? 0.05;
  const pickUser = zipfSampler(rng, users, options.userSkew ?? 1.1);
  const pickMerchant = zipfSampler(rng, merchants, 1.0);

  // Per user (by Zipf rank): a handful (1..5) of usual merchants, and the times of their own past
  // events. The draws below must stay in this order: the seed fixes the stream through them.
  const usual = new Int32Array(users * 5);
  const usualCount = new Uint8Array(users);
  const history: (number[] | undefined)[] = new Array(users);
  // The drafts as columns; a merchant is its Zipf rank (merchant_id `m_<rank>`).
  const user = new Int32Array(n);
  const ts = new Float64Array(n);
  const amount = new Float64Array(n);
  const merchant = new Int32Array(n);
  let drafted = 0;
  const amountOf = (scale: number): number =>
    Math.round(Math.exp(rng.next() * 2 + Math.log(scale)) * 100) / 100;

  while (drafted < n) {
    const rank = pickUser();
    if (usualCount[rank] === 0) {
      const k = 1 + rng.int(5);
      for (let j = 0; j < k; j++) usual[rank * 5 + j] = pickMerchant();
      usualCount[rank] = k;
    }
    let past = history[rank];
    if (past === undefined) {
      past = [];
      history[rank] = past;
    }
    const roll = rng.next();
    let t0 = start + Math.floor(rng.next() * span);
    if (past.length > 0 && roll < 0.03) {
      t0 = past[rng.int(past.length)] as number; // tie: same millisecond as an earlier event
    } else if (past.length > 0 && roll < 0.08) {
      t0 = (past[rng.int(past.length)] as number) + (EDGES[rng.int(EDGES.length)] as number); // window edge
    }
    const burst = roll > 0.985 ? 3 + rng.int(15) : 1; // card-testing burst: rapid small payments
    for (let b = 0; b < burst && drafted < n; b++) {
      const t = t0 + b * (1 + rng.int(20_000));
      merchant[drafted] =
        burst > 1 || rng.next() < 0.15
          ? pickMerchant()
          : (usual[rank * 5 + rng.int(usualCount[rank] as number)] as number);
      amount[drafted] = burst > 1 ? amountOf(1) : amountOf(20);
      user[drafted] = 1000 + rank;
      ts[drafted] = t;
      drafted++;
      past.push(t);
    }
  }

  // Arrival order: by time, except a fraction that arrives up to maxDelay later (ties by draft).
  const at = new Float64Array(n);
  let lastTimestamp = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    at[i] = ts[i]! + (rng.next() < lateFraction ? rng.int(maxDelay) : 0);
    if (ts[i]! > lastTimestamp) lastTimestamp = ts[i]!;
  }
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => at[a]! - at[b]! || a - b);

  function* chunks(size: number): Generator<FraudEvent[]> {
    const step = Math.max(1, Math.floor(size));
    const nextOffset = new Array<number>(partitions).fill(0);
    for (let from = 0; from < n; from += step) {
      const chunk: FraudEvent[] = [];
      for (let k = from; k < Math.min(n, from + step); k++) {
        const i = order[k]!;
        const u = user[i]!;
        const partition = u % partitions;
        const offset = nextOffset[partition]!;
        nextOffset[partition] = offset + 1;
        chunk.push({
          user_id: u,
          event_timestamp: ts[i]!,
          amount: amount[i]!,
          merchant_id: `m_${merchant[i]!}`,
          partition,
          offset,
        });
      }
      yield chunk;
    }
  }
  return {
    count: n,
    lastTimestamp,
    chunks,
    *[Symbol.iterator]() {
      for (const chunk of chunks(STREAM_CHUNK)) yield* chunk;
    },
  };
}

/** Events built at a time when a stream is iterated one by one. */
const STREAM_CHUNK = 4096;

/** CSV in the oracle's interchange format (test/oracle/README.md). */
export function fraudEventsToCsv(events: readonly FraudEvent[]): string {
  const lines = ['user_id,event_timestamp,amount,merchant_id,partition,offset'];
  for (const e of events)
    lines.push(`${e.user_id},${e.event_timestamp},${e.amount},${e.merchant_id},${e.partition},${e.offset}`);
  return `${lines.join('\n')}\n`;
}

/**
 * A generated event as the engine takes it, at its own Kafka position unless another is given
 * (tests that replay one entity's events in a single sequence pass their own).
 */
export function fraudEngineEvent(
  plan: ViewPlan,
  e: FraudEvent,
  partition = e.partition,
  offset = e.offset,
): EngineEvent {
  return toEngineEvent(plan, e as unknown as Record<string, unknown>, e.event_timestamp, partition, offset);
}
