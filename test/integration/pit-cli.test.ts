// `tessera historical` as a user runs it, against the real S3 server: CSV in, CSV and parquet out,
// hand-computed values at and between event times, labels passed through in input order, a
// record written twice counted once, and clear errors with exit code 2.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { s3Options } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { type ObjectStore, openObjectStore } from '../../shared/offline/object-store.ts';
import { readParquet } from '../../shared/offline/parquet.ts';
import { rawBatchFromRecords, writeRawLog } from '../../shared/offline/raw-log.ts';

const run = promisify(execFile);
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 1, 10, 12);

interface Tx {
  user_id: number;
  event_timestamp: number;
  amount: number;
  merchant_id: string;
  p: number;
  o: number;
}

describe('tessera historical CLI (S3)', { timeout: 120_000 }, () => {
  const config = loadConfig({ argv: [] });
  const prefix = `test-pit-cli-${process.pid}-${Date.now().toString(36)}`;
  const storeUri = `s3://${config.s3Bucket}/${prefix}`;
  let store: ObjectStore;
  let dir: string;

  const cli = async (...argv: string[]) => {
    try {
      const { stdout, stderr } = await run(
        process.execPath,
        ['--import', 'tsx', 'services/historical/main.ts', '--store', storeUri, ...argv],
        { timeout: 60_000 },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-cli-'));
    store = openObjectStore(storeUri, s3Options(config));
    const source = loadDefinitionsFile('definitions/fraud.yaml').views[0]!.source;
    const tx = (t: number, amount: number, merchant: string, o: number): Tx => ({
      user_id: 7,
      event_timestamp: t,
      amount,
      merchant_id: merchant,
      p: 1,
      o,
    });
    const events = [
      tx(T0 - 8 * DAY, 500, 'm_old', 1), // outside every 7d window read below
      tx(T0 - 2 * HOUR, 10, 'm_a', 2),
      tx(T0 - 30 * MIN, 20, 'm_b', 3),
      tx(T0, 40, 'm_a', 4), // at exactly t: excluded from the read at T0
      tx(T0 + HOUR, 1000, 'm_c', 5), // the future of every label: never seen
    ];
    const position = (r: Tx) => ({ partition: r.p, offset: r.o });
    await writeRawLog(store, source, rawBatchFromRecords(source, events, position), 'part-a');
    // A retried flush wrote the event at T0 - 30 min a second time.
    await writeRawLog(store, source, rawBatchFromRecords(source, [events[2]!], position), 'part-b');
  });

  after(async () => {
    if (store) await store.delete((await store.list('')).map((o) => o.key));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers at and between events, in input order, with labels passed through (CSV and parquet)', async () => {
    const entities = join(dir, 'labels.csv');
    writeFileSync(
      entities,
      [
        'user_id,event_timestamp,is_fraud,note',
        `7,${new Date(T0 + 1).toISOString()},1,"after, the 40"`,
        `7,${new Date(T0).toISOString()},0,at t`,
        `99,${T0},0,unknown user`,
        `7,2026-02-10 12:59:59.999,0,naive = UTC`,
      ].join('\n'),
    );
    const csvOut = join(dir, 'train.csv');
    const r = await cli('--entities', entities, '--out', csvOut);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /answering \[#+\] 4\/4 rows/);
    const lines = readFileSync(csvOut, 'utf8').trim().split('\n');
    assert.equal(
      lines[0],
      'user_id,event_timestamp,is_fraud,note,transaction_count_1h,transaction_count_24h,avg_transaction_amount_7d,avg_transaction_amount_30d,max_transaction_amount_7d,distinct_merchant_count_7d',
    );
    // [t - W, t): at T0 the event at T0 is out, the duplicate counts once, the 8-day-old one only in 30d.
    assert.equal(
      lines[1],
      `7,${new Date(T0 + 1).toISOString()},1,"after, the 40",2,3,${70 / 3},${570 / 4},40,2`,
    );
    assert.equal(lines[2], `7,${new Date(T0).toISOString()},0,at t,1,2,15,${530 / 3},20,2`);
    assert.equal(lines[3], `99,${new Date(T0).toISOString()},0,unknown user,0,0,0,0,0,0`);
    // A naive time is UTC. At 12:59:59.999 the 11:30 event has left the 1h window (no new event
    // needed: windows decay at read time); the 12:00 one is still in.
    assert.equal(lines[4], `7,2026-02-10T12:59:59.999Z,0,naive = UTC,1,3,${70 / 3},${570 / 4},40,2`);

    const pqOut = join(dir, 'train.parquet');
    assert.equal((await cli('--entities', entities, '--out', pqOut, '--quiet')).code, 0);
    const table = readParquet(new Uint8Array(readFileSync(pqOut)));
    assert.deepEqual(
      table.schema.fields.map((f) => `${f.name}:${f.type}`),
      [
        'user_id:Int64',
        'event_timestamp:Timestamp<MILLISECOND, UTC>',
        'is_fraud:Int64',
        'note:Utf8',
        'transaction_count_1h:Int64',
        'transaction_count_24h:Int64',
        'avg_transaction_amount_7d:Float64',
        'avg_transaction_amount_30d:Float64',
        'max_transaction_amount_7d:Float64',
        'distinct_merchant_count_7d:Int64',
      ],
    );
    assert.deepEqual(
      Array.from(table.getChild('transaction_count_1h')!.toArray() as BigInt64Array, Number),
      [2, 1, 0, 1],
    );
    assert.equal(table.getChild('note')!.get(0), 'after, the 40');
  });

  it('selects features with --features', async () => {
    const entities = join(dir, 'one.csv');
    writeFileSync(entities, `user_id,event_timestamp\n7,${T0}\n`);
    const out = join(dir, 'one.csv.out.csv');
    const r = await cli(
      '--entities',
      entities,
      '--out',
      out,
      '--features',
      'user_transaction_features:max_transaction_amount_7d,transaction_count_24h',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), [
      'user_id,event_timestamp,max_transaction_amount_7d,transaction_count_24h',
      `7,${new Date(T0).toISOString()},20,2`,
    ]);
  });

  it('fails with exit code 2 and names the row, the column or the feature', async () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, `user_id,event_timestamp\n7,${T0}\n8,not-a-time\n`);
    const r1 = await cli('--entities', bad, '--out', join(dir, 'x.parquet'));
    assert.equal(r1.code, 2);
    assert.match(r1.stderr, /INVALID_ARGUMENT: .*bad\.csv row 2: bad event_timestamp "not-a-time"/);

    const noTs = join(dir, 'nots.csv');
    writeFileSync(noTs, `user_id,when\n7,${T0}\n`);
    const r2 = await cli('--entities', noTs, '--out', join(dir, 'x.parquet'));
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /has no column event_timestamp/);

    const ok = join(dir, 'ok.csv');
    writeFileSync(ok, `user_id,event_timestamp\n7,${T0}\n`);
    const r3 = await cli('--entities', ok, '--out', join(dir, 'x.parquet'), '--features', 'nope');
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /unknown feature nope; view user_transaction_features has /);

    const r4 = await cli('--entities', join(dir, 'missing.csv'), '--out', join(dir, 'x.parquet'));
    assert.equal(r4.code, 2);
    assert.match(r4.stderr, /NOT_FOUND: --entities .*missing\.csv does not exist/);

    const r5 = await cli('--entities', ok);
    assert.equal(r5.code, 2);
    assert.match(r5.stderr, /--entities and --out are required/);
  });
});
