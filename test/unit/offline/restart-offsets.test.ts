// Where the ingestor group restarts after a restore: the snapshot's offsets, checked against the
// source topic as it is now (pure; restore.ts commits them, flusher-layout.test.ts on the broker).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { restartOffsets } from '../../../services/flusher/restart-offsets.ts';

const topic = [
  { partition: 1, low: '0', high: '90' },
  { partition: 0, low: '0', high: '120' },
  { partition: 2, low: '0', high: '40' },
];

test("restarts each partition from the snapshot's offset, in partition order", () => {
  assert.deepEqual(restartOffsets({ '0': '100', '1': '80', '2': '40' }, topic, false), [
    { partition: 0, offset: '100' },
    { partition: 1, offset: '80' },
    { partition: 2, offset: '40' },
  ]);
});

test('a partition without a commit, or added since the snapshot, restarts from its earliest record', () => {
  const now = [...topic, { partition: 3, low: '7', high: '10' }];
  const starts = restartOffsets({ '0': '-1', '1': '80', '2': '40' }, now, false);
  assert.deepEqual(
    starts.map(({ partition, offset }) => [partition, offset]),
    [
      [0, '0'],
      [1, '80'],
      [2, '40'],
      [3, '7'],
    ],
  );
  assert.match(starts[3]!.note!, /not in the snapshot/);
});

test('refuses a snapshot older than the records left, unless the gap is accepted', () => {
  const trimmed = topic.map((p) => (p.partition === 1 ? { ...p, low: '85' } : p));
  assert.throws(
    () => restartOffsets({ '0': '100', '1': '80', '2': '40' }, trimmed, false),
    /partition 1: the snapshot's offset 80, the earliest record left 85.*--allow-gap/,
  );
  const starts = restartOffsets({ '0': '100', '1': '80', '2': '40' }, trimmed, true);
  assert.deepEqual(starts[1], {
    partition: 1,
    offset: '85',
    note: 'records 80..84 were deleted by retention and are skipped',
  });
  // At the earliest record exactly: nothing is missing.
  assert.deepEqual(restartOffsets({ '0': '100', '1': '85', '2': '40' }, trimmed, false)[1], {
    partition: 1,
    offset: '85',
  });
});
