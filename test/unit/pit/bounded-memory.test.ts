// A point-in-time run's parquet goes through parquet-wasm a row group at a time: its memory (which
// never shrinks) used to grow with the labels, ~600 MB to decode 3M label rows and as much to
// encode the training set, and now holds one row group, with the same bytes in and out. Also: spill
// directories left by runs killed outright are removed by the next run, and only those.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as arrow from 'apache-arrow';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import { LocalObjectStore } from '../../../shared/offline/object-store.ts';
import { encodeTable, readParquet, toArrowTable, writeParquet } from '../../../shared/offline/parquet.ts';
import { readParquetByRowGroup, writeParquetByBatch } from '../../../shared/offline/parquet-chunks.ts';
import { EventShards, removeStaleSpillDirs } from '../../../shared/pit/event-shards.ts';
import { retrieveHistorical } from '../../../shared/pit/retrieve.ts';
import { generateFraudLog, writeFraudRawLog } from '../../compat/pit-fixtures.ts';
import { trackChild } from '../../support/process-guard.ts';

const DAY = 86_400_000;

/** A labels-like table of n rows in one batch (as a CSV dataframe gives): int64 key, timestamp,
 * a double and a nullable string. */
function labelsTable(n: number): arrow.Table {
  return toArrowTable(
    [
      { name: 'user_id', type: 'int64' },
      { name: 'event_timestamp', type: 'timestamp_ms' },
      { name: 'score', type: 'double' },
      { name: 'note', type: 'string' },
    ],
    {
      user_id: { values: BigInt64Array.from({ length: n }, (_, i) => BigInt(1000 + ((i * 31) % 997))) },
      event_timestamp: {
        values: BigInt64Array.from({ length: n }, (_, i) => BigInt(1.77e12 + (i % 500) * 1000)),
      },
      score: { values: Float64Array.from({ length: n }, (_, i) => i / 7) },
      note: { values: Array.from({ length: n }, (_, i) => (i % 5 === 0 ? null : `n${i % 13}`)) },
    },
    n,
  );
}

function labelsFile(n: number, rowGroupSize?: number): Uint8Array {
  return encodeTable(labelsTable(n), rowGroupSize === undefined ? {} : { rowGroupSize });
}

describe('point-in-time parquet a row group at a time', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-bounded-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [n, groups] of [
    [0, undefined],
    [5000, undefined],
    [10_000, 2048],
    [10_000, 1000],
    [300_000, undefined],
  ] as const)
    it(`reads the same table, batch for batch, as a whole-file read: ${n} rows in groups of ${groups ?? '128k'}`, async () => {
      const bytes = labelsFile(n, groups);
      const whole = readParquet(bytes);
      const grouped = await readParquetByRowGroup(bytes);
      assert.deepEqual(
        grouped.batches.map((b) => b.numRows),
        whole.batches.map((b) => b.numRows),
      );
      assert.deepEqual(grouped.toArray().map(String), whole.toArray().map(String));
      // And the training set built from it encodes to the same bytes.
      const out = join(dir, `read-${n}-${groups}.parquet`);
      await writeParquetByBatch(out, grouped);
      assert.ok(readFileSync(out).equals(Buffer.from(encodeTable(whole))));
    });

  it('writes the bytes of a whole-table encode, as the labels come: one batch (CSV), 1024-row batches (parquet), no rows', async () => {
    const one = labelsTable(300_000);
    const whole = readParquet(labelsFile(300_000));
    assert.equal(one.batches.length, 1, 'a CSV dataframe: one batch of every row');
    for (const [name, table] of [
      ['one batch', one],
      ['1024-row batches', whole],
      ['no rows', labelsTable(0)],
    ] as const) {
      const out = join(dir, `write-${name}.parquet`);
      await writeParquetByBatch(out, table);
      assert.ok(readFileSync(out).equals(Buffer.from(encodeTable(table))), name);
    }
  });

  describe('wasm memory of a run does not grow with the labels', () => {
    let store: string;
    before(async () => {
      const definitions = loadDefinitionsFile('definitions/fraud.yaml');
      const log = generateFraudLog({ events: 20_000, seed: 3, users: 500 });
      store = join(dir, 'store');
      await writeFraudRawLog(new LocalObjectStore(store), definitions.views[0]!.source, log);
      for (const n of [500_000, 1_000_000]) {
        // Ties (labels at an event's own time), many entities, labels before any event.
        const user = (i: number) => log.user[(i * 7919) % log.n]!;
        const ts = (i: number) =>
          i % 50 === 0 ? log.ts[0]! - 9 * DAY : log.ts[(i * 104729) % log.n]! + (i % 3) * 1000;
        writeFileSync(
          join(dir, `labels-${n}.parquet`),
          writeParquet(
            [
              { name: 'user_id', type: 'int64' },
              { name: 'event_timestamp', type: 'timestamp_ms' },
              { name: 'is_fraud', type: 'int64' },
            ],
            {
              user_id: { values: BigInt64Array.from({ length: n }, (_, i) => BigInt(user(i))) },
              event_timestamp: { values: BigInt64Array.from({ length: n }, (_, i) => BigInt(ts(i))) },
              is_fraud: { values: BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 2)) },
            },
            n,
          ),
        );
        const lines = Array.from({ length: n }, (_, i) => `${user(i)},${ts(i)},${i % 2}`);
        writeFileSync(
          join(dir, `labels-${n}.csv`),
          `user_id,event_timestamp,is_fraud\n${lines.join('\n')}\n`,
        );
      }
    });

    /** parquet-wasm's memory (MB) after a run in a fresh process that only reads and writes. */
    const wasmAfterRun = (labels: string): number => {
      const script = `
        import * as wasm from 'parquet-wasm';
        import { loadDefinitionsFile } from './shared/definitions/load.ts';
        import { LocalObjectStore } from './shared/offline/object-store.ts';
        import { retrieveHistorical } from './shared/pit/retrieve.ts';
        await retrieveHistorical({
          store: new LocalObjectStore(${JSON.stringify(store)}),
          definitions: loadDefinitionsFile('definitions/fraud.yaml'),
          entities: ${JSON.stringify(labels)},
          out: ${JSON.stringify(`${labels}.out.parquet`)},
          progress: false,
        });
        console.log(wasm.wasmMemory().buffer.byteLength / 2 ** 20);`;
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(run.status, 0, run.stderr.slice(-2000));
      return Number(run.stdout.trim());
    };

    for (const format of ['parquet', 'csv'] as const)
      it(`${format} labels: 1M rows take no more of it than 500k (it grew ~140 KB per 1,000 rows)`, () => {
        const small = wasmAfterRun(join(dir, `labels-500000.${format}`));
        const big = wasmAfterRun(join(dir, `labels-1000000.${format}`));
        assert.ok(big <= small + 8, `wasm memory ${small} MB at 500k labels, ${big} MB at 1M`);
      });
  });
});

describe('spill directories of runs killed outright', () => {
  it('are removed by the next run, but not those of live processes nor anything else', async () => {
    const temp = mkdtempSync(join(tmpdir(), 'tessera-pit-stale-'));
    try {
      // A real dead pid: a process started and SIGKILLed, as a run killed mid-way.
      const child = trackChild(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']), 'victim');
      const dead = child.pid!;
      await new Promise((r) => child.on('spawn', r));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      const make = (name: string) => {
        mkdirSync(join(temp, name));
        writeFileSync(join(temp, name, 's0-c0.bin'), 'spilled');
      };
      make(`tessera-pit-spill-${dead}-aB3dE9`); // dead owner: removed
      make(`tessera-pit-spill-${process.ppid}-xY7zQ1`); // live owner (our parent): kept
      make(`tessera-pit-spill-${process.pid}-kL2mN4`); // this process: another run of it may own it
      make('tessera-pit-spill-abc-aB3dE9'); // not a pid
      make('tessera-pit-bench-aB3dE9'); // someone else's
      make(`tessera-pit-spill-${dead}-toolong7`); // not a name a run gives
      const result = removeStaleSpillDirs(temp);
      assert.deepEqual(result, { removed: [join(temp, `tessera-pit-spill-${dead}-aB3dE9`)], failed: [] });
      assert.deepEqual(
        readdirSync(temp).sort(),
        [
          'tessera-pit-bench-aB3dE9',
          'tessera-pit-spill-abc-aB3dE9',
          `tessera-pit-spill-${dead}-toolong7`,
          `tessera-pit-spill-${process.pid}-kL2mN4`,
          `tessera-pit-spill-${process.ppid}-xY7zQ1`,
        ].sort(),
      );
      // Whether a pid is alive is all that decides: a reused pid keeps the directory.
      assert.deepEqual(removeStaleSpillDirs(temp, () => false).removed, [
        join(temp, `tessera-pit-spill-${process.ppid}-xY7zQ1`),
      ]);
      // A missing temp dir is not this function's error to raise.
      assert.deepEqual(removeStaleSpillDirs(join(temp, 'none')), { removed: [], failed: [] });
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  });

  it('a run names its spill directory for its pid, and a later run removes it once that pid is gone', async () => {
    const temp = mkdtempSync(join(tmpdir(), 'tessera-pit-stale-'));
    const stale = join(temp, 'tessera-pit-spill-999999999-aB3dE9'); // above pid_max: never alive
    mkdirSync(stale);
    try {
      const definitions = loadDefinitionsFile('definitions/fraud.yaml');
      const log = generateFraudLog({ events: 2000, seed: 4, users: 50 });
      const store = new LocalObjectStore(join(temp, 'store'));
      await writeFraudRawLog(store, definitions.views[0]!.source, log);
      const labels = join(temp, 'labels.csv');
      writeFileSync(labels, `user_id,event_timestamp\n${log.user[0]},${log.ts[10]}\n`);
      await retrieveHistorical({
        store,
        definitions,
        entities: labels,
        out: join(temp, 'out.csv'),
        tempDir: temp,
        shards: 2,
        progress: false,
      });
      assert.deepEqual(readdirSync(temp).sort(), ['labels.csv', 'out.csv', 'store']);
      const shards = new EventShards(2, [true], temp);
      try {
        assert.deepEqual(
          readdirSync(temp)
            .filter((name) => name.startsWith('tessera-pit-'))
            .map((name) => name.replace(/-\w{6}$/, '')),
          [`tessera-pit-spill-${process.pid}`],
        );
      } finally {
        shards.close();
      }
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  });
});
