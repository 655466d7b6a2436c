// The ingestor's offset commits, with a stand-in consumer (a pure unit: the real commits are in the
// ingestor's integration tests). A failed commit must not lose its offsets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CommitOffset, createCommitter } from '../../../services/ingestor/committer.ts';

function consumer() {
  const commits: CommitOffset[][] = [];
  let failures = 0;
  return {
    commits,
    failNext(n: number) {
      failures = n;
    },
    async commitOffsets(offsets: CommitOffset[]) {
      if (failures > 0) {
        failures--;
        throw new Error('coordinator not available');
      }
      commits.push(offsets.map((o) => ({ ...o })));
    },
  };
}
const quiet = { warn() {} };
const p0 = (offset: string) => ({ topic: 't', partition: 0, offset });

test('a failed commit of a due offset stays pending and the next flush commits it', async () => {
  const c = consumer();
  const committer = createCommitter(c, 60_000, quiet);
  c.failNext(1);
  await assert.rejects(committer.done([p0('41')]), /coordinator/);
  await committer.flush();
  assert.deepEqual(c.commits, [[p0('42')]]);
  committer.stop();
});

test('a failed flush keeps its offsets, unless a later offset of the partition arrived meanwhile', async () => {
  const c = consumer();
  const committer = createCommitter(c, 60_000, quiet);
  await committer.done([p0('9'), { topic: 't', partition: 1, offset: '4' }]); // due: committed
  await committer.done([p0('19'), { topic: 't', partition: 1, offset: '7' }]); // within the interval
  c.failNext(1);
  const failing = committer.flush();
  await committer.done([p0('29')]); // pending again, newer than the failing flush's 20
  await assert.rejects(failing, /coordinator/);
  await committer.flush();
  assert.deepEqual(c.commits.at(-1), [p0('30'), { topic: 't', partition: 1, offset: '8' }]);
  committer.stop();
});

test('offsets of a commit that fails after a rebalance are not brought back', async () => {
  const c = consumer();
  const committer = createCommitter(c, 0, quiet);
  c.failNext(1);
  const failing = committer.done([p0('5')]);
  committer.forget(); // the group rebalanced while the commit was in flight
  await assert.rejects(failing, /coordinator/);
  await committer.flush();
  assert.deepEqual(c.commits, []);
  committer.stop();
});

test('an older commit that fails after a newer one was sent is not retried: the offset never moves back', async () => {
  const committed: string[] = [];
  let failSlow: ((e: Error) => void) | undefined;
  const slow = {
    async commitOffsets(offsets: CommitOffset[]) {
      if (offsets[0]!.offset === '101') {
        // The timer's commit of 101 hangs, then fails after 201 went through.
        await new Promise<void>((_, reject) => {
          failSlow = reject;
        });
      }
      committed.push(offsets[0]!.offset);
    },
  };
  const committer = createCommitter(slow, 60_000, quiet);
  await committer.done([p0('0')]); // due at once: 1
  await committer.done([p0('100')]); // within the interval: pending
  const hanging = committer.flush(); // 101 in flight
  await committer.done([p0('200')]); // pending
  await committer.flush(); // 201
  failSlow?.(new Error('request timed out'));
  await assert.rejects(hanging, /timed out/);
  await committer.flush(); // once sent 101 again, after 201
  assert.deepEqual(committed, ['1', '201']);
  committer.stop();
});

test('with an interval of 0, a failed commit of an idle partition is retried by the timer', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const c = consumer();
  const committer = createCommitter(c, 0, quiet);
  c.failNext(1);
  await assert.rejects(committer.done([p0('41')]), /coordinator/);
  assert.deepEqual(c.commits, []);
  t.mock.timers.tick(1000); // no batch of partition 0 comes again
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(c.commits, [[p0('42')]]);
  committer.stop();
});
