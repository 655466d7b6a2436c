// What the ingestor's /ready says of its batches (services/ingestor/batch-trouble.ts): each topic's
// trouble its own, none left behind after a rebalance, none lost while a partition is still held.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createBatchTrouble } from '../../../services/ingestor/batch-trouble.ts';

describe('batch trouble on /ready', () => {
  it("another topic's batch going through does not clear a topic's trouble", () => {
    const t = createBatchTrouble();
    t.retrying('payments', 'payments: redis down');
    t.held('payments', [0], 'payments: registry down');
    t.pushFailing('payments', 'payments: push failing');
    t.through('transactions');
    assert.deepEqual(t.decoded('transactions', [0, 1, 2]), null);
    t.pushed('transactions');
    assert.deepEqual(t.problems(), [
      'payments: redis down',
      'payments: registry down',
      'payments: push failing',
    ]);
  });

  it('a held topic stays named while one of its partitions is still held, and counts its attempts', () => {
    const t = createBatchTrouble();
    assert.equal(t.held('payments', [0, 1], 'first'), 1);
    assert.equal(t.held('payments', [0, 1], 'second'), 2);
    assert.deepEqual(t.problems(), ['second']);
    // Partition 1's next batch decodes (its schema was cached): partition 0 is still held.
    assert.equal(t.decoded('payments', [1]), null);
    assert.deepEqual(t.problems(), ['second']);
    assert.equal(t.decoded('payments', [0]), 3);
    assert.deepEqual(t.problems(), []);
    // A new hold counts from 1 again.
    assert.equal(t.held('payments', [2], 'again'), 1);
  });

  it('a rebalance that takes a held partition away drops it; one that leaves it keeps it', () => {
    const t = createBatchTrouble();
    t.held('payments', [0, 1], 'payments held');
    t.assigned({ payments: [1, 2], transactions: [0] });
    assert.deepEqual(t.problems(), ['payments held']);
    t.assigned({ transactions: [0, 1] });
    assert.deepEqual(t.problems(), []);
    // Gone for good: partition 1 coming back and decoding does not log a recovery of a stale hold.
    assert.equal(t.decoded('payments', [1]), null);
  });

  it('a rebalance that leaves no partition of a topic drops its retried batch, never a push', () => {
    // A batch retried in place that was then failed (a Kafka error) left its trouble set: with the
    // topic's partitions gone to another ingestor, nothing here would ever clear it.
    const t = createBatchTrouble();
    t.retrying('payments', 'payments: redis down');
    t.retrying('transactions', 'transactions: redis down');
    t.pushFailing('payments', 'payments: push failing');
    t.assigned({ transactions: [0], payments: [] });
    assert.deepEqual(t.problems(), ['transactions: redis down', 'payments: push failing']);
    t.pushed('payments');
    t.through('transactions');
    assert.deepEqual(t.problems(), []);
  });
});
