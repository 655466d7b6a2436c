// Reading the entity dataframe: times in every accepted form to the exact millisecond (and below),
// quoted CSV cells, pass-through columns, and errors that name the row.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { isTesseraError } from '../../../shared/errors.ts';
import { encodeTable, writeParquet } from '../../../shared/offline/parquet.ts';
import { parseTime, readLabels, splitCsv } from '../../../shared/pit/labels.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-labels-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('entity dataframe', () => {
  it('parses ISO-8601 and epoch-ms times exactly, a missing zone as UTC', () => {
    const ms = Date.UTC(2026, 0, 1, 0, 33, 34, 848);
    assert.equal(parseTime('2026-01-01T00:33:34.848Z', 'f', 0), ms);
    assert.equal(parseTime('2026-01-01 00:33:34.848', 'f', 0), ms);
    assert.equal(parseTime('2026-01-01T02:33:34.848+02:00', 'f', 0), ms);
    assert.equal(parseTime(String(ms), 'f', 0), ms);
    assert.equal(parseTime('2026-01-01T00:33:34.848500Z', 'f', 0), ms + 0.5);
    assert.equal(parseTime('2026-01-01', 'f', 0), Date.UTC(2026, 0, 1));
    assert.throws(
      () => parseTime('01/02/2026', 'labels.csv', 4),
      /labels\.csv row 5: bad event_timestamp "01\/02\/2026"/,
    );
    // Date.parse rolled these over to March 2 and March 1; an epoch in nanoseconds was read as ms.
    assert.throws(() => parseTime('2026-02-30T10:00:00Z', 'f', 0), /2026-02-30 is not a day of the calendar/);
    assert.throws(() => parseTime('2026-02-29', 'f', 0), /not a day of the calendar/);
    assert.equal(parseTime('2028-02-29', 'f', 0), Date.UTC(2028, 1, 29));
    assert.throws(() => parseTime('2026-13-01', 'f', 0), /not a day of the calendar/);
    assert.throws(() => parseTime(String(ms * 1_000_000), 'f', 0), /microseconds or nanoseconds\?/);
  });

  it('refuses an integer time in epoch seconds or microseconds, naming the row and the fix', () => {
    // Read as milliseconds they were January 1970 and the year 58,000: every window empty, a
    // training set of zeros without a word.
    const ms = Date.UTC(2026, 1, 1);
    assert.throws(
      () => parseTime(String(ms / 1000), 'labels.csv', 0),
      /labels\.csv row 1: bad event_timestamp "1769904000": .* but 2026-02-01T00:00:00\.000Z in seconds; multiply epoch seconds by 1000/,
    );
    assert.throws(
      () => parseTime(String(ms * 1000), 'labels.csv', 2),
      /row 3: .* but 2026-02-01T00:00:00\.000Z in microseconds; divide epoch microseconds by 1000/,
    );
    assert.throws(() => parseTime('-631152000', 'f', 0), /in seconds/);
    // Milliseconds of any time from 1970-01-08 on, and small test epochs, are still read as such.
    for (const t of [ms, 0, 1000, 86_400_000, -86_400_000, 600_000_000, Date.UTC(2100, 0, 1)])
      assert.equal(parseTime(String(t), 'f', 0), t);
  });

  it('says which --entities file is not parquet', async () => {
    const path = join(dir, 'not.parquet');
    writeFileSync(path, 'user_id,event_timestamp\n');
    await assert.rejects(
      readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') &&
        e.message.startsWith(`--entities ${path} is not a readable parquet file`),
    );
  });

  it('names the --entities file that cannot be read once opened (a directory), as for parquet', async () => {
    // A directory opens, then fails on read: a bare "EISDIR: illegal operation on a directory,
    // read" naming no file, exit 1.
    const path = join(dir, 'a-dir.csv');
    mkdirSync(path);
    await assert.rejects(
      readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') &&
        e.message.startsWith(`cannot read --entities ${path}: `) &&
        /EISDIR/.test(e.message),
    );
  });

  it('refuses a parquet column name used twice, a join key or event_timestamp too, as CSV does', async () => {
    // The second user_id or event_timestamp column was dropped without a word (only the first of
    // a name is read); CSV refused it.
    const T = Date.UTC(2026, 0, 2);
    const write = (name: string, columns: [string, arrow.DataType, unknown[]][]) => {
      const path = join(dir, name);
      const schema = new arrow.Schema(columns.map(([n, type]) => new arrow.Field(n, type, true)));
      const children = columns.map(([, type, values]) => arrow.vectorFromArray(values, type).data[0]!);
      const data = arrow.makeData({
        type: new arrow.Struct(schema.fields),
        length: 1,
        nullCount: 0,
        children,
      });
      writeFileSync(path, encodeTable(new arrow.Table([new arrow.RecordBatch(schema, data)])));
      return path;
    };
    const ts: [string, arrow.DataType, unknown[]] = [
      'event_timestamp',
      new arrow.TimestampMillisecond('UTC'),
      [T],
    ];
    const key: [string, arrow.DataType, unknown[]] = ['user_id', new arrow.Int64(), [7n]];
    const label: [string, arrow.DataType, unknown[]] = ['label', new arrow.Float64(), [1]];
    const otherKey: [string, arrow.DataType, unknown[]] = ['user_id', new arrow.Int64(), [8n]];
    for (const [file, columns, twice] of [
      ['key-twice.parquet', [key, ts, otherKey], 'user_id'],
      ['ts-twice.parquet', [key, ts, label, ts], 'event_timestamp'],
      ['label-twice.parquet', [key, ts, label, label], 'label'],
    ] as const) {
      const path = write(file, [...columns]);
      await assert.rejects(
        readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]),
        (e) =>
          isTesseraError(e, 'INVALID_ARGUMENT') &&
          e.message ===
            `${path} has more than one column named ${twice}; rename the others (the output has one column per name)`,
        file,
      );
    }
    const once = await readLabels(write('once.parquet', [key, ts, label]), [
      { joinKey: 'user_id', keyType: 'int64' },
    ]);
    assert.deepEqual(once.keyColumns[0]!.keys, [7]);
  });

  it('refuses a quoted cell that goes on to the next line, naming its row and line', async () => {
    // The row was taken cut short (note "a") and the error came on the next line, as a field count.
    const path = join(dir, 'spans.csv');
    writeFileSync(path, 'user_id,event_timestamp,note\n\n5,2026-01-02T00:00:00Z,"a\nb"\n');
    await assert.rejects(
      readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') &&
        /spans\.csv row 1 \(line 3\): a quoted cell goes on to the next line/.test(e.message),
    );
  });

  it('splits quoted CSV cells', () => {
    assert.deepEqual(splitCsv('1,"a, b","say ""hi""",'), ['1', 'a, b', 'say "hi"', '']);
  });

  it('reads CSV with pass-through columns and names a bad key row', async () => {
    const path = join(dir, 'l.csv');
    writeFileSync(path, 'note,user_id,event_timestamp\n"x, y",5,2026-01-02T00:00:00Z\n,6,1767312000000\n');
    const labels = await readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]);
    assert.deepEqual(labels.keyColumns[0]!.keys, [5, 6]);
    assert.deepEqual(Array.from(labels.ts), [Date.UTC(2026, 0, 2), 1767312000000]);
    assert.deepEqual(labels.extra, [{ kind: 'text', name: 'note', cells: ['x, y', null] }]);
    writeFileSync(path, 'user_id,event_timestamp\n5,2026-01-02T00:00:00Z\nfive,2026-01-02T00:00:00Z\n');
    await assert.rejects(
      readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') && /row 2: user_id "five" is not an int64 key/.test(e.message),
    );
  });

  it('takes a string key as written, spaces and all; pads an int64 key may have are dropped', async () => {
    // Trimmed, a label for entity " u1 " was answered with the events of "u1" (found by an audit).
    const path = join(dir, 'spaces.csv');
    writeFileSync(path, 'merchant,event_timestamp\n" u1 ",2026-01-02T00:00:00Z\nu1,2026-01-02T00:00:00Z\n');
    const labels = await readLabels(path, [{ joinKey: 'merchant', keyType: 'string' }]);
    assert.deepEqual(labels.keyColumns[0]!.keys, [' u1 ', 'u1']);
    writeFileSync(path, 'user_id,event_timestamp\n 5 ,2026-01-02T00:00:00Z\n');
    const ints = await readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]);
    assert.deepEqual(ints.keyColumns[0]!.keys, [5]);
  });

  it('reads parquet keys and timestamps, keeping other columns as arrow vectors', async () => {
    const path = join(dir, 'l.parquet');
    writeFileSync(
      path,
      writeParquet(
        [
          { name: 'user_id', type: 'int64' },
          { name: 'event_timestamp', type: 'timestamp_ms' },
          { name: 'label', type: 'double' },
        ],
        {
          user_id: { values: [2 ** 40, 3] },
          event_timestamp: { values: [1000, 2000] },
          label: { values: [0.5, null] },
        },
        2,
      ),
    );
    const labels = await readLabels(path, [{ joinKey: 'user_id', keyType: 'int64' }]);
    assert.deepEqual(labels.keyColumns[0]!.keys, [2 ** 40, 3]);
    assert.deepEqual(Array.from(labels.ts), [1000, 2000]);
    assert.equal(labels.extra.length, 1);
    assert.equal(labels.extra[0]!.kind, 'arrow');
  });
});
