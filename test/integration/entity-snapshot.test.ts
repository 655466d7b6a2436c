// The flusher's entity snapshot against real Redis: every state that decodes is kept. A snapshot is
// read as of its flush's start; a flush retried through an outage (or redone after a crash) more
// than allowed_lateness later finds states whose newest events are past that, which cannot be
// read so early. Those were left out as "corrupt", so a restore from the snapshot lost them.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { takeSnapshot } from '../../services/flusher/entity-snapshot.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { applyEvent, decodeState, emptyState, encodeState, planView } from '../../shared/engine/index.ts';
import { readParquet } from '../../shared/offline/parquet.ts';
import { stateKey } from '../../shared/state-store/redis-state-store.ts';
import { cleanupRun, newTestRun } from '../support/ingestor-process.ts';

const MIN = 60_000;

describe('entity snapshot', () => {
  const run = newTestRun();
  after(async () => cleanupRun(run));

  it('keeps states newer than the flush start plus lateness, read as early as they answer', async () => {
    const view = loadDefinitionsFile(run.config.definitions).views[0]!;
    const plan = planView(view);
    const startedAt = Date.UTC(2026, 10, 27, 8, 0);
    // User 1's newest event 10 minutes after the flush started, user 2's 90 (lateness is 1h).
    const newest = new Map([
      ['1', startedAt + 10 * MIN],
      ['2', startedAt + 90 * MIN],
    ]);
    for (const [user, ts] of newest) {
      const state = emptyState(plan);
      applyEvent(plan, state, { ts: ts - 30 * MIN, partition: 0, offset: 1, values: [10, 'm1'] });
      applyEvent(plan, state, { ts, partition: 0, offset: 2, values: [30, 'm2'] });
      await run.redis.hset(
        stateKey(run.id, view.name, user),
        'v',
        '1',
        's',
        Buffer.from(encodeState(plan, state)),
      );
    }
    await run.redis.hset(stateKey(run.id, view.name, '3'), 'v', '1', 's', Buffer.from('not a state'));

    const snapshot = await takeSnapshot(run.redis, view, run.id, startedAt, {});
    assert.deepEqual(snapshot.corrupt, ['3'], 'only the undecodable state is left out');
    assert.equal(snapshot.entities, 2);
    const table = readParquet(snapshot.body);
    const column = (name: string): unknown[] =>
      Array.from(table.getChild(name)!.toArray() as ArrayLike<unknown>);
    assert.deepEqual(column('user_id').map(Number), [1, 2]);
    const asOf = column('as_of').map(Number);
    assert.deepEqual(asOf, [startedAt, startedAt + 30 * MIN], "user 2 at its state's floor");
    // As of those times user 1 has one event (at -20 min; the other is at +10), and user 2's window
    // ends at +30 min, before both of its events (+60 and +90 min).
    assert.deepEqual(column('transaction_count_24h').map(Number), [1, 0]);
    const states = column('state') as Uint8Array[];
    assert.equal(decodeState(plan, states[1]!).clock, newest.get('2'), "user 2's state bytes are whole");
  });
});
