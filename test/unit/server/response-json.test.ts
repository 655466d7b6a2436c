// The response writer of /get-online-features (pure): byte for byte what JSON.stringify gives for
// Feast's column-major layout, for every row outcome and value kind, with numbers typed as Feast's
// server writes them (a Float64 with a fraction, an Int64 as a bare integer), and the timestamp
// formatter equal to Date#toISOString with Feast's precision rule.
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

/**
 * A number of the feature's type as Python's json reads it back: a Float64 whose JSON text is all
 * digits (`50`, read as an int) gets `.0`, as Feast's server writes it; an Int64 is its digits.
 * Tokens stand in for such values in the objects handed to JSON.stringify and are replaced by
 * that text afterwards.
 */
function feastNumber(value: unknown, numbers: string, raw: string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => feastNumber(v, numbers, raw));
  let text: string | undefined;
  if (numbers === 'double' && typeof value === 'number' && /^-?\d+$/.test(JSON.stringify(value)))
    text = `${JSON.stringify(value)}.0`;
  if (numbers === 'int64' && typeof value === 'string') text = BigInt(value).toString();
  if (text === undefined) return value;
  raw.push(text);
  return `@raw${raw.length - 1}@`;
}

/** The layout as the server built it before: objects, then JSON.stringify. */
function reference(request: ReturnType<typeof parseOnlineRequest>, views: ViewRows[]): string {
  const raw: string[] = [];
  const names: string[] = [];
  const results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[] = [];
  for (const column of request.entityColumns) {
    names.push(column.name);
    results.push({
      values: column.keys.map((key) => feastNumber(key, column.type === 'int64' ? 'int64' : 'plain', raw)),
      statuses: column.keys.map(() => 'PRESENT'),
      event_timestamps: column.keys.map(() => EPOCH),
    });
  }
  for (const { view, feature } of request.order) {
    const f = request.views[view]!.features[feature]!;
    const rows = views[view]!;
    names.push(f.outputName);
    const column = { values: [] as unknown[], statuses: [] as string[], event_timestamps: [] as string[] };
    rows.outcome.forEach((outcome, row) => {
      const value = outcome === FOUND ? (rows.values[row]![f.index] ?? null) : null;
      column.values.push(feastNumber(value, f.numbers, raw));
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
  return JSON.stringify({ metadata: { feature_names: names }, results }).replace(
    /"@raw(\d+)@"/g,
    (_, i: string) => raw[Number(i)]!,
  );
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
        entities: { user_id: [1, '9007199254740993', '3', 4, 5] },
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
    // The int64 keys echoed as Feast types them: bare integers ("3" as 3), the one past 2^53 exact.
    assert.ok(body.includes('{"values":[1,9007199254740993,3,4,5],"statuses":["PRESENT"'), body);
    assert.deepEqual(parsed.results[3]!.statuses, [
      'PRESENT',
      'NOT_FOUND',
      'NULL_VALUE',
      'OUTSIDE_MAX_AGE',
      'PRESENT', // a non-finite number is written as null, as JSON.stringify does, but is a value
    ]);
  });

  it('writes a single-row lookup (its own path) as JSON.stringify does, for every outcome and value kind', () => {
    const request = parseOnlineRequest(
      {
        features: [`${VIEW}:avg_transaction_amount_7d`, `${VIEW}:transaction_count_1h`],
        entities: { user_id: [42] },
      },
      fraud,
      1000,
    );
    const cases: ViewRows[] = [
      { outcome: [FOUND], stamps: ['2026-01-10T12:00:00Z'], values: [[3, 0, 12.5, 0, 0, 0]] },
      { outcome: [FOUND], stamps: ['2026-01-10T12:00:00Z'], values: [[0, 0, null, 0, 0, 0]] },
      { outcome: [FOUND], stamps: ['2026-01-10T12:00:00Z'], values: [[0, 0, 50, 0, 0, 0]] },
      { outcome: [FOUND], stamps: ['2026-01-10T12:00:00Z'], values: [[0, 0, Number.NaN, 0, 0, 0]] },
      { outcome: [NOT_FOUND], stamps: [EPOCH], values: [null] },
      { outcome: [OUTSIDE_MAX_AGE], stamps: ['2025-01-01T00:00:00Z'], values: [null] },
    ];
    for (const rows of cases) assert.equal(onlineResponseJson(request, [rows]), reference(request, [rows]));
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

describe("onlineResponseJson: numbers as Feast's server types them", () => {
  const defs = parseDefinitions(
    `
version: 1
project: t
entities: [{ name: user, join_key: user_id, type: int64 }]
sources:
  - { name: tx, topic: tx, format: json, key_field: user_id, timestamp_field: ts, schema: { user_id: int64, ts: timestamp, amount: double, device: int64 } }
views:
  - name: v
    entity: user
    source: tx
    features:
      - { name: avg_amount, aggregation: avg, column: amount, window: 1h, default: 0.0 }
      - { name: total, aggregation: sum, column: device, window: 1h }
      - { name: amounts, aggregation: last_n, n: 3, column: amount, window: 1h }
      - { name: device, aggregation: last, column: device, window: 1h }
      - { name: devices, aggregation: last_n, n: 3, column: device, window: 1h }
      - { name: n, aggregation: count, window: 1h }
      - { name: top, aggregation: max, column: device, window: 1h }
`,
    'inline.yaml',
  );
  const names = ['avg_amount', 'total', 'amounts', 'device', 'devices', 'n', 'top'];

  it('writes whole doubles with a fraction and int64 ids past 2^53 as integers', () => {
    const request = parseOnlineRequest(
      { features: names.map((n) => `v:${n}`), entities: { user_id: [1, 2, 3] } },
      defs,
      10,
    );
    const rows: ViewRows = {
      outcome: [FOUND, FOUND, FOUND],
      stamps: ['2026-01-10T12:00:00Z', '2026-01-10T12:00:00Z', '2026-01-10T12:00:00Z'],
      values: [
        [50, 7, [50, 1.5, -3], '9007199254740993', [7, '9007199254740993'], 2, 7],
        [0, 0, [], 5, [], 0, 5],
        [1e21, -0, [2.5e-7, 123456789012345680000], 7, [7], 1, 8],
      ],
    };
    const body = onlineResponseJson(request, [rows]);
    assert.equal(body, reference(request, [rows]));
    const cells = (i: number) => body.split('"values":')[i + 2]!.split(',"statuses"')[0];
    assert.equal(cells(0), '[50.0,0.0,1e+21]', 'avg: doubles, 1e21 as JSON writes it');
    assert.equal(cells(1), '[7.0,0.0,0.0]', 'a sum is a double');
    assert.equal(cells(2), '[[50.0,1.5,-3.0],[],[2.5e-7,123456789012345680000.0]]');
    assert.equal(cells(3), '[9007199254740993,5,7]', 'an int64 id past 2^53, exact');
    assert.equal(cells(4), '[[7,9007199254740993],[],[7]]');
    assert.equal(cells(5), '[2,0,1]');
    assert.equal(cells(6), '[7,5,8]', 'max of an int64 column stays integral');
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
