// The ingestor's partitioner must put every key where kafkajs' DefaultPartitioner (the Java
// client's murmur2 partitioning) puts it: consumers of features.updates rely on one entity's
// vectors staying in one partition, before and after the change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { keyHashPartitioner } from '../../shared/kafka-partitioner.ts';
import { seededRng } from '../../shared/synth/random.ts';

const metadata = (n: number, leaderless: number[] = []): PartitionMetadata[] =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionId,
    leader: leaderless.includes(partitionId) ? -1 : 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
  }));

const alphabet = 'abcXYZ019_-/:{} éß€😀\u0000';

test('keyed messages go to the partition kafkajs DefaultPartitioner picks, for strings and Buffers of every length', () => {
  const rng = seededRng(5);
  const ours = keyHashPartitioner();
  const theirs = Partitioners.DefaultPartitioner();
  let checked = 0;
  for (const partitions of [1, 6, 7, 64]) {
    const partitionMetadata = metadata(partitions);
    for (let i = 0; i < 3000; i++) {
      const length = i < 300 ? i : rng.int(40);
      let key = '';
      for (let c = 0; c < length; c++)
        key += i % 3 === 0 ? String(rng.int(10)) : alphabet[rng.int(alphabet.length)];
      for (const k of [key, Buffer.from(key)]) {
        const message = { key: k, value: 'v' };
        assert.equal(
          ours({ topic: 't', partitionMetadata, message }),
          theirs({ topic: 't', partitionMetadata, message }),
          `key ${JSON.stringify(key)} over ${partitions} partitions`,
        );
        checked++;
      }
    }
  }
  // Keys whose UTF-8 bytes do not fit the partitioner's scratch buffer (768 bytes), the first one
  // although its 400 characters would.
  for (const long of ['x€'.repeat(200), 'x€'.repeat(500), 'a'.repeat(5000)])
    for (const partitionMetadata of [metadata(6), metadata(7)])
      assert.equal(
        keyHashPartitioner()({ topic: 't', partitionMetadata, message: { key: long, value: null } }),
        Partitioners.DefaultPartitioner()({
          topic: 't',
          partitionMetadata,
          message: { key: long, value: null },
        }),
        `a key of ${long.length} characters`,
      );
  assert.equal(checked, 24_000);
});

test('a message naming its partition keeps it; unkeyed ones go round robin over partitions with a leader', () => {
  const partition = keyHashPartitioner();
  const partitionMetadata = metadata(6, [2, 4]);
  assert.equal(
    partition({ topic: 't', partitionMetadata, message: { key: 'k', value: null, partition: 4 } }),
    4,
  );
  const seen = new Map<number, number>();
  for (let i = 0; i < 400; i++) {
    const p = partition({ topic: 't', partitionMetadata, message: { value: 'v' } });
    seen.set(p, (seen.get(p) ?? 0) + 1);
  }
  assert.deepEqual([...seen.keys()].sort(), [0, 1, 3, 5]);
  for (const n of seen.values()) assert.equal(n, 100);
});
