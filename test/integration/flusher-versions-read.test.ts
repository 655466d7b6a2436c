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
import { pino } from 'pino';
import { runFlush } from '../../services/flusher/flush.ts';
import { loadState } from '../../services/flusher/flusher-state.ts';
import { RecordBuffer } from '../../services/flusher/record-buffer.ts';
import { s3Options } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { parseDefinitions } from '../../shared/definitions/load.ts';
import type { Definitions } from '../../shared/definitions/schema.ts';
import { featureColumnType, featureTableColumns } from '../../shared/offline/feature-columns.ts';
import { type ObjectStore, openObjectStore } from '../../shared/offline/object-store.ts';

const DEFINITIONS = 'definitions/fraud.yaml';
const original = readFileSync(DEFINITIONS, 'utf8');
const COUNT_1H = `      - name: transaction_count_1h
        aggregation: count
        window: 1h`;
assert.ok(original.includes(COUNT_1H), `${DEFINITIONS} changed: update this test's edit of it`);
const before1 = parseDefinitions(original, DEFINITIONS);
// The next definitions: transaction_count_1h now sums amounts (int64 -> double), and a feature is added.
const after1 = parseDefinitions(
  original
    .replace(
      COUNT_1H,
      `      - name: transaction_count_1h
        aggregation: sum
        column: amount
        window: 1h`,
    )
    .replace(
      '\nfeature_services:',
      `      - name: max_transaction_amount_1h
        aggregation: max
        column: amount
        window: 1h
        tile: 5m

feature_services:`,
    ),
  DEFINITIONS,
);
const view = before1.views[0]!.name;

/** One training row per offset, each feature of the view given a value of its type. */
function rows(definitions: Definitions, offsets: number[]): Buffer {
  const v = definitions.views[0]!;
  return Buffer.from(
    offsets
      .map((offset) =>
        JSON.stringify({
          view: v.name,
          entity: String(100 + offset),
          event_timestamp: new Date(Date.UTC(2026, 0, 5, 10, offset)).toISOString(),
          source_topic: 'transactions',
          partition: 0,
          offset,
          features: Object.fromEntries(
            v.features.map((f) => [
              f.name,
              featureColumnType(f, v.source) === 'int64' ? offset + 1 : offset + 0.5,
            ]),
          ),
          definitions_hash: definitions.hash,
        }),
      )
      .join('\n'),
  );
}

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
    // Each flush: one features.rows record (Kafka offset `record`) holding the rows of `offsets`.
    const flush = async (definitions: Definitions, version: string, record: number, offsets: number[]) => {
      const buffer = new RecordBuffer(() => state.positions);
      buffer.append('features.rows', 0, [
        { offset: record, key: null, value: rows(definitions, offsets), rows: offsets.length },
      ]);
      const report = await runFlush(
        {
          store,
          definitions,
          sources: new Map(),
          rowsTopic: 'features.rows',
          retentionVersions: 0,
          codeVersion: 'test',
          logger: pino({ level: 'silent' }),
        },
        state,
        buffer,
        { version, cut: { 'features.rows': { '0': record + 1 } }, startedAt: new Date().toISOString() },
      );
      assert.equal(report.rows.get(view), offsets.length, JSON.stringify([...report.invalid]));
    };
    await flush(before1, 'v_20260105T100000', 0, [0, 1, 2]);
    await flush(after1, 'v_20260105T110000', 1, [3, 4]);

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
