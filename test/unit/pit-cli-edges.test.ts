// `tessera historical` refuses flags that cannot mean what was asked, with exit 2 and a message
// naming the flag, before any work: an empty --features or --view (they ran with every feature,
// exit 0), a --temp-dir that does not exist (a bare mkdtemp ENOENT after the labels were read,
// exit 1) and a directory as --entities (a bare EISDIR naming no file, exit 1).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { LocalObjectStore } from '../../shared/offline/object-store.ts';
import { rawBatchFromRecords, writeRawLog } from '../../shared/offline/raw-log.ts';

const T0 = Date.UTC(2026, 1, 10, 12);

describe('tessera historical: flags refused up front', { timeout: 60_000 }, () => {
  let dir: string;
  let entities: string;

  /** The CLI over a local store with a raw log, so that a flag accepted would run to its end. */
  const cli = (...argv: string[]) => {
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'services/historical/main.ts', '--store', join(dir, 'store'), '--quiet', ...argv],
      { encoding: 'utf8', timeout: 30_000 },
    );
    return { code: run.status, stdout: run.stdout, stderr: run.stderr };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-cli-edges-'));
    const source = loadDefinitionsFile('definitions/fraud.yaml').views[0]!.source;
    const events = [1, 2, 3].map((i) => ({
      user_id: 7,
      event_timestamp: T0 - i * 60_000,
      amount: i,
      merchant_id: 'm',
      o: i,
    }));
    await writeRawLog(
      new LocalObjectStore(join(dir, 'store')),
      source,
      rawBatchFromRecords(source, events, (r) => ({ partition: 0, offset: r.o })),
      'part-0',
    );
    entities = join(dir, 'labels.csv');
    writeFileSync(entities, `user_id,event_timestamp\n7,${new Date(T0).toISOString()}\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses an empty --features or --view (they ran with every feature of the view, exit 0)', () => {
    const out = join(dir, 'empty-flags.csv');
    for (const [flag, value, why] of [
      ['--features', '', /INVALID_ARGUMENT: --features "" names no feature; pass view:feature/],
      ['--features', ',', /INVALID_ARGUMENT: --features "," names no feature/],
      ['--features', ' , ', /INVALID_ARGUMENT: --features " , " names no feature/],
      ['--view', '', /INVALID_ARGUMENT: --view "" names no view/],
    ] as const) {
      const r = cli('--entities', entities, '--out', out, `${flag}=${value}`);
      assert.equal(r.code, 2, `${flag} ${JSON.stringify(value)}: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.equal(r.stdout, '', 'no summary: nothing ran');
    }
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('empty-flags')),
      [],
    );
    // A trailing comma is still fine.
    const ok = cli('--entities', entities, '--out', out, '--features', 'transaction_count_1h,');
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout).features, ['transaction_count_1h']);
  });

  it('refuses a --temp-dir that does not exist or is not a directory, before reading the labels', () => {
    const out = join(dir, 'temp.csv');
    // --shard-events 1: several shards, so the spill directory is needed.
    for (const [tempDir, why] of [
      [join(dir, 'no-such-dir'), /does not exist; create it first/],
      [entities, /is not a directory/],
    ] as const) {
      const r = cli('--entities', entities, '--out', out, '--shard-events', '1', '--temp-dir', tempDir);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`INVALID_ARGUMENT: --temp-dir ${tempDir}: `));
      assert.match(r.stderr, why);
      assert.doesNotMatch(r.stderr, /ENOENT|mkdtemp/);
    }
    const spill = join(dir, 'spill');
    mkdirSync(spill);
    const ok = cli('--entities', entities, '--out', out, '--shard-events', '1', '--temp-dir', spill);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(JSON.parse(ok.stdout).shards > 1, 'spilled to --temp-dir');
  });

  it('names a directory given as a CSV --entities: exit 2, as for parquet', () => {
    const notFile = join(dir, 'labels-dir.csv');
    mkdirSync(notFile);
    const r = cli('--entities', notFile, '--out', join(dir, 'eisdir.csv'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`INVALID_ARGUMENT: cannot read --entities ${notFile}: .*EISDIR`));
  });
});
