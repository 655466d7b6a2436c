// shared/kafkajs-fast-paths.ts against kafkajs' own functions: the same CRC-32C and the same
// per-partition grouping, installed where kafkajs looks for them, and imported first by every
// service that produces. (The broker checks every record batch's CRC in the integration tests.)
import '../../shared/kafkajs-fast-paths.ts'; // first, as the services do: before kafkajs loads
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32c, fastPaths, groupMessagesPerPartition } from '../../shared/kafkajs-fast-paths.ts';
import { seededRng } from '../../shared/synth/random.ts';

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('kafkajs/package.json'));

/** A kafkajs source file compiled afresh (the module cache may hold Tessera's replacement). */
function kafkajsOriginal<T>(file: string): T {
  const path = join(root, file);
  const m = new Module(path) as Module & { _compile(code: string, filename: string): void };
  m.filename = path;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(
    dirname(path),
  );
  m._compile(readFileSync(path, 'utf8'), path);
  return m.exports as T;
}

describe('kafkajs fast paths', () => {
  it('are active for the kafkajs version installed (an upgrade fails here: check its internals again)', () => {
    assert.equal(fastPaths.active, true, fastPaths.reason);
  });

  it('CRC-32C equals kafkajs own, on any length and alignment', () => {
    const original = kafkajsOriginal<(b: Buffer) => number>('src/protocol/recordBatch/crc32C/crc32C.js');
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283); // the standard check value
    for (let n = 0; n < 600; n++) {
      const bytes = randomBytes(n + 8).subarray(n % 8, n % 8 === 0 ? undefined : n + (n % 8));
      assert.equal(crc32c(bytes), original(bytes), `length ${bytes.length}`);
    }
    const big = randomBytes(200_000);
    assert.equal(crc32c(big), original(big));
  });

  it('groups messages per partition as kafkajs does, in send order', () => {
    type Group = typeof groupMessagesPerPartition<{ key: string }>;
    const original = kafkajsOriginal<Group>('src/producer/groupMessagesPerPartition.js');
    const rng = seededRng(7);
    for (let run = 0; run < 200; run++) {
      const partitions = 1 + rng.int(8);
      const partitionMetadata = Array.from({ length: run % 10 === 0 ? 0 : partitions }, (_, i) => ({
        partitionId: i,
      }));
      const messages = Array.from({ length: rng.int(300) }, (_, i) => ({ key: `k${i}` }));
      const picks = messages.map(() => rng.int(partitions));
      const partitioner = ({ message }: { message: { key: string } }) => picks[Number(message.key.slice(1))]!;
      const input = { topic: 't', partitionMetadata, messages, partitioner };
      assert.deepEqual(groupMessagesPerPartition(input), original(input));
    }
  });

  it("are what kafkajs' record batches and producer load", () => {
    const crcModule = require('kafkajs/src/protocol/recordBatch/crc32C/index.js');
    const groupingModule = require('kafkajs/src/producer/groupMessagesPerPartition.js');
    assert.equal(crcModule, crc32c);
    assert.equal(groupingModule, groupMessagesPerPartition);
  });

  it('are installed by every producing service before anything loads kafkajs', () => {
    // A static import graph has its CommonJS modules (kafkajs) loaded while it is linked, before
    // any module body runs: main.ts imports only the fast paths statically, then the process.
    for (const service of ['ingestor', 'server', 'producer']) {
      const text = readFileSync(`services/${service}/main.ts`, 'utf8');
      const imports = [...text.matchAll(/^import [^;]*;/gm)].map((m) => m[0]);
      assert.deepEqual(
        imports,
        ["import '../../shared/kafkajs-fast-paths.ts';"],
        `services/${service}/main.ts`,
      );
      assert.match(
        text,
        /^await import\('\.\/run\.ts'\);$/m,
        `services/${service}/main.ts loads run.ts after`,
      );
    }
  });
});
