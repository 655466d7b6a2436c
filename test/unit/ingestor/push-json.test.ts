// The hand-built JSON of features.rows / features.updates must be byte-identical to JSON.stringify
// of the documented fields (docs/ingestor.md): the offline flusher parses these records.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRows } from '../../../services/flusher/feature-rows.ts';
import { createPushEncoder, jsonNumber } from '../../../services/ingestor/push-json.ts';
import type { FeatureValue } from '../../../shared/engine/index.ts';
import { ROWS_FORMAT } from '../../../shared/offline/feature-columns.ts';

const names = new Map([['user_transaction_features', ['count_1h', 'avg "7d"', 'last\\n', 'merchants']]]);
const hash = 'sha256:abc"def';
const encoder = createPushEncoder(names, hash);
const samples: FeatureValue[][] = [
  [3, 12.5, null, ['m1', 'm"2']],
  [0, -0, 'x\u2028y', []],
  [Number.NaN, Number.POSITIVE_INFINITY, 1e21, 5e-324],
];

const vector = (values: FeatureValue[]) =>
  Object.fromEntries(names.get('user_transaction_features')!.map((n, i) => [n, values[i]]));

test('a rows header is exactly JSON.stringify of format, view, source_topic, partition, definitions_hash, features', () => {
  assert.equal(
    encoder.rowsHeader('it.transactions', 'user_transaction_features', 5),
    JSON.stringify({
      format: ROWS_FORMAT,
      view: 'user_transaction_features',
      source_topic: 'it.transactions',
      partition: 5,
      definitions_hash: hash,
      features: names.get('user_transaction_features'),
    }),
  );
  assert.throws(() => encoder.rowsHeader('t', 'no_such_view', 0), /no feature names for view no_such_view/);
});

test('a training row is exactly JSON.stringify of [entity, event time, offset, ...values], non-finite and missing values null', () => {
  for (const values of [...samples, [undefined, 1, undefined, 2] as unknown as FeatureValue[]]) {
    const row = {
      view: 'user_transaction_features',
      entity: 'u"1\\',
      ts: Date.UTC(2026, 0, 3, 4, 5, 6, 7),
      partition: 5,
      offset: 123456789,
      values,
    };
    const want = JSON.stringify([row.entity, row.ts, row.offset, ...values.map((v) => v ?? null)]);
    assert.equal(encoder.row(row), want);
  }
});

test('header and rows read back by the flusher as the features before each event', () => {
  const header = encoder.rowsHeader('it.transactions', 'user_transaction_features', 2);
  const rows = samples.map((values, i) => ({
    view: 'user_transaction_features',
    entity: `u${i}`,
    ts: Date.UTC(2026, 0, 3) + i,
    partition: 2,
    offset: 40 + i,
    values,
  }));
  const parsed = parseRows(Buffer.from([header, ...rows.map((r) => encoder.row(r))].join('\n')));
  assert.deepEqual(
    parsed.map((p) => (p.ok ? p.row : p)),
    rows.map((r) => ({
      view: r.view,
      entity: r.entity,
      ts: r.ts,
      source_topic: 'it.transactions',
      partition: 2,
      offset: r.offset,
      // What the JSON of each value reads back as: non-finite numbers are null, as JSON.stringify writes them.
      features: JSON.parse(
        JSON.stringify(
          vector(r.values.map((v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))),
        ),
      ),
      definitions_hash: hash,
    })),
  );
});

test('no-row marks are exactly JSON.stringify of view, source_topic, partition, offset, no_row, definitions_hash', () => {
  // The fields in this order; a late event's time and the rows-off flag between no_row and the hash.
  const expected = (extra: Record<string, unknown>) =>
    JSON.stringify({
      view: 'user_transaction_features',
      source_topic: 'it.transactions',
      partition: 3,
      offset: 77,
      no_row: 'late',
      ...extra,
      definitions_hash: hash,
    });
  const mark = (...rest: [number?, boolean?]) =>
    encoder.noRow('it.transactions', 'user_transaction_features', 3, 77, 'late', ...rest);
  assert.equal(mark(), expected({}));
  // A fraction of a millisecond is kept.
  assert.equal(mark(1767225600000.5), expected({ event_time_ms: 1767225600000.5 }));
  // From an ingestor with the training rows off.
  assert.equal(mark(1767225600000, true), expected({ event_time_ms: 1767225600000, rows_off: true }));
});

test('feature updates are exactly JSON.stringify of view, entity, as_of, state_version, features, definitions_hash', () => {
  for (const values of samples) {
    const update = {
      view: 'user_transaction_features',
      entity: '42',
      asOf: Date.UTC(2026, 0, 31),
      version: 99_999_999_999_999,
      values,
    };
    const want = JSON.stringify({
      view: update.view,
      entity: update.entity,
      as_of: new Date(update.asOf).toISOString(),
      state_version: update.version,
      features: vector(values),
      definitions_hash: hash,
    });
    assert.equal(encoder.update(update), want);
  }
});

test('a missing feature value is left out, as JSON.stringify does', () => {
  const values = [undefined, 1, undefined, 2] as unknown as FeatureValue[];
  const update = { view: 'user_transaction_features', entity: '1', asOf: 0, version: 1, values };
  assert.equal(
    encoder.update(update),
    JSON.stringify({
      view: update.view,
      entity: '1',
      as_of: new Date(0).toISOString(),
      state_version: 1,
      features: vector(values),
      definitions_hash: hash,
    }),
  );
});

test('numbers are written as JSON.stringify writes them, integers past the small-integer range too', () => {
  const small = [0, -0, 1, -1, 0.1, 12.5, 5e-324, -1e12, -(2 ** 31), 1.5e12 + 0.5];
  const edges = [2 ** 30 - 1, 2 ** 30, 2 ** 30 + 1, 2 ** 31, 1e6, 1e12, 1e12 + 1, 1e15 - 1, 1e15, 1e15 + 1];
  const large = [
    2 ** 53,
    2 ** 53 + 2,
    Number.MAX_SAFE_INTEGER,
    1e21,
    Date.UTC(2026, 0, 3),
    Date.UTC(2026, 0, 3, 4, 5, 6, 7),
  ];
  const odd = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  const cases = [
    ...small,
    ...edges,
    ...large,
    ...odd,
    1_700_000_000_005,
    1_700_000_050_000,
    1_700_000_999_999,
  ];
  // Every count of low digits, and random integers across the fast path's range.
  for (let k = 0; k <= 6; k++) cases.push(1_732_000_000_000 + 10 ** k, 1_732_000_000_000 + 10 ** k - 1);
  let seed = 7;
  const random = () => {
    seed = (seed * 48271) % 2147483647;
    return seed / 2147483647;
  };
  for (let i = 0; i < 20_000; i++) cases.push(Math.floor(2 ** 30 + random() * (1e15 - 2 ** 30)));
  for (let i = 0; i < 2_000; i++)
    cases.push(Math.floor(random() * 1e9) * 1e6 + Math.floor(random() * 10) * 10 ** (i % 6));
  for (const n of cases) assert.equal(jsonNumber(n), JSON.stringify(n), `for ${n}`);
});
