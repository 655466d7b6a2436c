// `tessera historical` against the real S3 server, where the store's URI names a bucket that does
// not exist: a typo in --store, bad input (NOT_FOUND naming the bucket, exit 2), as
// docs/offline-retrieval.md says. It was SERVICE_UNAVAILABLE "...NoSuchBucket...; check the S3
// endpoint and credentials" with exit 1, as if S3 were down.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { s3Options } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { openObjectStore } from '../../shared/offline/object-store.ts';

const run = promisify(execFile);

describe('tessera historical CLI: a --store bucket that does not exist (S3)', { timeout: 120_000 }, () => {
  const config = loadConfig({ argv: [] });
  // Unique per run, and never created: nothing to clean up on the server.
  const bucket = `tessera-no-bucket-${process.pid}-${Date.now().toString(36)}`;
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-historical-edges-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses it as NOT_FOUND naming the bucket, exit 2, and writes nothing', async () => {
    const entities = join(dir, 'labels.csv');
    writeFileSync(entities, 'user_id,event_timestamp\n7,2026-02-10T12:00:00Z\n');
    const out = join(dir, 'train.parquet');
    const r = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'services/historical/main.ts',
        '--store',
        `s3://${bucket}/x`,
        '--entities',
        entities,
        '--out',
        out,
        '--quiet',
      ],
      { timeout: 60_000 },
    ).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `tessera historical: NOT_FOUND: the S3 bucket ${bucket} of the offline store s3://${bucket}/x does not exist; check the store's URI \\(--store`,
      ),
    );
    assert.doesNotMatch(r.stderr, /SERVICE_UNAVAILABLE|\n\s+at /);
    assert.deepEqual(readdirSync(dir), ['labels.csv'], 'nothing written');
  });

  it('lists as NOT_FOUND (not retriable); the bucket of the stack still lists', async () => {
    const missing = openObjectStore(`s3://${bucket}`, s3Options(config));
    await assert.rejects(
      missing.list('raw/'),
      (e) => isTesseraError(e, 'NOT_FOUND') && !e.retriable && e.context?.bucket === bucket,
    );
    const present = openObjectStore(`s3://${config.s3Bucket}/${bucket}`, s3Options(config));
    assert.deepEqual(await present.list('raw/'), []);
  });
});
