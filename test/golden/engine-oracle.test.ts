// Golden tests: the engine against the independent Python oracle on >= 100k generated fraud-like
// events, for the six reference features, in exact mode (identical to the seed's loop) and in
// tiled mode (identical to the same loop with the documented tile rounding). Values must be
// equal bit for bit: the oracle sums with math.fsum, the engine with exact partials.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  applyEvent,
  type EntityState,
  emptyState,
  type FeatureValue,
  featuresBeforeEachByEntity,
  readFeatures,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { type FraudEvent, fraudEngineEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { fraudPlan } from '../support/engine-fixtures.ts';
import { type OracleValue, runOracle } from '../support/oracle.ts';

const EVENTS = Number(process.env.GOLDEN_EVENTS ?? 100_000);

function engineEvents(plan: ViewPlan, events: readonly FraudEvent[]) {
  return events.map((e) => fraudEngineEvent(plan, e));
}

function assertRowsEqual(
  plan: ViewPlan,
  engine: FeatureValue[][],
  oracle: OracleValue[][],
  rows: Iterable<number>,
  label: string,
): number {
  let compared = 0;
  const mismatches: string[] = [];
  for (const i of rows) {
    compared++;
    plan.features.forEach((f, j) => {
      const a = engine[i]![j];
      const b = oracle[i]![j];
      // Object.is: bit for bit, so also -0 against 0 (the oracle, math.fsum and positive
      // amounts, never gives -0) and NaN against NaN.
      if (!Object.is(a, b) && mismatches.length < 10) {
        mismatches.push(`row ${i} ${f.def.name}: engine ${a}, oracle ${b}`);
      }
    });
  }
  assert.deepEqual(mismatches, [], `${label}: first mismatches`);
  return compared;
}

for (const mode of ['exact', 'tiled'] as const) {
  describe(`engine == oracle on ${EVENTS} events (${mode} mode)`, () => {
    const plan = fraudPlan(mode);
    const events = generateFraudEvents({ events: EVENTS, seed: mode === 'exact' ? 20260101 : 777 });
    let oracle: OracleValue[][] = [];

    before(() => {
      const run = runOracle(plan, events);
      oracle = run.rows;
      console.log(`# oracle (${mode}) took ${run.seconds.toFixed(1)} s for ${EVENTS} events`);
    });

    it('training rows (features before each event) equal the oracle on every row', () => {
      const rows = featuresBeforeEachByEntity(
        plan,
        events.map((e) => String(e.user_id)),
        engineEvents(plan, events),
      );
      assert.equal(assertRowsEqual(plan, rows, oracle, rows.keys(), 'training rows'), EVENTS);
    });

    it('online reads before each event equal the oracle wherever no earlier event was still in flight', () => {
      // Apply in arrival order (out of order within lateness). A row's online value can only match
      // the full-log oracle when no event of that user with an earlier time arrives after it.
      const eng = engineEvents(plan, events);
      const states = new Map<number, EntityState>();
      const online: FeatureValue[][] = new Array(events.length);
      events.forEach((e, i) => {
        let state = states.get(e.user_id);
        if (!state) {
          state = emptyState(plan);
          states.set(e.user_id, state);
        }
        online[i] = readFeatures(plan, state, e.event_timestamp);
        applyEvent(plan, state, eng[i]!);
      });
      const laterMin = new Map<number, number>();
      const settled: number[] = [];
      for (let i = events.length - 1; i >= 0; i--) {
        const e = events[i]!;
        if ((laterMin.get(e.user_id) ?? Number.POSITIVE_INFINITY) >= e.event_timestamp) settled.push(i);
        laterMin.set(
          e.user_id,
          Math.min(laterMin.get(e.user_id) ?? Number.POSITIVE_INFINITY, e.event_timestamp),
        );
      }
      const compared = assertRowsEqual(plan, online, oracle, settled, 'online before-event reads');
      assert.ok(
        compared > EVENTS * 0.7,
        `only ${compared} settled rows: the generator should be mostly in order`,
      );
      assert.ok(
        compared < EVENTS,
        'the stream must contain out-of-order events for this test to mean something',
      );
      console.log(
        `# online reads compared on ${compared} of ${EVENTS} rows (the rest had later-arriving earlier events)`,
      );
    });
  });
}
