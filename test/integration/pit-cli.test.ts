// `tessera historical` as a user runs it, against the real S3 server: CSV in, CSV and parquet out,
// hand-computed values at and between event times, labels passed through in input order, a
// record written twice counted once, clear errors with exit code 2, and Ctrl-C cleaning up.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
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
import { trackChild } from '../support/process-guard.ts';

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
    assert.match(r.stderr, /historical: writing 4 rows to .*train\.csv\n/);
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

  it('refuses a store without a raw log, an unwritable --out and a missing definitions file: exit 2, no stack', async () => {
    // They gave a training set of zeros with exit 0, an ENOENT stack trace after the whole run,
    // and exit 1.
    const ok = join(dir, 'ok2.csv');
    writeFileSync(ok, `user_id,event_timestamp\n7,${T0}\n`);
    const out = join(dir, 'refused.csv');
    const noLog = await cli('--entities', ok, '--out', out, '--store', `${storeUri}-typo`);
    assert.equal(noLog.code, 2, noLog.stderr);
    assert.match(
      noLog.stderr,
      /NOT_FOUND: the offline store s3:\/\/.*-typo has no raw log of source transactions/,
    );
    const noDir = await cli('--entities', ok, '--out', join(dir, 'no-such-dir', 'train.parquet'));
    assert.equal(noDir.code, 2, noDir.stderr);
    assert.match(
      noDir.stderr,
      /INVALID_ARGUMENT: --out .*train\.parquet: the directory .*no-such-dir does not exist/,
    );
    const noDefs = await cli('--entities', ok, '--out', out, '--definitions', join(dir, 'none.yaml'));
    assert.equal(noDefs.code, 2, noDefs.stderr);
    assert.match(noDefs.stderr, /DEFINITIONS_INVALID: cannot read definitions file/);
    for (const r of [noLog, noDir, noDefs]) assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.throws(() => readFileSync(out), /ENOENT/, 'nothing written');
  });

  it('Ctrl-C mid-run: exit 130, says so, and leaves no output and no spill files', async () => {
    // Killed by the signal, it left its spill files (GBs on a big run) and a partial CSV behind.
    // The labels come through a FIFO, so the signal arrives while the run is under way: once the
    // CLI has opened the FIFO its handler is in place, and it reads the labels to their end first.
    const fifo = join(dir, 'fifo-labels.csv');
    execFileSync('mkfifo', [fifo]);
    const temp = mkdtempSync(join(dir, 'spill-'));
    const out = join(dir, 'interrupted.csv');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'services/historical/main.ts',
        '--store',
        storeUri,
        '--entities',
        fifo,
        '--out',
        out,
        '--temp-dir',
        temp,
        '--shard-events',
        '1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    trackChild(child, 'historical CLI');
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const writer = await open(fifo, 'w'); // resolves once the CLI opened it for reading
    await writer.write(`user_id,event_timestamp\n7,${T0}\n7,${T0 + HOUR}\n`);
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 500));
    await writer.close();
    const code = await exited;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /SIGINT, stopping: removing spill files and partial output/);
    assert.match(stderr, /stopped by SIGINT; nothing was written to --out/);
    assert.deepEqual(readdirSync(temp), []);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('interrupted')),
      [],
    );
  });

  it('removes the spill directories of runs killed outright (SIGKILL), and only those', async () => {
    // Killed with SIGKILL, a run cannot clean up: its tessera-pit-* directory stayed in --temp-dir
    // for good. The pid in the name is that of a process really SIGKILLed; the live one is ours.
    const victim = trackChild(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']), 'victim');
    await new Promise((r) => victim.on('spawn', r));
    const dead = victim.pid!;
    victim.kill('SIGKILL');
    await new Promise((r) => victim.on('exit', r));
    const temp = mkdtempSync(join(dir, 'stale-'));
    const left = `tessera-pit-spill-${dead}-Qw3rTy`;
    const live = `tessera-pit-spill-${process.pid}-As4dFg`;
    for (const name of [left, live, 'unrelated']) {
      execFileSync('mkdir', [join(temp, name)]);
      writeFileSync(join(temp, name, 's0-c0.bin'), 'spilled events');
    }
    const entities = join(dir, 'labels-stale.csv');
    writeFileSync(
      entities,
      `user_id,event_timestamp
7,${T0}
`,
    );
    const r = await cli(
      '--entities',
      entities,
      '--out',
      join(dir, 'stale.csv'),
      '--temp-dir',
      temp,
      '--shard-events',
      '1',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`removed .*${left}, left by a run that died`));
    assert.deepEqual(readdirSync(temp).sort(), [live, 'unrelated'].sort());
  });
});
