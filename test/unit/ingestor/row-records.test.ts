// The ingestor's packing of training rows into `features.rows` records, read back with the
// flusher's parser: every row and mark comes back once, in order per source partition, under the
// right view's header, and no record passes the bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRows, rowsInRecord } from '../../../services/flusher/feature-rows.ts';
import type { TrainingRow } from '../../../services/ingestor/apply-batch.ts';
import { createPushEncoder } from '../../../services/ingestor/push-json.ts';
import { RowRecords } from '../../../services/ingestor/row-records.ts';

const names = new Map([
  ['a', ['count_1h', 'avg_7d']],
  ['b', ['last_merchant']],
]);
const encoder = createPushEncoder(names, 'h');

/** Rows of views a and b interleaved over three source partitions, with a mark every seventh offset. */
function feed(records: RowRecords, n: number): { view: string; partition: number; offset: number }[] {
  const sent = [];
  for (let i = 0; i < n; i++) {
    const partition = i % 3;
    const offset = 100 + Math.floor(i / 3);
    if (i % 7 === 6) {
      records.mark(partition, encoder.noRow('tx', 'a', partition, offset, 'late'));
      sent.push({ view: 'a', partition, offset });
      continue;
    }
    const view = i % 2 === 0 ? 'a' : 'b';
    const row: TrainingRow = {
      view,
      entity: `e${i}`,
      ts: 1_000 + i,
      partition,
      offset,
      values: view === 'a' ? [i, i / 3] : [`m${i}`],
    };
    records.row(row, encoder.row(row));
    sent.push({ view, partition, offset });
  }
  return sent;
}

test('rows of two views and marks come back once each, in order per partition, under their own header', () => {
  const records = new RowRecords('tx', encoder, 2_000);
  const sent = feed(records, 500);
  const messages = records.take();
  assert.ok(
    messages.length > 3,
    `several records per partition at a 2,000-character bound (${messages.length})`,
  );
  const back: { view: string; partition: number; offset: number }[] = [];
  for (const m of messages) {
    const value = Buffer.from(m.value as string);
    assert.ok(value.length <= 2_000, `a record over the bound: ${value.length}`);
    const parsed = parseRows(value);
    assert.equal(
      rowsInRecord(value),
      parsed.length,
      'the buffer bound counts the rows and marks, not the headers',
    );
    for (const p of parsed) {
      assert.ok(p.ok, JSON.stringify(p));
      const r = p.row ?? p.noRow;
      assert.equal(m.key, `tx/${r.partition}`);
      if (p.row) {
        const i = Number(p.row.entity.slice(1));
        assert.equal(p.row.view, i % 2 === 0 ? 'a' : 'b', `entity e${i} under the wrong header`);
        assert.equal(p.row.ts, 1_000 + i);
        assert.deepEqual(
          p.row.features,
          p.row.view === 'a' ? { count_1h: i, avg_7d: i / 3 } : { last_merchant: `m${i}` },
        );
      }
      back.push({ view: r.view, partition: r.partition, offset: r.offset });
    }
  }
  const byPartition = (list: typeof sent) =>
    [0, 1, 2].map((p) => list.filter((x) => x.partition === p).map((x) => `${x.view}@${x.offset}`));
  assert.deepEqual(byPartition(back), byPartition(sent));
  assert.deepEqual(records.take(), [], 'taken records are not sent twice');
});

test('the bound is in UTF-8 bytes: multi-byte values near it and a line longer than it, which goes alone', () => {
  const records = new RowRecords('tx', encoder, 600);
  const sent: string[] = [];
  for (let i = 0; i < 200; i++) {
    // Three-byte characters: their UTF-16 length is a third of their bytes.
    const merchant = i === 77 ? '€'.repeat(400) : `€${'ü'.repeat(i % 40)}${i}`;
    const row: TrainingRow = {
      view: 'b',
      entity: `e${i}`,
      ts: 1_000 + i,
      partition: 0,
      offset: i,
      values: [merchant],
    };
    records.row(row, encoder.row(row));
    sent.push(merchant);
  }
  const back: string[] = [];
  for (const m of records.take()) {
    const value = Buffer.from(m.value as string);
    const rows = parseRows(value);
    if (rows.some((p) => p.ok && p.row?.entity === 'e77'))
      assert.equal(rows.length, 1, 'the 1,200-byte row is alone in its record');
    else assert.ok(value.length <= 600, `a record over the bound: ${value.length} bytes`);
    for (const p of rows) {
      assert.ok(p.ok && p.row, JSON.stringify(p));
      back.push(p.row.features.last_merchant as string);
    }
  }
  assert.deepEqual(back, sent);
});
