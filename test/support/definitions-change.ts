// Integration-test support for offline versions flushed under two definitions: the reference
// definitions, then the same with transaction_count_1h turned into a sum of amounts (its column
// int64 -> double) and max_transaction_amount_1h added. Each flush writes one features.rows record
// straight through runFlush (no Kafka): one training row per offset, user 100 + offset, at
// 2026-01-05 10:<offset>, each feature given a value of its column's type.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { runFlush } from '../../services/flusher/flush.ts';
import type { FlusherState } from '../../services/flusher/flusher-state.ts';
import { RecordBuffer } from '../../services/flusher/record-buffer.ts';
import { parseDefinitions } from '../../shared/definitions/load.ts';
import type { Definitions } from '../../shared/definitions/schema.ts';
import { featureColumnType } from '../../shared/offline/feature-columns.ts';
import type { ObjectStore } from '../../shared/offline/object-store.ts';

const DEFINITIONS = 'definitions/fraud.yaml';
const COUNT_1H = `      - name: transaction_count_1h
        aggregation: count
        window: 1h`;

/** The reference definitions (`before`) and the changed ones (`after`). */
export function changedDefinitions(): { before: Definitions; after: Definitions } {
  const original = readFileSync(DEFINITIONS, 'utf8');
  assert.ok(original.includes(COUNT_1H), `${DEFINITIONS} changed: update this test's edit of it`);
  const changed = original
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
    );
  return { before: parseDefinitions(original, DEFINITIONS), after: parseDefinitions(changed, DEFINITIONS) };
}

/** The event time of the row of `offset`. */
export function rowTime(offset: number): number {
  return Date.UTC(2026, 0, 5, 10, offset);
}

/** One features.rows record: a training row per offset, int64 features offset + 1, the others offset + 0.5. */
export function rowsRecord(definitions: Definitions, offsets: readonly number[]): Buffer {
  const v = definitions.views[0]!;
  return Buffer.from(
    offsets
      .map((offset) =>
        JSON.stringify({
          view: v.name,
          entity: String(100 + offset),
          event_timestamp: new Date(rowTime(offset)).toISOString(),
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

/** Flushes the rows of `offsets` (one record at Kafka offset `record`) as `version` of the first view. */
export async function flushRows(
  store: ObjectStore,
  state: FlusherState,
  definitions: Definitions,
  version: string,
  record: number,
  offsets: readonly number[],
): Promise<void> {
  const buffer = new RecordBuffer(() => state.positions);
  buffer.append('features.rows', 0, [
    { offset: record, key: null, value: rowsRecord(definitions, offsets), rows: offsets.length },
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
  assert.equal(
    report.rows.get(definitions.views[0]!.name),
    offsets.length,
    JSON.stringify([...report.invalid]),
  );
}
