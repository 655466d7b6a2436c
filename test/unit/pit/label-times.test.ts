// Label times finer than a millisecond (pandas writes timestamp[ns], ISO text can carry 9 digits)
// keep their exact whole millisecond. Nanoseconds were multiplied by 1e-6, which lands just below
// the true millisecond for about one time in six: the training set's event_timestamp (floored to
// ms) came out 1 ms early. Expected values here come from BigInt arithmetic on the same integers.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import { LocalObjectStore } from '../../../shared/offline/object-store.ts';
import { encodeTable, readParquet } from '../../../shared/offline/parquet.ts';
import { numericColumn, rawBatchFromRecords, writeRawLog } from '../../../shared/offline/raw-log.ts';
import { parseTime } from '../../../shared/pit/labels.ts';
import { retrieveHistorical } from '../../../shared/pit/retrieve.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-label-times-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** floor(a / b) for BigInts (BigInt division truncates towards zero). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/**
 * Times in `perMs` units per ms: whole milliseconds from 2026 (the old arithmetic floored about
 * one in six of them 1 ms low), remainders next to 0 and to a whole ms, and times before 1970.
 */
function sampleTimes(perMs: bigint): bigint[] {
  const out: bigint[] = [];
  const t0 = 1_770_724_800_001n;
  for (let k = 0n; k < 600n; k++) out.push((t0 + k) * perMs);
  for (const ms of [t0, 1_767_225_600_000n, 0n, -1n, -86_400_000n, -14_182_940_000n])
    for (const rest of [0n, 1n, perMs / 2n, perMs - 1n]) out.push(ms * perMs + rest);
  out.push(-1n, -perMs, -perMs - 1n, 1n);
  return out;
}

function timestampTable(type: arrow.Timestamp, values: bigint[]): arrow.Table {
  const data = arrow.makeData({ type, length: values.length, data: BigInt64Array.from(values) });
  return new arrow.Table({
    user_id: arrow.vectorFromArray(
      values.map((_, i) => BigInt(i + 1)),
      new arrow.Int64(),
    ),
    event_timestamp: arrow.makeVector(data),
  });
}

const units = [
  { name: 'nanoseconds', perMs: 1_000_000n, type: () => new arrow.TimestampNanosecond('UTC') },
  { name: 'microseconds', perMs: 1_000n, type: () => new arrow.TimestampMicrosecond('UTC') },
];

describe('label times below the millisecond', () => {
  for (const { name, perMs, type } of units) {
    it(`reads ${name} to the exact millisecond, with a fraction only when there is one (before 1970 too)`, () => {
      const times = sampleTimes(perMs);
      const ts = numericColumn(timestampTable(type(), times), 'event_timestamp');
      const wrong: string[] = [];
      times.forEach((t, i) => {
        const whole = Number(floorDiv(t, perMs));
        const hasFraction = t % perMs !== 0n;
        const got = ts[i]!;
        if (Math.floor(got) !== whole || got > whole !== hasFraction)
          wrong.push(`${t} ${name}: read ${got}, whole ms ${whole}${hasFraction ? ' and a fraction' : ''}`);
      });
      assert.deepEqual(wrong.slice(0, 5), []);
    });
  }

  it('keeps a 9-digit ISO fraction inside its millisecond', () => {
    const ms = Date.UTC(2026, 1, 10, 12);
    // 0.999999 ms and 1.000000001 ms: as doubles they round onto ms + 1.
    const late = parseTime('2026-02-10T12:00:00.000999999Z', 'f', 0);
    assert.ok(late > ms && late < ms + 1, String(late));
    const early = parseTime('2026-02-10T12:00:00.001000001Z', 'f', 0);
    assert.ok(early > ms + 1 && early < ms + 2, String(early));
    const before1970 = parseTime('1969-12-31T23:59:59.999999999Z', 'f', 0);
    assert.ok(before1970 > -1 && before1970 < 0, String(before1970));
    assert.equal(parseTime('2026-02-10T12:00:00.001000000Z', 'f', 0), ms + 1);
  });

  it('writes event_timestamp floored to the true millisecond, in parquet and CSV', async () => {
    const times = sampleTimes(1_000_000n);
    const labels = join(dir, 'labels-ns.parquet');
    writeFileSync(labels, encodeTable(timestampTable(new arrow.TimestampNanosecond('UTC'), times)));
    const want = times.map((t) => Number(floorDiv(t, 1_000_000n)));
    const definitions = loadDefinitionsFile('definitions/fraud.yaml');
    // A raw log of one event (a store without any is refused): every label sees no event in range.
    const store = new LocalObjectStore(join(dir, 'store'));
    const source = definitions.views[0]!.source;
    const event = { user_id: 1, event_timestamp: Date.UTC(2000, 0, 1), amount: 1, merchant_id: 'm' };
    await writeRawLog(
      store,
      source,
      rawBatchFromRecords(source, [event], () => ({ partition: 0, offset: 0 })),
      'one',
    );
    const request = { store, definitions, entities: labels, progress: false };

    const parquetOut = join(dir, 'out.parquet');
    await retrieveHistorical({ ...request, out: parquetOut });
    const table = readParquet(new Uint8Array(readFileSync(parquetOut)));
    const got = Array.from(table.getChild('event_timestamp')!, (v) => Number(v));
    assert.deepEqual(got, want);

    const csvOut = join(dir, 'out.csv');
    await retrieveHistorical({ ...request, out: csvOut });
    const cells = readFileSync(csvOut, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',')[1]);
    assert.deepEqual(
      cells,
      want.map((ms) => new Date(ms).toISOString()),
    );
  });
});
