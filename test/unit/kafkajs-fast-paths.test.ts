// shared/kafkajs-fast-paths.ts against kafkajs' own functions: the same CRC-32C, the same
// per-partition grouping, the same produce requests and request framing to the byte, installed where
// kafkajs looks for them, and imported first by every service that produces. (The broker checks every record batch's CRC in the integration tests.)
import '../../shared/kafkajs-fast-paths.ts'; // first, as the services do: before kafkajs loads
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it, mock } from 'node:test';
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

  type Message = {
    key?: unknown;
    value?: unknown;
    headers?: unknown;
    timestamp?: unknown;
  };
  type Produce = (args: Record<string, unknown>) => {
    apiVersion: number;
    encode(): Promise<{ buffer: Buffer }>;
  };

  /** Random messages of every shape the lean encoder writes itself (keys, values, headers). */
  function randomTopicData(rng: ReturnType<typeof seededRng>): Record<string, unknown>[] {
    const text = (n: number) =>
      Array.from({ length: n }, () => ['a', 'é', '€', '😀', '"', '\n'][rng.int(6)]).join('');
    const bytesOrText = (n: number): unknown => {
      const pick = rng.int(5);
      if (pick === 0) return null;
      if (pick === 1) return undefined;
      if (pick === 2) return randomBytes(n);
      return n > 1000 ? `${text(9)}${'x€'.repeat(n / 4)}` : text(n);
    };
    const header = (): unknown => (rng.int(2) === 0 ? text(rng.int(40)) : randomBytes(rng.int(40)));
    return Array.from({ length: 1 + rng.int(3) }, (_, t) => ({
      topic: `topic-${t}-${text(rng.int(4))}`,
      partitions: Array.from({ length: 1 + rng.int(4) }, (_, p) => ({
        partition: p * 3,
        ...(rng.int(3) === 0 ? {} : { firstSequence: rng.int(1_000_000) }),
        // Up to 300 records (varint offsets past one byte); values up to 20,000 bytes (past two).
        messages: Array.from({ length: rng.int(4) === 0 ? 0 : rng.int(300) }, (): Message => {
          const m: Message = {
            key: bytesOrText(rng.int(30)),
            value: bytesOrText(rng.int(10) === 0 ? 20_000 : rng.int(300)),
          };
          const h = rng.int(4);
          if (h === 1) m.headers = { reason: header(), empty: '' };
          if (h === 2) m.headers = { multi: [header(), header()], one: header() };
          return m;
        }),
      })),
    }));
  }

  it('encode produce requests byte for byte as kafkajs does, and leave the rest to it', async () => {
    const original = kafkajsOriginal<Produce>('src/protocol/requests/produce/v3/request.js');
    const installed = require('kafkajs/src/protocol/requests/produce/v3/request.js') as Produce;
    const v7 = require('kafkajs/src/protocol/requests/produce/v7/request.js') as Produce;
    const Long = require('kafkajs/src/utils/long.js') as { fromInt(n: number): unknown };
    assert.notEqual(installed, original);
    mock.method(Date, 'now', () => 1_764_215_000_123);
    try {
      const rng = seededRng(11);
      const cases: Record<string, unknown>[] = [];
      for (let run = 0; run < 40; run++) {
        cases.push({
          acks: [-1, 0, 1][run % 3],
          timeout: 30_000 + run,
          ...(run % 4 === 0 ? {} : { transactionalId: run % 4 === 1 ? null : `tx-${run}` }),
          ...(run % 5 === 0 ? {} : { producerId: [String(1000 + run), Long.fromInt(run), 77][run % 3] }),
          ...(run % 2 === 0 ? {} : { producerEpoch: run }),
          topicData: randomTopicData(rng),
        });
      }
      // What kafkajs' own code encodes: compression, timestamps, other types of keys and headers.
      const one = (m: Message) => [
        { topic: 't', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v' }, m] }] },
      ];
      cases.push({ acks: -1, timeout: 1, compression: 1, topicData: randomTopicData(rng) });
      cases.push({
        acks: -1,
        timeout: 1,
        topicData: one({ key: 'k', value: 'v', timestamp: '1700000000000' }),
      });
      cases.push({
        acks: -1,
        timeout: 1,
        topicData: one({ key: 'k', value: 'v', timestamp: 1_700_000_000_500 }),
      });
      cases.push({ acks: -1, timeout: 1, topicData: one({ key: new Uint8Array([1, 2]), value: 'v' }) });
      for (const args of cases) {
        const mine = await installed(args).encode();
        const theirs = await original(args).encode();
        assert.ok(mine.buffer.equals(theirs.buffer), `request ${JSON.stringify(args).slice(0, 200)}`);
        assert.equal((await v7(args).encode()).buffer.equals(theirs.buffer), true);
      }
      assert.equal(v7(cases[0]!).apiVersion, 7);
      // What kafkajs refuses, it still refuses.
      for (const bad of [
        { key: 7, value: 'v' },
        { key: 'k', value: 'v', headers: { h: null } },
      ]) {
        const args = { acks: 1, timeout: 1, topicData: one(bad) };
        await assert.rejects(original(args).encode());
        await assert.rejects(installed(args).encode());
      }
    } finally {
      mock.restoreAll();
    }
  });

  it('frame requests byte for byte as kafkajs does', async () => {
    type Framing = (r: unknown) => Promise<{ buffer: Buffer }>;
    const original = kafkajsOriginal<Framing>('src/protocol/request.js');
    const installed = require('kafkajs/src/protocol/request.js') as Framing;
    const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => {
      writeBuffer(b: Buffer): unknown;
    };
    assert.notEqual(installed, original);
    for (const [clientId, size] of [
      ['tessera-ingestor', 0],
      [null, 17],
      ['', 511],
      ['client-é€', 512],
      ['c', 300_000],
    ] as const) {
      const payload = randomBytes(size);
      const request = {
        correlationId: size + 1,
        clientId,
        request: { apiKey: 0, apiVersion: 7, encode: async () => new Encoder().writeBuffer(payload) },
      };
      const mine = (await installed(request)).buffer;
      assert.ok(mine.equals((await original(request)).buffer), `client ${clientId}, ${size} bytes`);
      assert.equal(mine.length, 4 + mine.readInt32BE(0));
    }
  });

  it("decode fetched records as kafkajs does, its BigInt arithmetic's results included", () => {
    type Decode = (decoder: unknown, context: Record<string, unknown>) => unknown;
    const original = kafkajsOriginal<Decode>('src/protocol/recordBatch/record/v0/decoder.js');
    const installed = require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as Decode;
    const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (r: unknown) => {
      buffer: Buffer;
    };
    const Decoder = require('kafkajs/src/protocol/decoder.js') as new (
      b: Buffer,
    ) => { readVarIntBytes(): Buffer };
    assert.notEqual(installed, original);
    const rng = seededRng(5);
    // Deltas within and past 7 varlong bytes, bases whose sums leave the safe integers.
    // (As BigInts: past 2^53 a delta with a negative base can sum to a safe integer.)
    const deltas = [
      0,
      1,
      -1,
      63,
      -64,
      64,
      8191,
      -8192,
      2 ** 31,
      -(2 ** 40),
      2 ** 47,
      2 ** 48,
      2 ** 50,
      -(2 ** 52),
    ]
      .map(BigInt)
      .concat([2n ** 53n + 1n, -(2n ** 53n) - 3n, 2n ** 60n + 1n]);
    const bases = [
      '0',
      '1764215000123',
      '-1',
      '9007199254740991',
      '9007199254740000',
      '-9007199254740991',
      '9223372036854775807',
    ];
    let fast = 0;
    for (let run = 0; run < 3000; run++) {
      const timestampDelta = deltas[rng.int(deltas.length)]! + BigInt(rng.int(100));
      const offsetDelta = rng.int(10) === 0 ? rng.int(2 ** 31) : rng.int(1000);
      const headers = rng.int(5) === 0 ? { reason: 'x', multi: ['a', 'b'] } : {};
      const body = new Decoder(
        Record({
          offsetDelta,
          timestampDelta,
          key: rng.int(3) === 0 ? null : `k${run}`,
          value: randomBytes(rng.int(50)),
          headers,
        }).buffer,
      ).readVarIntBytes();
      const context = {
        firstOffset: bases[rng.int(bases.length)],
        firstTimestamp: bases[rng.int(bases.length)],
        maxTimestamp: '1764215999999',
        magicByte: 2,
        isControlBatch: run % 7 === 0,
        timestampType: run % 5 === 0 ? 1 : 0,
      };
      const theirs = original(new Decoder(body), context);
      const decoder = new Decoder(body) as unknown as { offset: number };
      assert.deepEqual(installed(decoder, context), theirs, `record ${run}`);
      assert.equal(decoder.offset, body.length, 'the decoder ends where kafkajs leaves it');
      if (
        Object.keys(headers).length === 0 &&
        timestampDelta < 2n ** 47n &&
        timestampDelta > -(2n ** 47n) &&
        context.firstOffset === '0'
      )
        fast++;
    }
    assert.ok(fast > 100, `the lean path decoded ${fast} records`);
  });

  it("are what kafkajs' record batches and producer load", () => {
    const crcModule = require('kafkajs/src/protocol/recordBatch/crc32C/index.js');
    const groupingModule = require('kafkajs/src/producer/groupMessagesPerPartition.js');
    assert.equal(crcModule, crc32c);
    assert.equal(groupingModule, groupMessagesPerPartition);
  });

  it('are left out, with kafkajs as shipped, when TESSERA_KAFKAJS_FAST_PATHS=false, and refuse other values', () => {
    const probe = `
      const { fastPaths } = await import('./shared/kafkajs-fast-paths.ts');
      const { createRequire } = await import('node:module');
      const require = createRequire(process.cwd() + '/');
      const crc = require('kafkajs/src/protocol/recordBatch/crc32C/index.js');
      console.log(JSON.stringify({ active: fastPaths.active, turnedOff: fastPaths.turnedOff, reason: fastPaths.reason, crc: crc.name }));
    `;
    const run = (value: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
        env: { ...process.env, TESSERA_KAFKAJS_FAST_PATHS: value },
        encoding: 'utf8',
      });
    const off = run('false');
    assert.equal(off.status, 0, off.stderr);
    const status = JSON.parse(off.stdout.trim()) as {
      active: boolean;
      turnedOff?: boolean;
      reason: string;
      crc: string;
    };
    assert.equal(status.active, false);
    assert.equal(status.turnedOff, true, 'turned off on purpose: logged at info, not warned');
    assert.match(status.reason, /turned off by TESSERA_KAFKAJS_FAST_PATHS=false/);
    assert.notEqual(status.crc, crc32c.name, "kafkajs' own CRC-32C is loaded");
    const on = run('true');
    assert.equal(JSON.parse(on.stdout.trim()).crc, crc32c.name);
    const bad = run('no');
    assert.equal(bad.status, 1);
    // The services' form of a configuration error, not a stack trace.
    assert.match(
      bad.stderr,
      /^CONFIG_INVALID: TESSERA_KAFKAJS_FAST_PATHS must be true or false \(unset: true\), got "no"\n$/,
    );
  });

  it('are installed by every service that uses kafkajs before anything loads it', () => {
    // A static import graph has its CommonJS modules (kafkajs) loaded while it is linked, before
    // any module body runs: main.ts imports only the fast paths statically (and Node's built-ins,
    // which cannot load kafkajs: the ingestor's V8 flag), then the process.
    for (const service of ['ingestor', 'server', 'producer', 'flusher']) {
      const text = readFileSync(`services/${service}/main.ts`, 'utf8');
      const imports = [...text.matchAll(/^import [^;]*;/gm)]
        .map((m) => m[0])
        .filter((line) => !/ from 'node:[a-z0-9_/]+';$/.test(line));
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
