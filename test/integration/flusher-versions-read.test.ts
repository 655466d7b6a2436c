// The "union of versions" recipe of docs/offline-store.md, run as written (the Python block taken
// from the doc, only its endpoint, credentials and view path swapped for this run's) against the
// stack's S3 with the pinned pyarrow, over two versions flushed under different definitions: a
// feature added, and one whose aggregation changed (a count that became a sum). The recipe used to
// fail on S3Proxy (501 NotImplemented on GetObject: the AWS SDK's optional checksums) and, past
// that, took its columns from the oldest file, silently dropping the added feature.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadState } from '../../services/flusher/flusher-state.ts';
import { s3Options } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { featureTableColumns } from '../../shared/offline/feature-columns.ts';
import { type ObjectStore, openObjectStore } from '../../shared/offline/object-store.ts';
import { changedDefinitions, flushRows } from '../support/definitions-change.ts';

const { before: before1, after: after1 } = changedDefinitions();
const view = before1.views[0]!.name;

describe('the documented reading of all versions (S3, pyarrow)', { timeout: 120_000 }, () => {
  const python = process.env.TESSERA_PYTHON;
  const config = loadConfig({ argv: [] });
  const prefix = `test-versions-read-${process.pid}-${Date.now().toString(36)}`;
  let store: ObjectStore;
  let columns: string[] = [];
  let dtypes: Record<string, string> = {};
  let records: Record<string, unknown>[] = [];

  before(async () => {
    assert.ok(python, 'TESSERA_PYTHON is unset: eval "$(scripts/stack env)"');
    store = openObjectStore(`s3://${config.s3Bucket}/${prefix}`, s3Options(config));
    const state = await loadState(store);
    await flushRows(store, state, before1, 'v_20260105T100000', 0, [0, 1, 2]);
    await flushRows(store, state, after1, 'v_20260105T110000', 1, [3, 4]);

    const doc = readFileSync('docs/offline-store.md', 'utf8');
    const block = /```python\n([\s\S]*?S3FileSystem[\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(block, 'docs/offline-store.md has no python block reading S3');
    let code = block;
    for (const [from, to] of [
      ['"http://127.0.0.1:8333"', JSON.stringify(config.s3Endpoint)],
      ['"tessera-local"', JSON.stringify(config.s3AccessKeyId)],
      ['"tessera-local-secret"', JSON.stringify(config.s3SecretAccessKey)],
      ['"tessera-offline/user_transaction_features"', JSON.stringify(`${config.s3Bucket}/${prefix}/${view}`)],
    ] as const) {
      assert.ok(code.includes(from), `the doc's snippet no longer has ${from}`);
      code = code.replace(from, to);
    }
    code += `
print(json.dumps({"columns": list(training.columns), "dtypes": {c: str(t) for c, t in training.dtypes.items()}}))
print(training.to_json(orient="records"))
`;
    // The snippet sets what it needs itself: nothing from this shell.
    const env = { ...process.env };
    delete env.AWS_REQUEST_CHECKSUM_CALCULATION;
    delete env.AWS_RESPONSE_CHECKSUM_VALIDATION;
    const { stdout } = await promisify(execFile)(python!, ['-c', code], { env, timeout: 60_000 });
    const [head, body] = stdout.trim().split('\n');
    ({ columns, dtypes } = JSON.parse(head!));
    records = JSON.parse(body!);
  });
  after(async () => {
    if (store) await store.delete((await store.list('')).map((o) => o.key));
  });

  it("reads every version's rows with the newest version's columns", () => {
    assert.deepEqual(
      columns,
      featureTableColumns(after1.views[0]!).map((c) => c.name),
    );
    assert.deepEqual(
      records.map((r) => r.source_offset),
      [0, 1, 2, 3, 4],
    );
    assert.equal(dtypes.transaction_count_1h, 'float64');
    assert.equal(dtypes.event_timestamp, 'datetime64[ms, UTC]');
  });

  it('keeps unchanged features, and nulls where a feature was added or defined differently', () => {
    for (const r of records) {
      const offset = r.source_offset as number;
      const old = offset < 3;
      assert.equal(r.transaction_count_24h, offset + 1, `offset ${offset}: unchanged count`);
      assert.equal(r.avg_transaction_amount_7d, offset + 0.5, `offset ${offset}: unchanged avg`);
      assert.equal(r.max_transaction_amount_1h, old ? null : offset + 0.5, `offset ${offset}: added`);
      // Before: the count of the hour; after: the sum of its amounts. Never mixed in one column.
      assert.equal(r.transaction_count_1h, old ? null : offset + 0.5, `offset ${offset}: changed`);
    }
  });
});
