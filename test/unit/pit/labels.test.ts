// Reading the entity dataframe: times in every accepted form to the exact millisecond (and below),
// quoted CSV cells, pass-through columns, and errors that name the row.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTesseraError } from '../../../shared/errors.ts';
import { writeParquet } from '../../../shared/offline/parquet.ts';
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

  it('splits quoted CSV cells', () => {
    assert.deepEqual(splitCsv('1,"a, b","say ""hi""",'), ['1', 'a, b', 'say "hi"', '']);
  });

  it('reads CSV with pass-through columns and names a bad key row', async () => {
    const path = join(dir, 'l.csv');
    writeFileSync(path, 'note,user_id,event_timestamp\n"x, y",5,2026-01-02T00:00:00Z\n,6,1767312000000\n');
    const labels = await readLabels(path, 'user_id', 'int64');
    assert.deepEqual(labels.keys, [5, 6]);
    assert.deepEqual(Array.from(labels.ts), [Date.UTC(2026, 0, 2), 1767312000000]);
    assert.deepEqual(labels.extra, [{ kind: 'text', name: 'note', cells: ['x, y', null] }]);
    writeFileSync(path, 'user_id,event_timestamp\n5,2026-01-02T00:00:00Z\nfive,2026-01-02T00:00:00Z\n');
    await assert.rejects(
      readLabels(path, 'user_id', 'int64'),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') && /row 2: user_id "five" is not an int64 key/.test(e.message),
    );
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
    const labels = await readLabels(path, 'user_id', 'int64');
    assert.deepEqual(labels.keys, [2 ** 40, 3]);
    assert.deepEqual(Array.from(labels.ts), [1000, 2000]);
    assert.equal(labels.extra.length, 1);
    assert.equal(labels.extra[0]!.kind, 'arrow');
  });
});
