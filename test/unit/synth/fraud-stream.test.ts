// The fraud generator builds its events a chunk at a time (streamFraudEvents) so the producer can
// send millions in bounded memory; every caller that regenerates a stream from its seed (the
// engine's offline comparison, the producer's integration test, the benchmarks) relies on it
// being the same stream as the all-at-once generator's, event for event. Checked against a frozen
// copy of the all-at-once generator as it was when the stream was introduced.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { planMessages } from '../../../services/producer/produce.ts';
import { createEncoder } from '../../../shared/codecs/index.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import {
  type FraudEvent,
  type FraudStreamOptions,
  fraudEventsToCsv,
  generateFraudEvents,
  streamFraudEvents,
} from '../../../shared/synth/fraud-events.ts';
import { seededRng, zipfSampler } from '../../../shared/synth/random.ts';

const HOUR = 3_600_000;
const EDGES = [HOUR, 24 * HOUR, 7 * 24 * HOUR, 30 * 24 * HOUR];

/** The all-at-once generator (JS objects for every draft), kept unchanged as the reference. */
function referenceFraudEvents(options: FraudStreamOptions): FraudEvent[] {
  const n = options.events;
  const rng = seededRng(options.seed ?? 42);
  const users = options.users ?? Math.max(10, Math.ceil(n / 10));
  const merchants = options.merchants ?? Math.max(20, Math.ceil(users / 5));
  const start = options.start ?? Date.UTC(2026, 0, 1);
  const span = options.spanMs ?? 35 * 24 * HOUR;
  const partitions = options.partitions ?? 6;
  const maxDelay = options.maxDelayMs ?? 50 * 60_000;
  const lateFraction = options.lateFraction ?? 0.05;
  const pickUser = zipfSampler(rng, users, options.userSkew ?? 1.1);
  const pickMerchant = zipfSampler(rng, merchants, 1.0);
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
      ts = past[rng.int(past.length)] as number;
    } else if (past.length > 0 && roll < 0.08) {
      ts = (past[rng.int(past.length)] as number) + (EDGES[rng.int(EDGES.length)] as number);
    }
    const burst = roll > 0.985 ? 3 + rng.int(15) : 1;
    for (let b = 0; b < burst && drafts.length < n; b++) {
      const t = ts + b * (1 + rng.int(20_000));
      const merchant =
        burst > 1 || rng.next() < 0.15 ? `m_${pickMerchant()}` : (mine[rng.int(mine.length)] as string);
      drafts.push({ user: userId, ts: t, amount: burst > 1 ? amountOf(1) : amountOf(20), merchant });
      past.push(t);
    }
  }
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

const CASES: FraudStreamOptions[] = [
  { events: 0, seed: 1 },
  { events: 1, seed: 1 },
  { events: 17, seed: 2 },
  { events: 5_000, seed: 1 },
  { events: 20_000, seed: 99 },
  { events: 30_000, seed: 20260101 },
  { events: 12_345, seed: 777, users: 40, partitions: 3 },
  { events: 8_000, seed: 5, users: 3000, merchants: 7, lateFraction: 0.5, maxDelayMs: 7_200_000 },
  { events: 4_000, seed: 0, start: Date.UTC(2025, 5, 1), spanMs: 2 * HOUR, userSkew: 2 },
];

describe('streamed fraud events', () => {
  for (const options of CASES) {
    it(`equal the all-at-once stream, byte for byte, in any chunk size: ${JSON.stringify(options)}`, () => {
      const want = fraudEventsToCsv(referenceFraudEvents(options));
      assert.equal(fraudEventsToCsv(generateFraudEvents(options)), want);
      const stream = streamFraudEvents(options);
      assert.equal(stream.count, options.events);
      for (const size of [1, 7, 4096, 1_000_000]) {
        const chunks = [...stream.chunks(size)];
        assert.ok(chunks.every((c) => c.length <= size && c.length > 0));
        assert.equal(fraudEventsToCsv(chunks.flat()), want, `chunks of ${size}`);
      }
      // Iterated again: the same events, Kafka offsets counted from 0 again.
      assert.equal(fraudEventsToCsv([...stream]), want);
      const times = referenceFraudEvents(options).map((e) => e.event_timestamp);
      assert.equal(stream.lastTimestamp, times.length > 0 ? Math.max(...times) : Number.NEGATIVE_INFINITY);
    });
  }

  it("the producer's messages are those of the all-at-once events, --now-based and bad ones included", () => {
    const source = loadDefinitionsFile('definitions/fraud.yaml').sources[0]!;
    const now = Date.UTC(2027, 5, 1);
    const plan = planMessages({
      source,
      definitionsDir: 'definitions',
      events: 20_000,
      seed: 3,
      badFraction: 0.02,
      nowBased: true,
      now: () => now,
    });
    const reference = referenceFraudEvents({ events: 20_000, seed: 3 });
    const last = Math.max(...reference.map((e) => e.event_timestamp));
    assert.equal(plan.shiftMs, now - last);
    assert.equal(plan.count, 20_000);
    const shifted = reference.map((e) => ({ ...e, event_timestamp: e.event_timestamp + plan.shiftMs }));
    assert.equal(fraudEventsToCsv([...plan.events]), fraudEventsToCsv(shifted));
    // The good messages, byte for byte, are the reference events encoded (bad ones interleaved).
    const encoder = createEncoder(source, { definitionsDir: 'definitions', schemaId: 1 });
    const good = [...plan.messages()].filter((m) => m.bad === undefined);
    assert.equal(good.length, shifted.length);
    shifted.forEach((e, i) => {
      const record = {
        user_id: e.user_id,
        event_timestamp: e.event_timestamp,
        amount: e.amount,
        merchant_id: e.merchant_id,
      };
      assert.equal(String(good[i]!.key), String(e.user_id));
      assert.ok(Buffer.from(encoder.encode(record)).equals(Buffer.from(good[i]!.value)), `message ${i}`);
    });
  });

  it('the producer plans 1M events within a 96 MB heap (all at once they needed ~400 MB)', () => {
    // A heap cap, not a timing: the old plan built every event as an object before the first
    // message and died of it here (V8 "heap out of memory").
    const script = `
      import { planMessages } from './services/producer/produce.ts';
import { loadDefinitionsFile } from './shared/definitions/load.ts';
      const source = loadDefinitionsFile('definitions/fraud.yaml').sources[0];
      let n = 0;
      for (const m of planMessages({ source, definitionsDir: 'definitions', events: 1_000_000, seed: 1 }).messages()) n++;
      console.log(n);`;
    const run = spawnSync(
      process.execPath,
      ['--max-old-space-size=96', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(run.status, 0, run.stderr.slice(-2000));
    assert.equal(run.stdout.trim(), '1000000');
  });
});
