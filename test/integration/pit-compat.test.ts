// `tessera historical` against the real S3 server, checked from Python: pandas/pyarrow read the
// output with the right dtypes, Feast's get_historical_features over a features.parquet gives the
// same values when the entity rows are transactions (and differs, as documented, at times between
// events), and the seed's oracle gives the same values. Needs TESSERA_PYTHON (scripts/stack env).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { s3Options } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { planView } from '../../shared/engine/index.ts';
import { type ObjectStore, openObjectStore } from '../../shared/offline/object-store.ts';
import {
  type FraudLog,
  fraudTrainingRows,
  generateFraudLog,
  sampleRows,
  writeEntities,
  writeEventsCsv,
  writeFeatureTable,
  writeFraudRawLog,
} from '../compat/pit-fixtures.ts';
import { oracleSpec } from '../support/oracle.ts';

const run = promisify(execFile);
const HALF_HOUR = 1_800_000;

interface CompatReport {
  dtypes_ok: boolean;
  dtype_problems: string[];
  pandas_dtypes: Record<string, string>;
  feast_rows_compared: number;
  feast_rows_ours: number;
  feast_mismatches: number;
  feast_examples: unknown[];
  shifted_rows_compared: number;
  shifted_mismatches: number;
  shifted_by_feature: Record<string, number>;
  oracle_rows: number;
  oracle_mismatches: number;
  oracle_examples: unknown[];
}

describe('tessera historical: pandas, Feast and the oracle agree (S3)', { timeout: 600_000 }, () => {
  const python = process.env.TESSERA_PYTHON;
  const config = loadConfig({ argv: [] });
  const prefix = `test-pit-${process.pid}-${Date.now().toString(36)}`;
  const storeUri = `s3://${config.s3Bucket}/${prefix}`;
  let store: ObjectStore;
  let dir: string;
  let log: FraudLog;
  let report: CompatReport;
  let cliStderr = '';
  let summary: { rows: number; eventsUsed: number; objectsRead: number };

  const cli = (entities: string, out: string) =>
    run(
      process.execPath,
      [
        '--import',
        'tsx',
        'services/historical/main.ts',
        '--entities',
        entities,
        '--out',
        out,
        '--store',
        storeUri,
      ],
      { maxBuffer: 1 << 24, timeout: 300_000 },
    );

  before(async () => {
    assert.ok(python, 'TESSERA_PYTHON is unset: run through scripts/test, or eval "$(scripts/stack env)"');
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-compat-'));
    store = openObjectStore(storeUri, s3Options(config));
    const view = loadDefinitionsFile('definitions/fraud.yaml').views[0]!;
    const plan = planView(view);
    log = generateFraudLog({ events: 20_000, seed: 11, users: 1500, chunks: 2 });
    await writeFraudRawLog(store, view.source, log, 7000);
    writeFeatureTable(join(dir, 'features'), view, log, fraudTrainingRows(plan, log), 1_000_000);
    await writeEventsCsv(join(dir, 'events.csv'), log);
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(oracleSpec(plan)));
    const rows = sampleRows(log.n, 5000);
    writeEntities(join(dir, 'entities.parquet'), log, rows);
    writeEntities(join(dir, 'shifted.parquet'), log, rows, HALF_HOUR);

    const first = await cli(join(dir, 'entities.parquet'), join(dir, 'out.parquet'));
    cliStderr = first.stderr;
    summary = JSON.parse(first.stdout.trim().split('\n').at(-1)!);
    await cli(join(dir, 'shifted.parquet'), join(dir, 'shifted-out.parquet'));
    const { stdout } = await run(
      python!,
      [
        'test/compat/pit_compat.py',
        '--pit',
        join(dir, 'out.parquet'),
        '--features',
        join(dir, 'features', 'part-00000.parquet'),
        '--entities',
        join(dir, 'entities.parquet'),
        '--events',
        join(dir, 'events.csv'),
        '--spec',
        join(dir, 'spec.json'),
        '--shifted-pit',
        join(dir, 'shifted-out.parquet'),
        '--shifted-entities',
        join(dir, 'shifted.parquet'),
      ],
      { maxBuffer: 1 << 26, timeout: 400_000 },
    );
    report = JSON.parse(stdout.trim().split('\n').at(-1)!);
  });

  after(async () => {
    if (store) await store.delete((await store.list('')).map((o) => o.key));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the raw log from S3 and shows progress on stderr', () => {
    assert.equal(summary.rows, 5000);
    assert.ok(summary.objectsRead > 30, `${summary.objectsRead} raw objects read`);
    assert.ok(summary.eventsUsed > 5000, `${summary.eventsUsed} events used`);
    assert.match(cliStderr, /answering \[#+\] 5,000\/5,000 rows/);
  });

  it('pandas reads int64 keys, tz-aware UTC timestamps, int64 counts and float64 averages', () => {
    assert.deepEqual(report.dtype_problems, []);
    assert.equal(report.pandas_dtypes.event_timestamp, 'datetime64[ms, UTC]');
    assert.equal(report.pandas_dtypes.transaction_count_1h, 'int64');
    assert.equal(report.pandas_dtypes.avg_transaction_amount_7d, 'float64');
    assert.equal(report.pandas_dtypes.is_fraud, 'int64');
    assert.equal(report.dtypes_ok, true);
  });

  it("equals Feast's get_historical_features when the entity rows are transactions", () => {
    assert.ok(report.feast_rows_compared > 4000, `${report.feast_rows_compared} rows compared`);
    assert.equal(report.feast_rows_compared, report.feast_rows_ours, 'Feast answered every (user, time)');
    assert.equal(report.feast_mismatches, 0, JSON.stringify(report.feast_examples));
  });

  it('differs from Feast between events, where Feast returns the last event row without decay', (t) => {
    t.diagnostic(`values differing at t + 30 min, per feature: ${JSON.stringify(report.shifted_by_feature)}`);
    assert.ok(report.shifted_rows_compared > 4000);
    // Half an hour after a transaction, our windows include it; Feast's row (features BEFORE it)
    // does not. Counts over 1h must differ on many rows.
    assert.ok(
      report.shifted_by_feature.transaction_count_1h! > 1000,
      JSON.stringify(report.shifted_by_feature),
    );
  });

  it("equals the seed oracle's values on every row", () => {
    assert.equal(report.oracle_rows, 5000);
    assert.equal(report.oracle_mismatches, 0, JSON.stringify(report.oracle_examples));
  });
});
