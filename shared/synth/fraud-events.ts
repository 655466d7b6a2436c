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

/** Generates `events` events in ARRIVAL order (not time order); offsets follow arrival per partition. */
export function generateFraudEvents(options: FraudStreamOptions): FraudEvent[] {
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

  // Per user: a handful of usual merchants, and the times of their own past events.
  const usual = new Map<number, string[]>();
  const history = new Map<number, number[]>();
  const drafts: { user: number; ts: number; amount: number; merchant: string }[] = [];
  const amountOf = (scale: number): number =>
    Math.round(Math.exp(rng.next() * 2 + Math.log(scale)) * 100) / 100;

  while (drafts.length < n) {
    const user = pickUser();
    const userId = 1000 + user;
    let mine = usual.get(userId);
    if (!mine) {
      mine = Array.from({ length: 1 + rng.int(5) }, () => `m_${pickMerchant()}`);
      usual.set(userId, mine);
    }
    const past = history.get(userId) ?? [];
    history.set(userId, past);
    const roll = rng.next();
    let ts = start + Math.floor(rng.next() * span);
    if (past.length > 0 && roll < 0.03) {
      ts = past[rng.int(past.length)] as number; // tie: same millisecond as an earlier event
    } else if (past.length > 0 && roll < 0.08) {
      ts = (past[rng.int(past.length)] as number) + (EDGES[rng.int(EDGES.length)] as number); // window edge
    }
    const burst = roll > 0.985 ? 3 + rng.int(15) : 1; // card-testing burst: rapid small payments
    for (let b = 0; b < burst && drafts.length < n; b++) {
      const t = ts + b * (1 + rng.int(20_000));
      const merchant =
        burst > 1 || rng.next() < 0.15 ? `m_${pickMerchant()}` : (mine[rng.int(mine.length)] as string);
      drafts.push({ user: userId, ts: t, amount: burst > 1 ? amountOf(1) : amountOf(20), merchant });
      past.push(t);
    }
  }

  // Arrival order: by time, except a fraction that arrives up to maxDelay later.
  const arrivals = drafts.map((d, i) => ({
    i,
    at: d.ts + (rng.next() < lateFraction ? rng.int(maxDelay) : 0),
  }));
  arrivals.sort((a, b) => a.at - b.at || a.i - b.i);
  const nextOffset = new Array<number>(partitions).fill(0);
  return arrivals.map(({ i }) => {
    const d = drafts[i]!;
    const partition = d.user % partitions;
    const offset = nextOffset[partition]!;
    nextOffset[partition] = offset + 1;
    return {
      user_id: d.user,
      event_timestamp: d.ts,
      amount: d.amount,
      merchant_id: d.merchant,
      partition,
      offset,
    };
  });
}

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
