// Point-in-time retrieval over a raw log in a local directory: values equal the engine's own
// training rows for labels at event times, never look ahead at arbitrary times, do not depend on
// the number of shards, count duplicated records once, skip days out of range, and fail clearly.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { columnFromValues } from '../../../services/flusher/columns.ts';
import { loadDefinitionsFile, parseDefinitions } from '../../../shared/definitions/load.ts';
import type { Definitions } from '../../../shared/definitions/schema.ts';
import {
  applyEvent,
  emptyState,
  type FeatureValue,
  featuresBeforeEachColumns,
  lastOffset,
  planView,
  readFeatures,
} from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { lateMarkFiles } from '../../../shared/offline/late-marks.ts';
import { LocalObjectStore } from '../../../shared/offline/object-store.ts';
import { encodeTable, readParquet, writeParquet } from '../../../shared/offline/parquet.ts';
import { rawBatchFromRecords, writeRawLog } from '../../../shared/offline/raw-log.ts';
import { retrieveHistorical } from '../../../shared/pit/retrieve.ts';
import {
  type FraudEvent,
  fraudEngineEvent,
  generateFraudEvents,
} from '../../../shared/synth/fraud-events.ts';
import { naiveFraudValue, sameValue } from '../../support/naive-reference.ts';

const HOUR = 3_600_000;

/** A list column's cell as a plain array (null for a null cell). */
const listCell = (table: arrow.Table, name: string, row: number): unknown[] | null => {
  const v = table.getChild(name)!.get(row) as arrow.Vector | null;
  return v === null ? null : [...v];
};

/**
 * A Python with pandas: the stack's venv (TESSERA_PYTHON; the test command always sets it, and the
 * test then fails if it lacks pandas), else a python3 that has it, else none (the test is skipped,
 * and says so).
 */
const pandasPython =
  process.env.TESSERA_PYTHON ||
  (spawnSync('python3', ['-c', 'import pandas, pyarrow']).status === 0 ? 'python3' : undefined);

describe('point-in-time retrieval (local raw log)', () => {
  let dir: string;
  let store: LocalObjectStore;
  let definitions: Definitions;
  let events: FraudEvent[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-unit-'));
    store = new LocalObjectStore(join(dir, 'store'));
    definitions = loadDefinitionsFile('definitions/fraud.yaml');
    events = generateFraudEvents({ events: 6000, seed: 7, users: 300 });
    const source = definitions.views[0]!.source;
    const position = (r: FraudEvent) => ({ partition: r.partition, offset: r.offset });
    // Two files; the second repeats 500 records of the first (a flush retried after a crash).
    await writeRawLog(store, source, rawBatchFromRecords(source, events.slice(0, 4000), position), 'part-0');
    await writeRawLog(
      store,
      source,
      rawBatchFromRecords(source, [...events.slice(4000), ...events.slice(0, 500)], position),
      'part-1',
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function labelsCsv(rows: { user: number; t: number; label?: string }[]): string {
    const path = join(dir, `labels-${Math.random().toString(36).slice(2)}.csv`);
    const lines = ['user_id,event_timestamp,is_fraud'];
    for (const r of rows) lines.push(`${r.user},${new Date(r.t).toISOString()},${r.label ?? '0'}`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  }

  async function run(entities: string, extra: { shards?: number; features?: string[]; mode?: 'tiled' } = {}) {
    const out = join(dir, `out-${Math.random().toString(36).slice(2)}.parquet`);
    const defs = extra.mode ? loadDefinitionsFile('definitions/fraud.yaml', { mode: 'tiled' }) : definitions;
    const summary = await retrieveHistorical({
      store,
      definitions: defs,
      entities,
      out,
      progress: false,
      ...(extra.shards ? { shards: extra.shards } : {}),
      ...(extra.features ? { features: extra.features } : {}),
    });
    return { summary, table: readParquet(new Uint8Array(readFileSync(out))) };
  }

  for (const mode of ['exact', 'tiled'] as const)
    it(`equals the engine training rows when the labels are the transactions (${mode}, every shard count)`, async () => {
      const plan = planView(loadDefinitionsFile('definitions/fraud.yaml', { mode }).views[0]!);
      const expected = featuresBeforeEachColumns(
        plan,
        events.map((e) => String(e.user_id)),
        events.map((e) => fraudEngineEvent(plan, e)),
      );
      const sample = events.filter((_, i) => i % 3 === 0);
      const entities = labelsCsv(
        sample.map((e) => ({ user: e.user_id, t: e.event_timestamp, label: String(e.offset % 2) })),
      );
      const indexOf = new Map(events.map((e, i) => [e, i]));
      for (const shards of [1, 4]) {
        const { table, summary } = await run(entities, { shards, ...(mode === 'tiled' ? { mode } : {}) });
        assert.equal(summary.rows, sample.length);
        assert.equal(summary.shards, shards);
        assert.equal(table.numRows, sample.length);
        let mismatches = 0;
        sample.forEach((e, row) => {
          const i = indexOf.get(e)!;
          assert.equal(Number(table.getChild('user_id')!.get(row)), e.user_id);
          plan.features.forEach((f, k) => {
            const got = table.getChild(f.def.name)!.get(row) as FeatureValue | bigint;
            const want = expected[k]![i] as FeatureValue;
            if ((typeof got === 'bigint' ? Number(got) : got) !== want) mismatches++;
          });
        });
        assert.equal(mismatches, 0, `${mismatches} values differ with ${shards} shard(s), ${mode} mode`);
        assert.equal(
          String(table.getChild('is_fraud')!.type),
          'Int64',
          'label column passed through as int64',
        );
      }
    });

  it('never looks ahead: an arbitrary time sees exactly the events in [t - W, t)', async () => {
    const plan = planView({ ...definitions.views[0]!, maxEventsPerEntity: Number.POSITIVE_INFINITY });
    const busiest = events.filter((e) => e.user_id === events[0]!.user_id);
    const times = busiest
      .slice(0, 40)
      .flatMap((e) => [e.event_timestamp, e.event_timestamp + 1, e.event_timestamp + HOUR]);
    // Sparse labels with gaps longer than every window, and one after the whole log.
    const lastTs = Math.max(...busiest.map((e) => e.event_timestamp));
    times.push(lastTs - 33 * 24 * HOUR, lastTs - 2 * 24 * HOUR, lastTs + 40 * 24 * HOUR);
    const { table } = await run(labelsCsv(times.map((t) => ({ user: events[0]!.user_id, t }))));
    // Reference: a fresh state with only the events strictly before t, read as of t.
    const seen = new Set<string>();
    const unique = busiest.filter((e) => {
      const k = `${e.partition}/${e.offset}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    times.forEach((t, row) => {
      const state = emptyState(plan);
      const before = unique
        .filter((e) => e.event_timestamp < t)
        .sort((a, b) => a.event_timestamp - b.event_timestamp);
      for (const e of before)
        applyEvent(plan, state, fraudEngineEvent(plan, e, 0, (lastOffset(state, 0) ?? -1) + 1));
      const want = readFeatures(plan, state, t);
      plan.features.forEach((f, k) => {
        const got = table.getChild(f.def.name)!.get(row) as number | bigint;
        assert.equal(
          typeof got === 'bigint' ? Number(got) : got,
          want[k],
          `row ${row} ${f.def.name} at ${new Date(t).toISOString()}`,
        );
      });
    });
  });

  it('skips raw-log days that cannot be in any window, and answers tiled mode too', async () => {
    const last = Math.max(...events.map((e) => e.event_timestamp));
    const user = events.at(-1)!.user_id;
    const { summary, table } = await run(labelsCsv([{ user, t: last - 2 * HOUR }]), {
      features: ['user_transaction_features:transaction_count_1h'],
    });
    assert.ok(summary.objectsSkipped > 0, `skipped ${summary.objectsSkipped} objects`);
    assert.deepEqual(summary.features, ['transaction_count_1h']);
    assert.equal(table.numCols, 4, 'user_id, event_timestamp, is_fraud, one feature');
    const tiled = await run(labelsCsv([{ user, t: last - 2 * HOUR }]), { mode: 'tiled' });
    assert.equal(tiled.table.numRows, 1);
  });

  it('passes label columns through as pandas reads them: int64 ids exact, only decimals as numbers', async () => {
    const labels = join(dir, 'pass-through.csv');
    writeFileSync(
      labels,
      'user_id,event_timestamp,txn_id,code,score,huge\n' +
        '1000,2026-01-05T10:00:00Z,9007199254740993,0x1A,1,18446744073709551616\n' +
        '1001,2026-01-05T10:00:00Z,1234567890123456789,0b11,2.5,1\n' +
        '1002,2026-01-05T11:30:00Z,-5,7,,2\n',
    );
    const { table } = await run(labels);
    const column = (name: string) => table.getChild(name)!;
    // Ids past 2^53 were typed double and rounded; "0x1A" and "0b11" were read as 26 and 3.
    assert.equal(String(column('txn_id').type), 'Int64');
    assert.deepEqual(Array.from(column('txn_id').toArray() as BigInt64Array, String), [
      '9007199254740993',
      '1234567890123456789',
      '-5',
    ]);
    assert.deepEqual(column('code').toArray(), ['0x1A', '0b11', '7']);
    assert.equal(String(column('score').type), 'Float64');
    assert.deepEqual(
      [column('score').get(0), column('score').get(1), column('score').get(2)],
      [1, 2.5, null],
    );
    // Past the int64 range: kept as text rather than rounded.
    assert.deepEqual(column('huge').toArray(), ['18446744073709551616', '1', '2']);
  });

  it("types '+5' as an integer and pandas' missing-value cells (NA, NaN, null, ...) as null, as read_csv does", async () => {
    // "+5" was not an integer and "NA" stayed a string, so a numeric column became text (object).
    const NA = ['#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan', '1.#IND', '1.#QNAN'];
    NA.push('<NA>', 'N/A', 'NA', 'NULL', 'NaN', 'None', 'n/a', 'nan', 'null', '');
    const names = ['plus', 'plus_decimal', 'int_or_na', 'bool', 'all_na', 'text', 'inf', 'padded', 'not_na'];
    const rows = NA.map((na, i) => {
      const cells = [`+${i}`, `+${i}.5`, i % 2 ? '+7' : na, i % 2 ? 'TRUE' : 'false', na, i ? na : 'x'];
      cells.push(i === 1 ? '+inf' : i === 2 ? '-Infinity' : `${i}`, ` +${i} `, i ? `${i}` : ' NA');
      return `1000,2026-01-05T10:00:00Z,${cells.join(',')}`;
    });
    const labels = join(dir, 'pandas-na.csv');
    writeFileSync(labels, `user_id,event_timestamp,${names.join(',')}\n${rows.join('\n')}\n`);
    const { table } = await run(labels);
    assert.deepEqual(Object.fromEntries(names.map((n) => [n, String(table.getChild(n)!.type)])), {
      plus: 'Int64',
      plus_decimal: 'Float64',
      // With missing cells pandas makes it float64 (and so does reading this int64 back): exact ids.
      int_or_na: 'Int64',
      bool: 'Bool',
      all_na: 'Float64', // nothing but missing cells: float64, as pandas makes it
      text: 'Utf8',
      inf: 'Float64',
      padded: 'Int64',
      not_na: 'Utf8', // " NA" is not one of pandas' tokens: they are matched as written
    });
    const column = (name: string) =>
      Array.from({ length: table.numRows }, (_, i) => table.getChild(name)!.get(i));
    assert.deepEqual(
      column('plus').map(Number),
      NA.map((_, i) => i),
    );
    assert.deepEqual(
      column('int_or_na'),
      NA.map((_, i) => (i % 2 ? 7n : null)),
    );
    assert.deepEqual(
      column('all_na'),
      NA.map(() => null),
    );
    assert.deepEqual(column('text'), ['x', ...NA.slice(1).map(() => null)]);
    assert.deepEqual(column('inf').slice(0, 4), [0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 3]);
    assert.deepEqual(
      column('padded').map(Number),
      NA.map((_, i) => i),
    );
  });

  it('gives the pass-through columns the dtypes and values pandas read_csv gives them', {
    skip: !pandasPython && 'no Python with pandas (eval "$(scripts/stack env)")',
  }, async () => {
    const labels = join(dir, 'pandas-dtypes.csv');
    writeFileSync(
      labels,
      'user_id,event_timestamp,a,b,c,d,e,f,g,h,i,j,k,empty\n' +
        '1000,2026-01-05T10:00:00Z,+5,+1.5,NA,1,true,tRuE,x, 5 , NA,inf,1,\n' +
        '1001,2026-01-05T10:00:00Z,6,2,1.5,NaN,false,false,NA,6,2,1,,\n' +
        '1002,2026-01-05T11:30:00Z,-7,-.5,#N/A,null,True,FALSE,None,+007,3,-Infinity,3,NULL\n',
    );
    const out = join(dir, 'pandas-dtypes.parquet');
    await retrieveHistorical({
      store,
      definitions,
      entities: labels,
      out,
      progress: false,
      features: ['transaction_count_1h'],
    });
    const compare = `
import json, sys, pandas as pd
a = pd.read_csv(sys.argv[1]).drop(columns=["event_timestamp"])
b = pd.read_parquet(sys.argv[2])[list(a.columns)]
print(json.dumps({c: [str(a[c].dtype), str(b[c].dtype), a[c].equals(b[c]) or bool(((a[c] == b[c]) | (a[c].isna() & b[c].isna())).all())] for c in a.columns}))
`;
    const python = spawnSync(pandasPython!, ['-c', compare, labels, out], { encoding: 'utf8' });
    assert.equal(python.status, 0, python.stderr);
    const got = JSON.parse(python.stdout) as Record<string, [string, string, boolean]>;
    for (const [name, [csv, ours, same]] of Object.entries(got)) {
      assert.equal(ours, csv, `${name}: read_csv gives ${csv}, the training set ${ours}`);
      assert.ok(same, `${name}: values differ`);
    }
  });

  it('writes date32 and date64 pass-through columns as dates: YYYY-MM-DD in CSV, DATE in parquet', async () => {
    // CSV had epoch milliseconds (1770595200000), and parquet a date64 as a bare int64 column.
    const columns: [string, arrow.DataType, unknown[]][] = [
      ['user_id', new arrow.Int64(), [1000n, 1001n]],
      [
        'event_timestamp',
        new arrow.TimestampMillisecond('UTC'),
        [Date.UTC(2026, 0, 5), Date.UTC(2026, 0, 5)],
      ],
      ['day', new arrow.DateDay(), [new Date(Date.UTC(2026, 1, 9)), null]],
      [
        'day_ms',
        new arrow.DateMillisecond(),
        [new Date(Date.UTC(1969, 11, 31)), new Date(Date.UTC(2026, 1, 9))],
      ],
    ];
    const schema = new arrow.Schema(columns.map(([n, type]) => new arrow.Field(n, type, true)));
    const children = columns.map(([, type, values]) => arrow.vectorFromArray(values, type).data[0]!);
    const data = arrow.makeData({ type: new arrow.Struct(schema.fields), length: 2, nullCount: 0, children });
    const labels = join(dir, 'dates.parquet');
    writeFileSync(labels, encodeTable(new arrow.Table([new arrow.RecordBatch(schema, data)])));
    const features = ['transaction_count_1h'];
    const csv = join(dir, 'dates-out.csv');
    await retrieveHistorical({ store, definitions, entities: labels, out: csv, progress: false, features });
    assert.deepEqual(
      readFileSync(csv, 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split(',').slice(2, 4).join(',')),
      ['day,day_ms', '2026-02-09,1969-12-31', ',2026-02-09'],
    );
    const { table } = await run(labels, { features });
    assert.equal(String(table.getChild('day')!.type), 'Date32<DAY>');
    assert.equal(String(table.getChild('day_ms')!.type), 'Date32<DAY>');
    assert.deepEqual(
      [0, 1].map((i) => table.getChild('day_ms')!.get(i)),
      [Date.UTC(1969, 11, 31), Date.UTC(2026, 1, 9)],
    );
  });

  it('names the row of a bad timestamp, a missing column and an unknown feature', async () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'user_id,event_timestamp\n1000,2026-01-02T00:00:00Z\n1001,yesterday\n');
    await assert.rejects(
      run(bad),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') && /row 2: bad event_timestamp "yesterday"/.test(e.message),
    );
    const missing = join(dir, 'missing.csv');
    writeFileSync(missing, 'user_id,ts\n1000,2026-01-02T00:00:00Z\n');
    await assert.rejects(
      run(missing),
      (e) => isTesseraError(e, 'INVALID_ARGUMENT') && /no column event_timestamp/.test(e.message),
    );
    const ok = labelsCsv([{ user: 1000, t: Date.UTC(2026, 0, 5) }]);
    await assert.rejects(
      run(ok, { features: ['user_transaction_features:nope'] }),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') &&
        /unknown feature user_transaction_features:nope/.test(e.message),
    );
  });

  it('refuses a labels column named like a feature of the output, or twice, naming it', async () => {
    // Such a column was overwritten by the feature in parquet output and repeated in CSV output.
    const t = new Date(Date.UTC(2026, 0, 5)).toISOString();
    const clash = join(dir, 'clash.csv');
    writeFileSync(clash, `user_id,event_timestamp,transaction_count_1h,label\n1000,${t},999,1\n`);
    for (const out of ['clash-out.parquet', 'clash-out.csv'])
      await assert.rejects(
        retrieveHistorical({ store, definitions, entities: clash, out: join(dir, out), progress: false }),
        (e) =>
          isTesseraError(e, 'INVALID_ARGUMENT') &&
          /has a column transaction_count_1h, the name of a feature the output adds; rename that column/.test(
            e.message,
          ),
      );
    const clashParquet = join(dir, 'clash.parquet');
    writeFileSync(
      clashParquet,
      writeParquet(
        [
          { name: 'user_id', type: 'int64' },
          { name: 'event_timestamp', type: 'timestamp_ms' },
          { name: 'avg_transaction_amount_7d', type: 'double' },
        ],
        {
          user_id: { values: [1000] },
          event_timestamp: { values: [Date.UTC(2026, 0, 5)] },
          avg_transaction_amount_7d: { values: [0.5] },
        },
        1,
      ),
    );
    await assert.rejects(
      run(clashParquet),
      (e) => isTesseraError(e, 'INVALID_ARGUMENT') && /column avg_transaction_amount_7d/.test(e.message),
    );
    const twice = join(dir, 'twice.csv');
    writeFileSync(twice, `user_id,event_timestamp,label,label\n1000,${t},1,0\n`);
    await assert.rejects(
      run(twice),
      (e) => isTesseraError(e, 'INVALID_ARGUMENT') && /more than one column named label/.test(e.message),
    );
    // Without that feature in the output, the column passes through.
    const { table } = await run(clash, { features: ['transaction_count_24h'] });
    assert.deepEqual(
      table.schema.fields.map((f) => f.name),
      ['user_id', 'event_timestamp', 'transaction_count_1h', 'label', 'transaction_count_24h'],
    );
    assert.equal(Number(table.getChild('transaction_count_1h')!.get(0)), 999);
  });

  /**
   * Point-in-time retrieval of `defs`' only view over `batch` (a raw-log part of its source) for
   * a label 1 ms after every `every`-th record; returns the labels and the output table.
   */
  async function retrieveAfter<R extends { user_id: number; event_timestamp: number }>(
    tag: string,
    defs: Definitions,
    records: readonly R[],
    batch: Parameters<typeof writeRawLog>[2],
    every: number,
  ) {
    const own = new LocalObjectStore(join(dir, tag));
    await writeRawLog(own, defs.sources[0]!, batch, 'part-0');
    const asks = records
      .filter((_, i) => i % every === 0)
      .map((r) => ({ user: r.user_id, t: r.event_timestamp + 1 }));
    const labels = join(dir, `${tag}-labels.csv`);
    writeFileSync(
      labels,
      `user_id,event_timestamp\n${asks.map((a) => `${a.user},${new Date(a.t).toISOString()}`).join('\n')}\n`,
    );
    const out = join(dir, `${tag}-out.parquet`);
    await retrieveHistorical({ store: own, definitions: defs, entities: labels, out, progress: false });
    return { asks, table: readParquet(new Uint8Array(readFileSync(out))) };
  }

  it('reads a bool column back as booleans: last, first, count_distinct and last_n over it', async () => {
    // A bool column's values once reached the engine as nulls (only numbers and strings were kept).
    const defs = parseDefinitions(`
version: 1
project: b
entities: [{ name: user, join_key: user_id, type: int64 }]
sources:
  - { name: cards, topic: cards, format: json, key_field: user_id, timestamp_field: event_timestamp,
      schema: { user_id: int64, event_timestamp: timestamp, card_present: bool } }
views:
  - name: card_features
    entity: user
    source: cards
    features:
      - { name: last_present, aggregation: last, column: card_present, window: 1h }
      - { name: first_present, aggregation: first, column: card_present, window: 1h }
      - { name: kinds, aggregation: count_distinct, column: card_present, window: 1h }
      - { name: recent, aggregation: last_n, column: card_present, window: 1h, n: 3 }
`);
    const source = defs.sources[0]!;
    const t0 = Date.UTC(2026, 0, 5);
    const cards = Array.from({ length: 400 }, (_, i) => ({
      user_id: 1 + (i % 7),
      event_timestamp: t0 + i * 60_000,
      // Present, absent, or missing, in an order no user repeats.
      card_present: i % 11 === 0 ? null : (i * 7919) % 5 < 2,
    }));
    const offsetOf = new Map(cards.map((c, i) => [c, i]));
    const batch = rawBatchFromRecords(source, cards, (c) => ({ partition: 0, offset: offsetOf.get(c)! }));
    const { asks, table } = await retrieveAfter('bools', defs, cards, batch, 5);
    assert.equal(String(table.getChild('last_present')!.type), 'Bool');
    asks.forEach((a, row) => {
      // Naive: the user's non-null values in [t - 1h, t), oldest first.
      const seen = cards
        .filter((c) => c.user_id === a.user && c.event_timestamp >= a.t - HOUR && c.event_timestamp < a.t)
        .map((c) => c.card_present)
        .filter((v) => v !== null);
      const got = {
        last: table.getChild('last_present')!.get(row),
        first: table.getChild('first_present')!.get(row),
        kinds: Number(table.getChild('kinds')!.get(row)),
        recent: listCell(table, 'recent', row),
      };
      const want = {
        last: seen.at(-1) ?? null,
        first: seen[0] ?? null,
        kinds: new Set(seen).size,
        recent: seen.slice(-3),
      };
      assert.deepEqual(got, want, `row ${row}: user ${a.user} at ${new Date(a.t).toISOString()}`);
    });
  });

  it('keeps int64 ids beyond 2^53 exact: distinct counts, last and last_n equal the online values', async () => {
    // Such ids are exact decimal strings online; read back as doubles, 2^53 and 2^53 + 1 were one.
    const defs = parseDefinitions(`
version: 1
project: i
entities: [{ name: user, join_key: user_id, type: int64 }]
sources:
  - { name: logins, topic: logins, format: json, key_field: user_id, timestamp_field: event_timestamp,
      schema: { user_id: int64, event_timestamp: timestamp, device: int64 } }
views:
  - name: device_features
    entity: user
    source: logins
    features:
      - { name: devices, aggregation: count_distinct, column: device, window: 1h }
      - { name: last_device, aggregation: last, column: device, window: 1h }
      - { name: recent, aggregation: last_n, column: device, window: 1h, n: 3 }
`);
    const source = defs.sources[0]!;
    const t0 = Date.UTC(2026, 0, 6);
    const devices: (number | string)[] = [
      7,
      '9007199254740992',
      '9007199254740993',
      '-9223372036854775808',
      42,
    ];
    const logins = Array.from({ length: 300 }, (_, i) => ({
      user_id: 1 + (i % 4),
      event_timestamp: t0 + i * 60_000,
      device: devices[(i * 7 + Math.floor(i / 4)) % devices.length]!,
    }));
    const offsetOf = new Map(logins.map((l, i) => [l, i]));
    const records = rawBatchFromRecords(source, logins, (l) => ({ partition: 0, offset: offsetOf.get(l)! }));
    // As the flusher writes the raw log: int64 decimal strings as exact 64-bit values.
    const batch = {
      ...records,
      columns: {
        ...records.columns,
        device: columnFromValues(
          { name: 'device', type: 'int64' },
          logins.map((l) => l.device),
        ),
      },
    };
    const { asks, table } = await retrieveAfter('int64-ids', defs, logins, batch, 7);
    let sawBoth = false;
    asks.forEach((a, row) => {
      const seen = logins
        .filter((l) => l.user_id === a.user && l.event_timestamp >= a.t - HOUR && l.event_timestamp < a.t)
        .map((l) => l.device);
      sawBoth ||= seen.includes('9007199254740992') && seen.includes('9007199254740993');
      const last = table.getChild('last_device')!.get(row) as bigint | null;
      assert.deepEqual(
        {
          devices: Number(table.getChild('devices')!.get(row)),
          last: last === null ? null : String(last),
          recent: listCell(table, 'recent', row)?.map(String),
        },
        {
          devices: new Set(seen).size,
          last: seen.length === 0 ? null : String(seen.at(-1)),
          recent: seen.slice(-3).map(String),
        },
        `row ${row}: user ${a.user} at ${new Date(a.t).toISOString()}`,
      );
    });
    assert.ok(sawBoth, 'some window holds both 2^53 and 2^53 + 1');
  });
});

describe("point-in-time retrieval and the ingestor's late marks", () => {
  let dir: string;
  let store: LocalObjectStore;
  const definitions = loadDefinitionsFile('definitions/fraud.yaml');
  const view = definitions.views[0]!;
  const events = generateFraudEvents({ events: 3000, seed: 11, users: 60 });
  // Every 25th event was refused as late by the ingestor: the raw log holds it, the marks name it.
  const late = new Set(events.filter((_, i) => i % 25 === 7));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-late-'));
    store = new LocalObjectStore(join(dir, 'store'));
    const position = (r: FraudEvent) => ({ partition: r.partition, offset: r.offset });
    await writeRawLog(store, view.source, rawBatchFromRecords(view.source, events, position), 'part-0');
    const marks = [...late].map((e) => ({
      sourceTopic: 'transactions',
      partition: e.partition,
      offset: e.offset,
      ts: e.event_timestamp,
    }));
    // Marks that name the position of an event online applied, at another time: a topic made
    // again (or a source moved to another topic) restarts its offsets. They must leave it in.
    for (const e of events.filter((x, i) => i % 25 === 11 && !late.has(x)))
      marks.push({
        sourceTopic: 'transactions',
        partition: e.partition,
        offset: e.offset,
        ts: e.event_timestamp - 86_400_000,
      });
    // Split over two flush versions, as a flusher writes them.
    const half = Math.floor(marks.length / 2);
    for (const [version, part] of [
      ['v_20260301T000000', marks.slice(0, half)],
      ['v_20260301T000100', marks.slice(half)],
    ] as const)
      for (const file of lateMarkFiles(view.name, version, part)) await store.put(file.key, file.body);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('leaves out the events refused as late by default, as online did, and counts them with includeLate', async () => {
    // At the late events' users' transactions (their own times) and 17 minutes after them.
    const users = new Set([...late].map((e) => e.user_id));
    const labels = events
      .filter((e, i) => users.has(e.user_id) && i % 4 === 0)
      .flatMap((e) => [
        { user: e.user_id, t: e.event_timestamp },
        { user: e.user_id, t: e.event_timestamp + 17 * 60_000 },
      ]);
    const entities = join(dir, 'labels.csv');
    writeFileSync(
      entities,
      `user_id,event_timestamp\n${labels.map((r) => `${r.user},${new Date(r.t).toISOString()}`).join('\n')}\n`,
    );
    const online = events.filter((e) => !late.has(e));
    let apart = 0;
    for (const includeLate of [false, true]) {
      const out = join(dir, `out-${includeLate}.parquet`);
      const summary = await retrieveHistorical({
        store,
        definitions,
        entities,
        out,
        progress: false,
        shards: 3,
        ...(includeLate ? { includeLate } : {}),
      });
      const table = readParquet(new Uint8Array(readFileSync(out)));
      const seen = includeLate ? events : online;
      const differences: string[] = [];
      labels.forEach(({ user, t }, row) => {
        for (const f of view.features) {
          const cell = table.getChild(f.name)!.get(row) as number | bigint | null;
          const got = typeof cell === 'bigint' ? Number(cell) : cell;
          const want = naiveFraudValue(seen, user, f, t);
          if (!sameValue(f.aggregation, got, want))
            differences.push(`user ${user} at ${new Date(t).toISOString()}: ${f.name} ${got}, naive ${want}`);
          if (!includeLate && !sameValue(f.aggregation, got, naiveFraudValue(events, user, f, t))) apart++;
        }
      });
      assert.deepEqual(differences.slice(0, 5), [], `includeLate ${includeLate}`);
      if (includeLate) assert.equal(summary.eventsLate, 0);
      else
        assert.ok(
          summary.eventsLate > 0 && summary.eventsLate <= late.size,
          `eventsLate ${summary.eventsLate}`,
        );
    }
    // Else the check above could not tell the two answers apart.
    assert.ok(apart > 50, `only ${apart} values differ with and without the late events`);
  });
});
