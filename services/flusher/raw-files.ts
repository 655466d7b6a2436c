// The raw event log: every valid source record, as parquet files partitioned by event day, named
// by the Kafka offsets inside (`raw/<source>/date=YYYY-MM-DD/part-p<partition>-<first>-<last>.parquet`)
// so that redoing a flush rewrites the very same objects. Point-in-time retrieval and backfills
// read these files; their columns are rawEventColumns(source).
import type { Decoder } from '../../shared/codecs/decode.ts';
import type { SourceDef } from '../../shared/definitions/schema.ts';
import { rawEventColumns, SOURCE_OFFSET, SOURCE_PARTITION } from '../../shared/offline/feature-columns.ts';
import { type ColumnInput, type WriteOptions, writeParquet } from '../../shared/offline/parquet.ts';
import { rawObjectKey, utcDay } from '../../shared/offline/raw-log.ts';
import { columnFromValues } from './columns.ts';
import type { BufferedRecord } from './record-buffer.ts';

export interface RawFile {
  key: string;
  body: Uint8Array;
  rows: number;
  partition: number;
  firstOffset: number;
  lastOffset: number;
}

export interface RawLogResult {
  files: RawFile[];
  /** Records that do not decode (they are in the DLQ, not in the log), by reason. */
  invalid: Map<string, number>;
}

interface DecodedEvent {
  offset: number;
  ts: number;
  record: Record<string, unknown>;
}

/** Object key of a raw file. */
export function rawFileKey(
  source: string,
  day: string,
  partition: number,
  first: number,
  last: number,
): string {
  return rawObjectKey(source, day, `part-p${partition}-${first}-${last}`);
}

export async function buildRawFiles(
  source: SourceDef,
  decoder: Decoder,
  records: ReadonlyMap<number, readonly BufferedRecord[]>,
  options: WriteOptions,
): Promise<RawLogResult> {
  const files: RawFile[] = [];
  const invalid = new Map<string, number>();
  const specs = rawEventColumns(source);
  for (const [partition, list] of [...records].sort((a, b) => a[0] - b[0])) {
    const decoded = await decoder.decodeBatch(list.map((r) => ({ key: r.key, value: r.value })));
    const byDay = new Map<string, DecodedEvent[]>();
    decoded.forEach((d, i) => {
      if (!d.ok) {
        invalid.set(d.reason, (invalid.get(d.reason) ?? 0) + 1);
        return;
      }
      const day = utcDay(d.ts);
      let events = byDay.get(day);
      if (!events) {
        events = [];
        byDay.set(day, events);
      }
      events.push({ offset: list[i]!.offset, ts: d.ts, record: d.record });
    });
    for (const [day, events] of [...byDay].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const columns: Record<string, ColumnInput> = {};
      for (const spec of specs) {
        let values: unknown[];
        if (spec.name === SOURCE_PARTITION) values = events.map(() => partition);
        else if (spec.name === SOURCE_OFFSET) values = events.map((e) => e.offset);
        else if (spec.name === source.timestampField) values = events.map((e) => e.ts);
        else values = events.map((e) => e.record[spec.name] ?? null);
        columns[spec.name] = columnFromValues(spec, values);
      }
      const first = events[0]!.offset;
      const last = events[events.length - 1]!.offset;
      files.push({
        key: rawFileKey(source.name, day, partition, first, last),
        body: writeParquet(specs, columns, events.length, options),
        rows: events.length,
        partition,
        firstOffset: first,
        lastOffset: last,
      });
    }
  }
  return { files, invalid };
}
