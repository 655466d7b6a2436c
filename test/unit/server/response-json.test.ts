// The response writer of /get-online-features (pure): byte for byte what JSON.stringify gives for
// Feast's column-major layout, for every row outcome and value kind, and the timestamp formatter
// equal to Date#toISOString with Feast's precision rule.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseOnlineRequest } from '../../../services/server/request.ts';
import {
  EPOCH,
  FOUND,
  feastTimestamp,
  NOT_FOUND,
  OUTSIDE_MAX_AGE,
  onlineResponseJson,
  type ViewRows,
} from '../../../services/server/response-json.ts';
import { loadDefinitionsFile, parseDefinitions } from '../../../shared/definitions/load.ts';
import type { FeatureValue } from '../../../shared/engine/index.ts';

const fraud = loadDefinitionsFile('definitions/fraud.yaml');
const VIEW = 'user_transaction_features';

/** The layout as the server built it before: objects, then JSON.stringify. */
function reference(request: ReturnType<typeof parseOnlineRequest>, views: ViewRows[]): string {
  const names: string[] = [];
  const results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[] = [];
  for (const column of request.entityColumns) {
    names.push(column.name);
    results.push({
      values: column.values,
      statuses: column.values.map(() => 'PRESENT'),
      event_timestamps: column.values.map(() => EPOCH),
    });
  }
  for (const { view, feature } of request.order) {
    const f = request.views[view]!.features[feature]!;
    const rows = views[view]!;
    names.push(f.outputName);
    const column = { values: [] as unknown[], statuses: [] as string[], event_timestamps: [] as string[] };
    rows.outcome.forEach((outcome, row) => {
      const value = outcome === FOUND ? (rows.values[row]![f.index] ?? null) : null;
      column.values.push(value);
      column.statuses.push(
        outcome === NOT_FOUND
          ? 'NOT_FOUND'
          : outcome === OUTSIDE_MAX_AGE
            ? 'OUTSIDE_MAX_AGE'
            : value === null
              ? 'NULL_VALUE'
              : 'PRESENT',
      );
      column.event_timestamps.push(rows.stamps[row]!);
    });
    results.push(column);
  }
  return JSON.stringify({ metadata: { feature_names: names }, results });
}

describe('onlineResponseJson', () => {
  it('writes the same bytes as JSON.stringify for every row outcome and value kind', () => {
    const request = parseOnlineRequest(
      {
        features: [
          `${VIEW}:distinct_merchant_count_7d`,
          `${VIEW}:transaction_count_1h`,
          `${VIEW}:avg_transaction_amount_7d`,
        ],
        entities: { user_id: [1, '9007199254740993', 3, 4, 5] },
      },
      fraud,
      1000,
    );
    const six = (a: FeatureValue, b: FeatureValue): FeatureValue[] => [b, 0, a, 0, 0, a];
    const rows: ViewRows = {
      outcome: [FOUND, NOT_FOUND, FOUND, OUTSIDE_MAX_AGE, FOUND],
      stamps: ['2026-01-10T12:00:00Z', EPOCH, '2026-01-10T12:00:00.005Z', '2025-01-01T00:00:00Z', EPOCH],
      values: [six(12.5, 3), null, six(null, 0), null, six(Number.NaN, -0)],
    };
    const body = onlineResponseJson(request, [rows]);
    assert.equal(body, reference(request, [rows]));
    const parsed = JSON.parse(body) as { results: { values: unknown[]; statuses: string[] }[] };
    assert.deepEqual(parsed.results[0]!.values, [1, '9007199254740993', 3, 4, 5]);
    assert.deepEqual(parsed.results[3]!.statuses, [
      'PRESENT',
      'NOT_FOUND',
      'NULL_VALUE',
      'OUTSIDE_MAX_AGE',
      'PRESENT', // a non-finite number is written as null, as JSON.stringify does, but is a value
    ]);
  });

  it('keeps request order across views, full names, strings and lists', () => {
    const two = parseDefinitions(
      `
version: 1
project: t
entities: [{ name: user, join_key: user_id, type: string }]
sources:
  - { name: tx, topic: tx, format: json, key_field: user_id, timestamp_field: ts, schema: { user_id: string, ts: timestamp, amount: double, m: string } }
views:
  - { name: a, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 1h }, { name: last, aggregation: last, column: m, window: 1h }] }
  - { name: b, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 2h }, { name: recent, aggregation: last_n, n: 2, column: m, window: 1h }] }
`,
      'inline.yaml',
    );
    const request = parseOnlineRequest(
      {
        features: ['b:recent', 'a:n', 'b:n', 'a:last'],
        entities: { user_id: ['x', 'y"\\'] },
        full_feature_names: true,
      },
      two,
      1000,
    );
    const a: ViewRows = {
      outcome: [FOUND, FOUND],
      stamps: ['2026-01-10T12:00:00Z', '2026-01-10T12:00:01Z'],
      values: [
        [2, 'caf\u00e9 "quoted" \\'],
        [1, null],
      ],
    };
    const b: ViewRows = {
      outcome: [NOT_FOUND, FOUND],
      stamps: [EPOCH, '2026-01-09T00:00:00Z'],
      values: [null, [7, ['m1', 'm\n2']]],
    };
    const views = request.views.map((v) => (v.view.name === 'a' ? a : b));
    const body = onlineResponseJson(request, views);
    assert.equal(body, reference(request, views));
    assert.deepEqual((JSON.parse(body) as { metadata: { feature_names: string[] } }).metadata.feature_names, [
      'user_id',
      'b__recent',
      'a__n',
      'b__n',
      'a__last',
    ]);
  });
});

describe('feastTimestamp', () => {
  const viaIso = (ms: number) => {
    const iso = new Date(ms).toISOString();
    return ms % 1000 === 0 ? `${iso.slice(0, 19)}Z` : iso;
  };

  it("follows Feast's precision: no fraction on whole seconds, else milliseconds", () => {
    assert.equal(feastTimestamp(Date.UTC(2026, 0, 10, 12)), '2026-01-10T12:00:00Z');
    assert.equal(feastTimestamp(Date.UTC(2026, 0, 10, 12) + 5), '2026-01-10T12:00:00.005Z');
    assert.equal(feastTimestamp(Date.UTC(2026, 0, 10, 23, 59, 59, 999)), '2026-01-10T23:59:59.999Z');
    assert.equal(feastTimestamp(0), EPOCH);
  });

  it('equals Date#toISOString for any time, including before 1970 and after 9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: -62_000_000_000_000, max: 300_000_000_000_000 }), (ms) => {
        assert.equal(feastTimestamp(ms), viaIso(ms));
      }),
      { numRuns: 20_000 },
    );
    for (const ms of [-1, 253_402_300_799_999, 253_402_300_800_000, 1.5, 1000.5])
      assert.equal(feastTimestamp(ms), viaIso(ms));
  });
});
