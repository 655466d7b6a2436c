import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { columnFromValues, fitsColumn } from '../../../services/flusher/columns.ts';
import {
  type FeatureRow,
  type FeatureValueJson,
  featureColumns,
  misfitFeature,
  parseRow,
  parseRows,
  rowsInRecord,
} from '../../../services/flusher/feature-rows.ts';
import { parseVersion, versionName } from '../../../services/flusher/flusher-state.ts';
import { RecordBuffer } from '../../../services/flusher/record-buffer.ts';
import { columnStats, schemaFeatures, toCsv } from '../../../services/flusher/version-files.ts';
import { parseDefinitions } from '../../../shared/definitions/load.ts';
import { featureCsvText, ROWS_FORMAT } from '../../../shared/offline/feature-columns.ts';
import { type ColumnType, readParquet, writeParquet } from '../../../shared/offline/parquet.ts';

const rec = (offset: number) => ({ offset, key: null, value: Buffer.from(String(offset)) });

describe('RecordBuffer', () => {
  it('drops records below the written position and already-buffered re-fetches', () => {
    const b = new RecordBuffer(() => ({ t: { '0': 10 } }));
    assert.equal(b.append('t', 0, [rec(8), rec(9), rec(10), rec(11)]), 2);
    assert.equal(b.append('t', 0, [rec(10), rec(11), rec(12)]), 1); // a rebalance re-fetch
    assert.equal(b.size, 3);
    assert.deepEqual(b.cut(), { t: { '0': 13 } });
  });

  it('takes and releases exactly the records below a cut', () => {
    const b = new RecordBuffer(() => ({}));
    b.append('t', 0, [rec(0), rec(1), rec(2), rec(3)]);
    b.append('t', 1, [rec(0)]);
    const cut = { t: { '0': 2, '1': 1 } };
    assert.ok(b.reaches(cut));
    assert.deepEqual(
      [...b.take('t', cut)].map(([p, l]) => [p, l.map((r) => r.offset)]),
      [
        [0, [0, 1]],
        [1, [0]],
      ],
    );
    b.release(cut);
    assert.equal(b.size, 2);
    assert.equal(b.reaches({ t: { '0': 5 } }), false);
  });

  it('counts a multi-row record as its rows, in and out', () => {
    const b = new RecordBuffer(() => ({}));
    b.append('rows', 0, [
      { ...rec(0), rows: 3 },
      { ...rec(1), rows: 1 },
      { ...rec(2), rows: 5 },
    ]);
    assert.equal(b.size, 9);
    b.release({ rows: { '0': 2 } });
    assert.equal(b.size, 5);
    b.forget('rows', 0);
    assert.equal(b.size, 0);
  });
});

describe('version names', () => {
  it('are v_YYYYMMDDTHHMMSS in UTC and strictly increase within one second', () => {
    const t = Date.UTC(2026, 10, 26, 1, 2, 3, 456);
    const a = versionName(t, null);
    assert.equal(a, 'v_20261126T010203');
    const b = versionName(t, a);
    assert.equal(b, 'v_20261126T010204');
    assert.equal(parseVersion(b), Date.UTC(2026, 10, 26, 1, 2, 4));
    assert.equal(parseVersion('latest'), null);
  });
});

describe('parseRow', () => {
  const good = {
    view: 'v',
    entity: '42',
    event_timestamp: '2026-01-02T03:04:05.006Z',
    source_topic: 'transactions',
    partition: 1,
    offset: 7,
    features: { a: 1, b: null, c: [1, 'x'], d: false, e: [true, false] },
    definitions_hash: 'h',
  };
  it('accepts the ingestor row contract and reads the timestamp', () => {
    const r = parseRow(Buffer.from(JSON.stringify(good)));
    assert.ok(r.ok && r.row);
    assert.equal(r.row.ts, Date.UTC(2026, 0, 2, 3, 4, 5, 6));
  });
  it('refuses malformed rows with a reason instead of throwing', () => {
    assert.deepEqual(parseRow(Buffer.from('{')), { ok: false, reason: 'not_json' });
    assert.deepEqual(parseRow(null), { ok: false, reason: 'empty' });
    for (const bad of [
      { offset: -1 },
      { partition: 1.5 },
      { event_timestamp: 'yesterday' },
      { features: { a: {} } },
      { features: { a: [{}] } },
    ])
      assert.deepEqual(parseRow(Buffer.from(JSON.stringify({ ...good, ...bad }))), {
        ok: false,
        reason: 'bad_row',
      });
  });
});

describe('no-row marks', () => {
  const mark = {
    view: 'v',
    source_topic: 'transactions',
    partition: 2,
    offset: 9,
    no_row: 'late',
    definitions_hash: 'h',
  };
  it('reads a dead-lettered offset as a mark, not a row', () => {
    assert.deepEqual(parseRow(Buffer.from(JSON.stringify(mark))), {
      ok: true,
      noRow: { view: 'v', source_topic: 'transactions', partition: 2, offset: 9, reason: 'late' },
    });
  });
  it("reads a late mark's event time, and whether its ingestor had the training rows off", () => {
    const read = { view: 'v', source_topic: 'transactions', partition: 2, offset: 9, reason: 'late' };
    assert.deepEqual(parseRow(Buffer.from(JSON.stringify({ ...mark, event_time_ms: 1767225600000.5 }))), {
      ok: true,
      noRow: { ...read, ts: 1767225600000.5 },
    });
    assert.deepEqual(parseRow(Buffer.from(JSON.stringify({ ...mark, event_time_ms: 5, rows_off: true }))), {
      ok: true,
      noRow: { ...read, ts: 5, rowsOff: true },
    });
  });
  it('takes a mark whose event time is no time, without the time (it is not filed as a late mark)', () => {
    for (const event_time_ms of ['1767225600000', null, 8.64e15 + 1, true])
      assert.deepEqual(parseRow(Buffer.from(JSON.stringify({ ...mark, event_time_ms }))), {
        ok: true,
        noRow: { view: 'v', source_topic: 'transactions', partition: 2, offset: 9, reason: 'late' },
      });
  });
  it('refuses a malformed mark', () => {
    for (const bad of [{ offset: -1 }, { partition: 'x' }, { no_row: 1 }, { view: null }])
      assert.deepEqual(parseRow(Buffer.from(JSON.stringify({ ...mark, ...bad }))), {
        ok: false,
        reason: 'bad_row',
      });
  });
});

describe('parseRows', () => {
  const row = (offset: number) =>
    JSON.stringify({
      view: 'v',
      entity: '42',
      event_timestamp: '2026-01-02T03:04:05.006Z',
      source_topic: 'transactions',
      partition: 0,
      offset,
      features: { note: 'two\nlines' }, // an escaped newline inside a value does not split the row
      definitions_hash: 'h',
    });
  it('reads every line of a record of row objects (what ingestors wrote before the header format)', () => {
    const packed = Buffer.from([row(1), row(2), '{', row(3)].join('\n'));
    const rows = parseRows(packed);
    assert.deepEqual(
      rows.map((r) => (r.ok ? r.row?.offset : r.reason)),
      [1, 2, 'not_json', 3],
    );
    assert.equal(rowsInRecord(packed), 4);
    assert.equal(rowsInRecord(Buffer.from(row(1))), 1);
    assert.deepEqual(
      parseRows(Buffer.from(row(5))).map((r) => r.ok && r.row?.offset),
      [5],
    );
    assert.deepEqual(parseRows(null), [{ ok: false, reason: 'empty' }]);
  });
  const header = (over: Record<string, unknown> = {}) =>
    JSON.stringify({
      format: ROWS_FORMAT,
      view: 'v',
      source_topic: 'transactions',
      partition: 3,
      definitions_hash: 'h',
      features: ['a', 'b'],
      ...over,
    });
  const mark = JSON.stringify({
    view: 'w',
    source_topic: 'transactions',
    partition: 3,
    offset: 11,
    no_row: 'late',
    definitions_hash: 'h',
  });
  it('reads rows under their header, a mark between them leaving the header in place', () => {
    const record = Buffer.from(
      [
        header(),
        '["42",1000,10,1,"x"]',
        mark,
        '["43",2000,12,null,[1,"y"]]',
        header({ view: 'w', features: ['c'] }),
        '["44",3000,13,2.5]',
      ].join('\n'),
    );
    assert.deepEqual(
      parseRows(record).map((r) => (r.ok ? (r.row ?? r.noRow) : r)),
      [
        {
          view: 'v',
          entity: '42',
          ts: 1000,
          source_topic: 'transactions',
          partition: 3,
          offset: 10,
          features: { a: 1, b: 'x' },
          definitions_hash: 'h',
        },
        { view: 'w', source_topic: 'transactions', partition: 3, offset: 11, reason: 'late' },
        {
          view: 'v',
          entity: '43',
          ts: 2000,
          source_topic: 'transactions',
          partition: 3,
          offset: 12,
          features: { a: null, b: [1, 'y'] },
          definitions_hash: 'h',
        },
        {
          view: 'w',
          entity: '44',
          ts: 3000,
          source_topic: 'transactions',
          partition: 3,
          offset: 13,
          features: { c: 2.5 },
          definitions_hash: 'h',
        },
      ],
    );
    assert.equal(rowsInRecord(record), 4, 'headers are not rows');
  });
  it('refuses rows without a usable header, and malformed rows, each with a reason', () => {
    assert.deepEqual(parseRows(Buffer.from('["42",1000,10,1,2]')), [{ ok: false, reason: 'no_header' }]);
    for (const bad of [
      { partition: -1 },
      { features: 'a' },
      { features: [1] },
      { view: 7 },
      { definitions_hash: null },
    ])
      assert.deepEqual(
        parseRows(Buffer.from([header(bad), '["42",1000,10,1,2]'].join('\n'))),
        [
          { ok: false, reason: 'bad_header' },
          { ok: false, reason: 'no_header' },
        ],
        JSON.stringify(bad),
      );
    for (const row of [
      '["42",1000,10,1]', // a value short
      '["42",1000,10,1,2,3]', // one too many
      '[42,1000,10,1,2]', // entity not a string
      '["42","1000",10,1,2]', // time not a number
      '["42",1000.5,10,1,2]', // nor a whole millisecond
      '["42",8640000000000001,10,1,2]', // nor a time a Date holds (it failed every flush)
      '["42",1000,-1,1,2]', // offset negative
      '["42",1000,10,{},2]', // a value no column holds
      '["42",1000,10,[{}],2]',
    ])
      assert.deepEqual(
        parseRows(Buffer.from([header(), row].join('\n'))),
        [{ ok: false, reason: 'bad_row' }],
        row,
      );
    assert.deepEqual(
      parseRows(Buffer.from([header(), '["42",', '["43",1,2,3,4]'].join('\n'))).map((r) =>
        r.ok ? r.row?.entity : r.reason,
      ),
      ['not_json', '43'],
    );
  });
});

describe('columnFromValues', () => {
  it('writes int64 exactly, negative, beyond 2^32 and as decimal strings beyond 2^53', () => {
    const values = [
      0,
      -1,
      2 ** 32 + 3,
      -(2 ** 40),
      Number.MAX_SAFE_INTEGER,
      '9223372036854775807',
      '-12',
      null,
    ];
    const col = columnFromValues({ name: 'x', type: 'int64' }, values);
    assert.deepEqual([...(col.values as BigInt64Array)].map(String), [
      '0',
      '-1',
      '4294967299',
      '-1099511627776',
      '9007199254740991',
      '9223372036854775807',
      '-12',
      '0',
    ]);
    assert.deepEqual([...col.valid!], [1, 1, 1, 1, 1, 1, 1, 0]);
  });
  it('refuses a value that does not fit, naming the column', () => {
    assert.throws(() => columnFromValues({ name: 'n', type: 'double' }, ['x']), /column n \(double\) row 0/);
    // Beyond int64: a BigInt64Array wrapped them (2^64 - 1 was written as -1).
    for (const v of ['9223372036854775808', '18446744073709551615', '-9223372036854775809', 2n ** 63n])
      assert.throws(() => columnFromValues({ name: 'k', type: 'int64' }, [7, v]), /column k \(int64\) row 1/);
  });
  it('holds int64 to its range and times to what a Date holds, as a row is checked before its file', () => {
    assert.ok(fitsColumn('int64', '-9223372036854775808') && !fitsColumn('int64', '9223372036854775808'));
    assert.ok(fitsColumn('timestamp_ms', 8.64e15) && !fitsColumn('timestamp_ms', 8.64e15 + 1));
    assert.ok(!fitsColumn('timestamp_ms', '-8640000000000001'));
  });
});

describe('list columns (last_n)', () => {
  it('write each item type exactly, empty lists apart from null cells, and read back the same', () => {
    const cells: Record<string, unknown[]> = {
      'list<int64>': [[1, '9007199254740993', '-9223372036854775808'], [], null],
      'list<double>': [[1.5, -0, 2], [], null],
      'list<string>': [['a', 'é,"q"'], [], null],
      'list<bool>': [[true, false], [], null],
      'list<timestamp_ms>': [[0, 1767225600001], [], null],
    };
    const specs = Object.keys(cells).map((type, i) => ({ name: `c${i}`, type: type as ColumnType }));
    const inputs = Object.fromEntries(
      specs.map((spec) => [spec.name, columnFromValues(spec, cells[spec.type]!)]),
    );
    const table = readParquet(writeParquet(specs, inputs, 3));
    for (const spec of specs) {
      const child = table.getChild(spec.name)!;
      assert.equal(String(child.type).split('<')[0], 'List', spec.type);
      const back = [...child].map((v) => (v === null ? null : [...(v as Iterable<unknown>)]));
      const want = cells[spec.type]!.map((cell) =>
        cell === null
          ? null
          : (cell as unknown[]).map((x) =>
              // arrow reads int64 items as bigint, times as epoch milliseconds.
              spec.type === 'list<int64>' ? BigInt(x as number) : x,
            ),
      );
      assert.deepEqual(back, want, spec.type);
    }
  });
  it('refuses a cell that is not a list of its item type, naming the column', () => {
    assert.throws(
      () => columnFromValues({ name: 'r', type: 'list<double>' }, [[1], '[1]']),
      /column r \(list<double>\) row 1/,
    );
    assert.throws(
      () => columnFromValues({ name: 'r', type: 'list<int64>' }, [[1.5]]),
      /column r \(list<int64>\) row 0/,
    );
    assert.ok(
      fitsColumn('list<string>', ['a']) && fitsColumn('list<string>', []) && fitsColumn('list<string>', null),
    );
    assert.ok(!fitsColumn('list<string>', 'a') && !fitsColumn('list<bool>', [1]));
    assert.ok(!fitsColumn('list<int64>', ['9223372036854775808']));
  });
  it('are JSON arrays in features.csv, quoted when they must be, times as ISO 8601', () => {
    const specs = [
      { name: 'ids', type: 'list<int64>' as const },
      { name: 'at', type: 'list<timestamp_ms>' as const },
    ];
    const columns = {
      ids: columnFromValues(specs[0]!, [['9007199254740993', 2], null]),
      at: columnFromValues(specs[1]!, [[1000], []]),
    };
    assert.equal(
      toCsv(specs, columns, 2),
      'ids,at\n"[9007199254740993,2]","[""1970-01-01T00:00:01.000Z""]"\n,[]\n',
    );
  });
});

describe('featureCsvText (features.csv and a CSV training set)', () => {
  it('writes the engine value, the parquet item and the decimal string of an id alike', () => {
    // The engine gives an int64 beyond 2^53 as a decimal string, the parquet path as a bigint.
    for (const ids of [
      [1, '9007199254740993'],
      [1, 9007199254740993n],
    ])
      assert.equal(featureCsvText(ids, 'list<int64>'), '[1,9007199254740993]');
    assert.equal(featureCsvText([1000, null], 'list<timestamp_ms>'), '["1970-01-01T00:00:01.000Z",null]');
    assert.equal(featureCsvText(['a"b', 'c'], 'list<string>'), '["a\\"b","c"]');
    assert.equal(featureCsvText([], 'list<double>'), '[]');
    assert.equal(featureCsvText(1000, 'timestamp_ms'), '1970-01-01T00:00:01.000Z');
    assert.equal(featureCsvText(null, 'list<bool>'), '');
    assert.equal(featureCsvText(2.5, 'double'), '2.5');
  });
});

describe('misfitFeature', () => {
  const defs = parseDefinitions(`
version: 1
project: q
entities: [{ name: user, join_key: user_id, type: int64 }]
sources:
  - { name: tx, topic: tx, format: json, key_field: user_id, timestamp_field: ts,
      schema: { user_id: int64, ts: timestamp, amount: double } }
views:
  - name: v
    entity: user
    source: tx
    features:
      - { name: constructor, aggregation: count, window: 1h }
      - { name: total, aggregation: sum, column: amount, window: 1h }
`);
  const view = defs.views[0]!;
  const row = (entity: string, features: Record<string, FeatureValueJson>): FeatureRow => ({
    view: 'v',
    entity,
    ts: 1000,
    source_topic: 'tx',
    partition: 0,
    offset: 1,
    features,
    definitions_hash: 'h',
  });
  it('skips a row whose join key its column cannot hold, rather than failing the file', () => {
    for (const entity of ['abc', '1.5', '18446744073709551615'])
      assert.equal(misfitFeature(view, row(entity, { constructor: 1, total: 2 })), 'user_id', entity);
    assert.equal(misfitFeature(view, row('-9223372036854775808', { constructor: 1, total: 2 })), undefined);
  });
  it('reads a feature the row lacks as missing, also one named constructor', () => {
    // Read from the row object's prototype, Object itself was the value, and the row was dropped.
    const lacking = row('7', { total: 2 });
    assert.equal(misfitFeature(view, lacking), undefined);
    const { columns } = featureColumns(view, [lacking]);
    const count = Object.getOwnPropertyDescriptor(columns, 'constructor')?.value as {
      values: BigInt64Array;
      valid: Uint8Array;
    };
    assert.deepEqual([...count.valid], [0], 'null, not a value');
  });
});

describe('features.csv and stats', () => {
  const specs = [
    { name: 'id', type: 'int64' as const },
    { name: 'event_timestamp', type: 'timestamp_ms' as const },
    { name: 'avg', type: 'double' as const },
    { name: 'tag', type: 'string' as const },
  ];
  const columns = {
    id: columnFromValues(specs[0]!, [1, 2]),
    event_timestamp: columnFromValues(specs[1]!, [0, 1000]),
    avg: columnFromValues(specs[2]!, [1.5, null]),
    tag: columnFromValues(specs[3]!, ['a,"b"', null]),
  };
  it('quotes as RFC 4180, ISO timestamps, null as empty', () => {
    assert.equal(
      toCsv(specs, columns, 2),
      'id,event_timestamp,avg,tag\n1,1970-01-01T00:00:00.000Z,1.5,"a,""b"""\n2,1970-01-01T00:00:01.000Z,,\n',
    );
  });
  it('computes null rate, mean, min and max', () => {
    assert.deepEqual(columnStats(specs[2]!, columns.avg, 2), {
      null_rate: 0.5,
      mean: 1.5,
      min: 1.5,
      max: 1.5,
    });
  });
});

describe('schema.json features', () => {
  const fraud = readFileSync('definitions/fraud.yaml', 'utf8');
  const withExtras = (n: number, precision: number) =>
    parseDefinitions(
      fraud.replace(
        '\nfeature_services:',
        `      - name: last_merchants
        aggregation: last_n
        n: ${n}
        column: merchant_id
        window: 1h
      - name: merchants_approx
        aggregation: approx_count_distinct
        precision: ${precision}
        column: merchant_id
        window: 1h

feature_services:`,
      ),
    ).views[0]!;
  const byName = (n: number, precision: number) =>
    new Map(schemaFeatures(withExtras(n, precision)).map((f) => [f.name, f]));

  it('tells apart versions whose last_n n or approx precision differ, and nothing else', () => {
    const a = byName(10, 12);
    assert.deepEqual(a.get('last_merchants'), {
      name: 'last_merchants',
      aggregation: 'last_n',
      column: 'merchant_id',
      window_ms: 3_600_000,
      mode: 'exact',
      tile_ms: 0,
      default: null,
      n: 10,
    });
    assert.equal(a.get('merchants_approx')!.precision, 12);
    assert.ok(!('n' in a.get('transaction_count_1h')!) && !('precision' in a.get('transaction_count_1h')!));
    const b = byName(5, 14);
    assert.notDeepEqual(b.get('last_merchants'), a.get('last_merchants'));
    assert.notDeepEqual(b.get('merchants_approx'), a.get('merchants_approx'));
    assert.deepEqual(b.get('avg_transaction_amount_7d'), a.get('avg_transaction_amount_7d'));
  });
});
