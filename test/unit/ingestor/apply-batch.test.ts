// applyBatch with an in-memory state store (a pure unit: the Redis path is covered by the
// integration tests). Proves the order that keeps training rows from being lost: rows are delivered
// before the state that makes their events duplicates is written.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyBatch,
  type ClockOptions,
  DIRECT_READ_EVENTS,
  type IncomingEvent,
  type RowSink,
  type StateStore,
  type TrainingRow,
  type ViewRuntime,
} from '../../../services/ingestor/apply-batch.ts';
import {
  decodeState,
  emptyState,
  encodeState,
  planView,
  type ViewPlan,
} from '../../../shared/engine/index.ts';
import type { LoadedState, SaveRequest } from '../../../shared/state-store/redis-state-store.ts';
import type { FraudEvent } from '../../../shared/synth/fraud-events.ts';
import { seededRng } from '../../../shared/synth/random.ts';
import { fraudPlan, HOUR, T0 } from '../../support/engine-fixtures.ts';
import { naiveFraudValue, sameValue } from '../../support/naive-reference.ts';

const plan = fraudPlan('exact');

/** Stores encoded blobs like Redis does, so a reload decodes what was saved. */
function memoryStore(
  storePlan: ViewPlan = plan,
): StateStore & { blobs: Map<string, { version: number; blob: Buffer }> } {
  const blobs = new Map<string, { version: number; blob: Buffer }>();
  return {
    blobs,
    async loadMany(entities) {
      const out = new Map<string, LoadedState>();
      for (const e of entities) {
        const saved = blobs.get(e);
        out.set(
          e,
          saved
            ? { version: saved.version, state: decodeState(storePlan, saved.blob) }
            : { version: 0, state: emptyState(storePlan) },
        );
      }
      return out;
    },
    async saveMany(requests: readonly SaveRequest[]) {
      const conflicts: string[] = [];
      const versions = new Map<string, number>();
      for (const r of requests) {
        const current = blobs.get(r.entity)?.version ?? 0;
        if (current !== r.version) {
          conflicts.push(r.entity);
          continue;
        }
        blobs.set(r.entity, { version: current + 1, blob: Buffer.from(encodeState(storePlan, r.state)) });
        versions.set(r.entity, current + 1);
      }
      return { conflicts, versions };
    },
  };
}

function events(): IncomingEvent[] {
  const out: IncomingEvent[] = [];
  for (let i = 0; i < 40; i++)
    out.push({
      index: i,
      partition: 0,
      offset: 100 + i,
      entity: String(i % 3),
      ts: T0 + i * 0.25 * HOUR,
      arrival: T0 + i * 0.25 * HOUR + 1000,
      record: {
        user_id: i % 3,
        event_timestamp: T0 + i * 0.25 * HOUR,
        amount: 10 + i,
        merchant_id: `m${i % 5}`,
      },
    });
  return out;
}

const clock = { mode: 'event' as const, now: 0 };

test('training rows are handed over before any state is written, and a failed hand-over writes nothing', async () => {
  const store = memoryStore();
  const views: ViewRuntime[] = [{ plan, store }];
  await assert.rejects(
    applyBatch(views, events(), clock, {
      training: true,
      add() {},
      noRow() {},
      async flush() {
        throw new Error('rows topic down');
      },
    }),
    /rows topic down/,
  );
  assert.equal(store.blobs.size, 0, 'no state may be saved when its rows were not delivered');

  const seen: number[] = [];
  const pending: number[] = [];
  const result = await applyBatch(views, events(), clock, {
    training: true,
    add: (r) => pending.push(r.offset),
    noRow: () => assert.fail('no event of this batch is late'),
    async flush() {
      if (pending.length > 0) assert.equal(store.blobs.size, 0, 'rows come before the compare-and-set');
      seen.push(...pending.splice(0));
    },
  });
  assert.deepEqual(pending, [], 'every row was flushed');
  assert.equal(result.applied.get(plan.view.name), 40);
  assert.deepEqual(
    seen.sort((a, b) => a - b),
    events().map((e) => e.offset),
  );
  assert.equal(store.blobs.size, 3);
});

test('a redelivered batch after the state was saved changes nothing and yields no second row', async () => {
  const store = memoryStore();
  const views: ViewRuntime[] = [{ plan, store }];
  await applyBatch(views, events(), clock);
  const saved = new Map([...store.blobs].map(([k, v]) => [k, v.blob.toString('hex')]));
  let rowsAgain = 0;
  const again = await applyBatch(views, events(), clock, {
    training: true,
    add: () => rowsAgain++,
    noRow: () => rowsAgain++,
    async flush() {},
  });
  assert.equal(again.applied.get(plan.view.name) ?? 0, 0);
  assert.equal(again.duplicates.get(plan.view.name), 40);
  assert.equal(rowsAgain, 0);
  assert.deepEqual(new Map([...store.blobs].map(([k, v]) => [k, v.blob.toString('hex')])), saved);
});

test('a batch redelivered after its states were saved pushes the same vectors again (its push may have been lost)', async () => {
  const store = memoryStore();
  const views: ViewRuntime[] = [{ plan, store }];
  const first = await applyBatch(views, events(), clock);
  const again = await applyBatch(views, events(), clock);
  assert.equal(again.applied.get(plan.view.name) ?? 0, 0);
  assert.equal(first.updates.length, 3);
  const byEntity = (u: typeof first.updates) => [...u].sort((a, b) => a.entity.localeCompare(b.entity));
  assert.deepEqual(byEntity(again.updates), byEntity(first.updates));
});

/** The events of events() plus, for entity 0, one 2 h older than its newest: late (1 h allowed). */
function withLate(): IncomingEvent[] {
  const list = events();
  const newest = list[list.length - 1]!;
  list.push({
    ...newest,
    index: list.length,
    offset: newest.offset + 1,
    entity: '0',
    ts: newest.ts - 2 * HOUR,
    record: { ...newest.record, user_id: 0, event_timestamp: newest.ts - 2 * HOUR },
  });
  return list;
}

test('late events are dead-lettered before any state is written, and a failed hand-over writes nothing', async () => {
  // Saved first, the state would carry a later offset of the late event's partition: redelivered,
  // the late event would count as a duplicate and never be dead-lettered.
  const store = memoryStore();
  const views: ViewRuntime[] = [{ plan, store }];
  const late = withLate().length - 1;
  await assert.rejects(
    applyBatch(views, withLate(), clock, null, undefined, async (rejected) => {
      if (rejected.length > 0) throw new Error('dlq topic down');
    }),
    /dlq topic down/,
  );
  assert.equal(store.blobs.size, 0, 'no state may be saved when its dead letters were not delivered');

  const handed: number[] = [];
  const result = await applyBatch(views, withLate(), clock, null, undefined, async (rejected) => {
    if (rejected.length > 0)
      assert.equal(store.blobs.size, 0, 'dead letters come before the compare-and-set');
    handed.push(...rejected.map((r) => r.index));
  });
  assert.deepEqual(handed, [late]);
  assert.deepEqual(
    result.rejected.map((r) => [r.index, r.reason]),
    [[late, 'late']],
  );
  assert.equal(result.applied.get(plan.view.name), 40);
  assert.equal(store.blobs.size, 3);
});

test('an event late for one view only is dead-lettered once and counted against that view alone', async () => {
  // Two views on one source; the second allows 100 hours of lateness and applies the event.
  const lenient = planView({ ...plan.view, name: 'lenient', allowedLatenessMs: 100 * HOUR });
  const views: ViewRuntime[] = [
    { plan, store: memoryStore() },
    { plan: lenient, store: memoryStore(lenient) },
  ];
  const late = withLate().length - 1;
  const handed: number[] = [];
  const result = await applyBatch(views, withLate(), clock, null, undefined, async (rejected) => {
    handed.push(...rejected.map((r) => r.index));
  });
  assert.deepEqual(handed, [late], 'one dead letter');
  assert.deepEqual([...result.rejectedByView], [[plan.view.name, 1]]);
  assert.equal(result.applied.get(plan.view.name), 40);
  assert.equal(result.applied.get('lenient'), 41);

  // Too far in the future (wall clock) is every view's rejection.
  const future = withLate();
  const wall = { mode: 'wall' as const, now: future[0]!.ts };
  const both = await applyBatch(
    [
      { plan, store: memoryStore() },
      { plan: lenient, store: memoryStore(lenient) },
    ],
    future.slice(0, 2).map((e, i) => (i === 1 ? { ...e, ts: wall.now + 10 * HOUR } : e)),
    wall,
  );
  assert.deepEqual(
    both.rejected.map((r) => r.reason),
    ['future'],
  );
  assert.deepEqual(
    [...both.rejectedByView],
    [
      [plan.view.name, 1],
      ['lenient', 1],
    ],
  );
});

test('with the training rows off, only the late events get marks (with their time), before any state is saved', async () => {
  const store = memoryStore();
  const list = withLate();
  const late = list[list.length - 1]!;
  const sink = collectRows(false);
  const flushed: string[] = [];
  const result = await applyBatch([{ plan, store }], list, clock, {
    ...sink,
    async flush() {
      if (sink.noRows.length > 0) assert.equal(store.blobs.size, 0, 'marks come before the compare-and-set');
      flushed.push(...sink.noRows.splice(0));
    },
  });
  assert.equal(result.applied.get(plan.view.name), list.length - 1);
  assert.deepEqual(sink.rows, [], 'no training rows');
  assert.deepEqual(flushed, [`${plan.view.name}/0/${late.offset}/late@${late.ts}`]);
});

test('a late event gets a no-row mark in the view that rejected it, flushed even when it is all the batch holds', async () => {
  const lenient = planView({ ...plan.view, name: 'lenient', allowedLatenessMs: 100 * HOUR });
  const views: ViewRuntime[] = [
    { plan, store: memoryStore() },
    { plan: lenient, store: memoryStore(lenient) },
  ];
  const list = withLate();
  const late = list[list.length - 1]!;
  await applyBatch(views, list.slice(0, -1), clock, collectRows());
  // The late event alone, redelivered on its own: nothing to save in the strict view, a row in
  // the lenient one, and the strict view's mark must still reach the rows topic.
  const flushed: string[] = [];
  const sink = collectRows();
  await applyBatch(views, [late], clock, {
    ...sink,
    async flush() {
      flushed.push(...sink.noRows.splice(0));
    },
  });
  assert.deepEqual(flushed, [`${plan.view.name}/0/${late.offset}/late@${late.ts}`]);
  assert.deepEqual(
    sink.rows.map((r) => [r.view, r.offset]),
    [['lenient', late.offset]],
  );

  // A future event (wall clock) gets no mark: a later redelivery may apply it.
  const wall = { mode: 'wall' as const, now: late.ts };
  const future = collectRows();
  const result = await applyBatch(
    [{ plan, store: memoryStore() }],
    [{ ...late, ts: wall.now + 10 * HOUR }],
    wall,
    future,
  );
  assert.deepEqual(
    result.rejected.map((r) => r.reason),
    ['future'],
  );
  assert.deepEqual(future.noRows, []);
});

/** What a writer left: its dead letters, its rows and no-row marks, and the states it saved. */
async function writerOutcome(list: IncomingEvent[], writerClock: ClockOptions) {
  const store = memoryStore();
  const sink = collectRows();
  const result = await applyBatch([{ plan, store }], list, writerClock, sink);
  return {
    rejected: result.rejected.map((r) => `${r.index}/${r.reason}`),
    rows: sink.rows.map((r) => `${r.offset}:${JSON.stringify(r.values)}`),
    noRows: sink.noRows,
    states: new Map([...store.blobs].map(([k, v]) => [k, v.blob.toString('hex')])),
  };
}

test('on the record clock two writers of a batch judge an event at the lateness boundary alike, whatever their wall clocks', async () => {
  // Entity 9's event reached Kafka 0.5 s inside its view's lateness (1 h). The writer that applied
  // it live and the one that gets it again 2 s later (a rebalance overlap, a redelivery after a
  // crash) must agree: on the wall clock they did not, so the event was both in the state and in
  // the DLQ, and a training row could miss it.
  const base = events()[0]!;
  const ts = T0 + 24 * HOUR;
  const at = (index: number, entity: number, t: number, arrival: number): IncomingEvent => ({
    ...base,
    index,
    offset: 500 + index,
    entity: String(entity),
    ts: t,
    arrival,
    record: { ...base.record, user_id: entity, event_timestamp: t },
  });
  const list = [0, 1, 2, 3, 4, 5].map((i) => at(i, 1, ts + (i + 1) * 600_000, ts + (i + 1) * 600_000 + 1000));
  const arrival = ts + HOUR - 500;
  list.push(at(6, 9, ts, arrival));
  const live = arrival + 200;
  const later = arrival + 2000;
  const record = [
    await writerOutcome(list, { mode: 'record', now: live }),
    await writerOutcome(list, { mode: 'record', now: later }),
  ];
  assert.deepEqual(record[1], record[0]);
  assert.deepEqual(record[0]!.rejected, [], 'within the lateness of its arrival: applied by both');
  assert.equal(record[0]!.rows.length, 7);
  // The same two writers on the wall clock: the disagreement the record clock removes.
  const wall = [
    await writerOutcome(list, { mode: 'wall', now: live }),
    await writerOutcome(list, { mode: 'wall', now: later }),
  ];
  assert.deepEqual(wall[0]!.rejected, []);
  assert.deepEqual(wall[1]!.rejected, ['6/late']);
  assert.ok(wall[0]!.states.has('9') && !wall[1]!.states.has('9'));
});

test('on the record clock a backlog is not late for having waited; an event that reached Kafka late is', async () => {
  // Each event reached Kafka 1 s after its time; the ingestor gets to them 10 h later (an outage).
  const list = events();
  const now = list[list.length - 1]!.arrival + 10 * HOUR;
  const onRecord = await applyBatch([{ plan, store: memoryStore() }], list, { mode: 'record', now });
  assert.deepEqual(onRecord.rejected, []);
  assert.equal(onRecord.applied.get(plan.view.name), 40);
  const onWall = await applyBatch([{ plan, store: memoryStore() }], list, { mode: 'wall', now });
  assert.equal(onWall.rejected.length, 40, 'the wall clock dead-letters the whole backlog as late');

  // Entity 9's only event reached Kafka 2 h after its time: late for the view (1 h), though no
  // event of the entity is newer and the ingestor read it at once.
  const first = list[0]!;
  const tardy: IncomingEvent = { ...first, entity: '9', arrival: first.ts + 2 * HOUR };
  const result = await applyBatch([{ plan, store: memoryStore() }], [tardy], {
    mode: 'record',
    now: tardy.arrival + 100,
  });
  assert.equal(result.rejected.length, 1);
  assert.equal(result.rejected[0]!.reason, 'late');
  assert.match(result.rejected[0]!.message, /older than the allowed lateness .* \(it reached Kafka at \S+\)/);
});

test('on the record clock an event is future when over 5 minutes ahead of its arrival, or of the wall clock when that is earlier', async () => {
  const first = events()[0]!;
  const now = first.ts + 24 * HOUR; // read a day later, in a catch-up
  const ahead = (i: number, ts: number, arrival: number): IncomingEvent => ({
    ...first,
    index: i,
    offset: first.offset + i,
    ts,
    arrival,
  });
  const result = await applyBatch(
    [{ plan, store: memoryStore() }],
    [
      ahead(0, first.ts, first.ts + 1000),
      // 10 minutes ahead of when it reached Kafka, long past on the wall clock.
      ahead(1, first.ts + 10 * 60_000, first.ts),
      // A producer stamping records with their own times, a day ahead of the ingestor.
      ahead(2, now + 24 * HOUR, now + 24 * HOUR),
      // 4 minutes ahead of its arrival: taken.
      ahead(3, first.ts + 4 * 60_000, first.ts),
    ],
    { mode: 'record', now },
  );
  assert.deepEqual(
    result.rejected.map((r) => `${r.index}/${r.reason}`),
    ['1/future', '2/future'],
  );
  assert.match(result.rejected[0]!.message, /ahead of its record's Kafka timestamp/);
  assert.match(result.rejected[1]!.message, /ahead of the ingestor clock/);
  assert.equal(result.applied.get(plan.view.name), 2);
});

test('marks handed to the sink before a batch with nothing to apply are still flushed', async () => {
  // The ingestor marks its undecodable records before applyBatch: a batch of nothing else leaves
  // no entity to apply, and so no flush before a compare-and-set.
  const sink = collectRows();
  const flushed: string[] = [];
  sink.noRow(plan.view.name, 0, 7, 'undecodable');
  await applyBatch([{ plan, store: memoryStore() }], [], clock, {
    ...sink,
    async flush() {
      flushed.push(...sink.noRows.splice(0));
    },
  });
  assert.deepEqual(flushed, [`${plan.view.name}/0/7/undecodable`]);
});

/** A row sink keeping copies of the rows and the no-row marks it is handed. */
function collectRows(training = true): RowSink & { rows: TrainingRow[]; noRows: string[] } {
  const rows: TrainingRow[] = [];
  const noRows: string[] = [];
  return {
    training,
    rows,
    noRows,
    add: (r) => rows.push({ ...r, values: [...r.values] }),
    // A late event's mark carries its time (the flusher files late marks by day).
    noRow: (view, partition, offset, reason, ts) =>
      noRows.push(`${view}/${partition}/${offset}/${reason}${ts === undefined ? '' : `@${ts}`}`),
    async flush() {},
  };
}

/** Keeps the saved state objects themselves and their readers, as the ingestor's state cache does. */
function objectStore(): StateStore & { readersReused: number } {
  const states = new Map<string, LoadedState>();
  return {
    readersReused: 0,
    async loadMany(entities) {
      const out = new Map<string, LoadedState>();
      for (const e of entities) {
        const kept = states.get(e);
        states.delete(e); // owned by the batch until saved, like StateCache.take
        if (kept?.reader) this.readersReused++;
        out.set(e, kept ?? { version: 0, state: emptyState(plan) });
      }
      return out;
    },
    async saveMany(requests: readonly SaveRequest[]) {
      const versions = new Map<string, number>();
      for (const r of requests) {
        states.set(r.entity, {
          version: r.version + 1,
          state: r.state,
          ...(r.reader ? { reader: r.reader } : {}),
        });
        versions.set(r.entity, r.version + 1);
      }
      return { conflicts: [], versions };
    },
  };
}

/** 30 batches of 1–40 events over 4 entities, one in ten out of order (within the allowed lateness). */
function randomBatches(seed: number): IncomingEvent[][] {
  const rng = seededRng(seed);
  const batches: IncomingEvent[][] = [];
  let offset = 0;
  let t = T0;
  for (let batch = 0; batch < 30; batch++) {
    const list: IncomingEvent[] = [];
    for (let i = 0; i < 1 + rng.int(40); i++) {
      t += rng.int(20) * 60_000;
      // Out of order rebuilds (or steps back) the before-event reader's mirror.
      const ts = rng.next() < 0.1 ? t - rng.int(50) * 60_000 : t;
      const entity = String(rng.int(4));
      list.push({
        index: i,
        partition: 0,
        offset: offset++,
        entity,
        ts,
        arrival: t + 1000,
        record: {
          user_id: Number(entity),
          event_timestamp: ts,
          amount: rng.int(10_000) / 100,
          merchant_id: `m${rng.int(6)}`,
        },
      });
    }
    batches.push(list);
  }
  return batches;
}

test('a before-event reader kept with a cached state across batches gives the same rows and updates as a fresh one', async () => {
  const fresh: ViewRuntime[] = [{ plan, store: memoryStore() }];
  const store = objectStore();
  const kept: ViewRuntime[] = [{ plan, store }];
  for (const [batch, list] of randomBatches(7).entries()) {
    const rowsA = collectRows();
    const rowsB = collectRows();
    const a = await applyBatch(fresh, list, clock, rowsA);
    const b = await applyBatch(kept, list, clock, rowsB);
    assert.ok(rowsA.rows.length > 0);
    assert.deepEqual(rowsB.rows, rowsA.rows, `rows of batch ${batch}`);
    assert.deepEqual(b.updates, a.updates, `updates of batch ${batch}`);
  }
  assert.ok(store.readersReused > 20, `readers kept with their states: ${store.readersReused}`);
});

test('without a row sink (TESSERA_TRAINING_ROWS=false) the states and updates are those with one', async () => {
  const withRows = memoryStore();
  const withoutRows = memoryStore();
  const kept = objectStore();
  let rows = 0;
  for (const [batch, list] of randomBatches(11).entries()) {
    const sink = collectRows();
    const a = await applyBatch([{ plan, store: withRows }], list, clock, sink);
    const b = await applyBatch([{ plan, store: withoutRows }], list, clock, null);
    // Readers kept across batches and never read per event: only the update's read moves them.
    const c = await applyBatch([{ plan, store: kept }], list, clock);
    rows += sink.rows.length;
    assert.deepEqual(b.updates, a.updates, `updates of batch ${batch}`);
    assert.deepEqual(c.updates, a.updates, `updates of batch ${batch}, readers kept`);
    assert.deepEqual(b.applied, a.applied);
  }
  assert.ok(rows > 200, `the sink saw the rows: ${rows}`);
  assert.deepEqual(
    new Map([...withoutRows.blobs].map(([k, v]) => [k, v.blob.toString('hex')])),
    new Map([...withRows.blobs].map(([k, v]) => [k, v.blob.toString('hex')])),
  );
});

test('rows and updates equal a naive loop over the events applied before them, read directly (small states) and through readers', async () => {
  const stores = { decoded: memoryStore(), kept: objectStore() };
  for (const store of Object.values(stores)) {
    const applied: FraudEvent[] = [];
    let direct = 0;
    let viaReader = 0;
    for (const list of randomBatches(23)) {
      const sink = collectRows();
      const result = await applyBatch([{ plan, store }], list, clock, sink);
      const rejected = new Set(result.rejected.map((r) => r.index));
      const rowAt = new Map(sink.rows.map((r) => [r.offset, r]));
      assert.equal(sink.rows.length, list.length - rejected.size, 'a row for every applied event');
      assert.deepEqual(
        sink.noRows.sort(),
        list
          .filter((e) => rejected.has(e.index))
          .map((e) => `${plan.view.name}/${e.partition}/${e.offset}/late@${e.ts}`)
          .sort(),
        'a no-row mark for every late event, and only for them',
      );
      for (const e of list) {
        if (rejected.has(e.index)) continue;
        const user = Number(e.entity);
        const before = applied.filter((a) => a.user_id === user);
        const row = rowAt.get(e.offset);
        if (row) {
          if (before.length + list.length <= DIRECT_READ_EVENTS) direct++;
          else viaReader++;
          plan.features.forEach((f, i) => {
            const naive = naiveFraudValue(before, user, f.def, e.ts);
            assert.ok(
              sameValue(f.def.aggregation, row.values[i], naive),
              `${f.def.name} before offset ${e.offset}: ${row.values[i]} vs naive ${naive}`,
            );
          });
        }
        applied.push({
          ...(e.record as Omit<FraudEvent, 'partition' | 'offset'>),
          partition: 0,
          offset: e.offset,
        });
      }
      for (const u of result.updates) {
        const user = Number(u.entity);
        plan.features.forEach((f, i) => {
          const naive = naiveFraudValue(applied, user, f.def, u.asOf);
          assert.ok(sameValue(f.def.aggregation, u.values[i], naive), `update of ${u.entity}: ${f.def.name}`);
        });
      }
    }
    assert.ok(
      direct > 20 && viaReader > 100,
      `both read paths ran: ${direct} direct, ${viaReader} via readers`,
    );
  }
});
