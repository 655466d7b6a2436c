// The oracle of the ingestor's effectively-once tests (test/support/ingestor-process.ts) must be
// able to fail: states built with events applied twice, lost or doubled here and there, or with
// applied offsets off by one, must each be reported, while an exact replay through the state codec
// must not. It once read every entity at the newest event of the whole stream, months after most
// users' last event, where almost every window was empty: every event applied twice then showed
// in 2 of 13,545 entities.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  applyEvent,
  decodeState,
  type EntityState,
  emptyState,
  encodeState,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { type FraudEvent, fraudEngineEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { DAY, fraudPlan } from '../support/engine-fixtures.ts';
import {
  type LogPositions,
  type OfflineRun,
  runOffline,
  sameFeatureValue,
  stateDifferences,
} from '../support/ingestor-process.ts';

// Like ingestor-crash's stream, smaller: the generator's window-edge events put its newest event
// far after most users' last one.
const events = generateFraudEvents({ events: 20_000, seed: 99 });
const t = events.reduce((m, e) => Math.max(m, e.event_timestamp), 0) + 1;

interface Faults {
  /** Events applied a second time, as if their offset had not been checked. */
  twice?: (i: number) => boolean;
  /** Events never applied, their offsets recorded all the same (an effect lost after its commit). */
  lose?: (i: number) => boolean;
}

/** States as an ingestor with these faults leaves them in Redis: encoded and decoded again. */
function onlineStates(
  plan: ViewPlan,
  offline: OfflineRun,
  faults: Faults = {},
): Map<string, EntityState | null> {
  const states = new Map<string, EntityState>();
  events.forEach((e, i) => {
    const key = String(e.user_id);
    let state = states.get(key);
    if (!state) {
      state = emptyState(plan);
      states.set(key, state);
    }
    if (faults.lose?.(i)) return;
    applyEvent(plan, state, fraudEngineEvent(plan, e));
    if (faults.twice?.(i)) {
      state.offset = e.offset - 1;
      assert.equal(applyEvent(plan, state, fraudEngineEvent(plan, e)).outcome, 'applied');
    }
  });
  const out = new Map<string, EntityState | null>();
  for (const [key, state] of states) {
    // Offsets as the offline run's: only the features can tell these faults.
    const want = offline.states.get(key)!;
    state.partition = want.partition;
    state.offset = want.offset;
    out.set(key, decodeState(plan, encodeState(plan, state)));
  }
  return out;
}

/** Users with a faulty event in the 24 h before their newest: their 24 h count cannot be right. */
function visibleFaults(offline: OfflineRun, faulty: (i: number) => boolean): Set<string> {
  const out = new Set<string>();
  events.forEach((e: FraudEvent, i) => {
    const key = String(e.user_id);
    if (faulty(i) && e.event_timestamp >= offline.newest.get(key)! + 1 - DAY) out.add(key);
  });
  return out;
}

function reportedUsers(differences: string[]): Set<string> {
  return new Set(differences.map((d) => /^user (\S+):/.exec(d)![1]!));
}

describe('differences from the offline engine', () => {
  for (const mode of ['exact', 'tiled'] as const) {
    it(`finds none for an exact replay through the state codec (${mode})`, () => {
      const plan = fraudPlan(mode);
      const offline = runOffline(plan, events);
      assert.deepEqual(stateDifferences(plan, offline, onlineStates(plan, offline), t), []);
    });
  }

  it('reports every entity when every event is applied twice', () => {
    const plan = fraudPlan();
    const offline = runOffline(plan, events);
    const differences = stateDifferences(
      plan,
      offline,
      onlineStates(plan, offline, { twice: () => true }),
      t,
    );
    assert.equal(differences.length, offline.states.size, differences.slice(0, 3).join('\n'));
  });

  it('reports the entities that lost events, with the feature, time and both values', () => {
    const plan = fraudPlan();
    const offline = runOffline(plan, events);
    const lose = (i: number) => i % 2 === 1;
    const differences = stateDifferences(plan, offline, onlineStates(plan, offline, { lose }), t);
    const must = visibleFaults(offline, lose);
    assert.ok(must.size > 100, `users with a lost event in their last 24 h: ${must.size}`);
    const reported = reportedUsers(differences);
    assert.deepEqual(
      [...must].filter((u) => !reported.has(u)),
      [],
    );
    assert.match(differences[0]!, /^user \d+: \w+ as of \d{4}-\d\d-\d\dT[\d:.]+Z: online \S+, offline \S+$/);
  });

  it('reports a few doubled events (1 in 40)', () => {
    const plan = fraudPlan();
    const offline = runOffline(plan, events);
    const twice = (i: number) => i % 40 === 0;
    const differences = stateDifferences(plan, offline, onlineStates(plan, offline, { twice }), t);
    const must = visibleFaults(offline, twice);
    assert.ok(must.size > 10, `users with a doubled event in their last 24 h: ${must.size}`);
    const reported = reportedUsers(differences);
    assert.deepEqual(
      [...must].filter((u) => !reported.has(u)),
      [],
    );
  });

  it('reports applied offsets that differ although every feature is equal', () => {
    const plan = fraudPlan();
    const offline = runOffline(plan, events);
    const online = onlineStates(plan, offline);
    const [behind, ahead] = [...online.keys()];
    online.get(behind!)!.offset -= 1; // its last record would be applied again when redelivered
    online.get(ahead!)!.offset += 1; // a record never applied would be skipped
    const differences = stateDifferences(plan, offline, online, t);
    assert.deepEqual(
      differences.map((d) => d.replace(/ online .*/, '')),
      [`user ${behind}: applied offsets`, `user ${ahead}: applied offsets`],
    );
  });

  it('reports an entity without state online', () => {
    const plan = fraudPlan();
    const offline = runOffline(plan, events);
    const online = onlineStates(plan, offline);
    const [gone] = online.keys();
    online.set(gone!, null);
    assert.deepEqual(stateDifferences(plan, offline, online, t), [`user ${gone}: no state online`]);
  });

  it('takes each event at its position in the log, and reports a user whose messages do not pair', () => {
    const plan = fraudPlan();
    const positions: LogPositions = new Map();
    for (const e of events) {
      const list = positions.get(String(e.user_id)) ?? [];
      list.push([7, 1000 + list.length]);
      positions.set(String(e.user_id), list);
    }
    const [short] = positions.keys();
    positions.get(short!)!.pop();
    const offline = runOffline(plan, events, positions);
    assert.deepEqual(offline.unpaired, [short]);
    const [, other] = positions.keys();
    const state = offline.states.get(other!)!;
    assert.deepEqual([state.partition, state.offset], positions.get(other!)!.at(-1));
    assert.match(
      stateDifferences(plan, offline, new Map(), t)[0]!,
      new RegExp(`^user ${short}: the log holds`),
    );
  });

  it('compares values as Object.is does', () => {
    assert.equal(sameFeatureValue(0, -0), false);
    assert.equal(sameFeatureValue(Number.NaN, Number.NaN), true);
    assert.equal(sameFeatureValue(0.1 + 0.2, 0.3), false);
    assert.equal(sameFeatureValue(['a', 1], ['a', 1]), true);
    assert.equal(sameFeatureValue(['a', 1], ['a', 1, 2]), false);
    assert.equal(sameFeatureValue(null, 0), false);
  });
});
