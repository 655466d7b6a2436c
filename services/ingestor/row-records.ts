// The `features.rows` records of one source topic, packed as the rows come (docs/ingestor.md,
// "The rows format"): per source partition, JSON Lines of up to a byte bound, keyed
// `<source topic>/<partition>` so one source partition's rows stay in order in one rows
// partition. A record's rows follow a header line (the view, the feature names, ...), written at
// the record's start and again when the view changes; no-row marks stand alone.
import type { Message } from 'kafkajs';
import type { TrainingRow } from './apply-batch.ts';
import type { PushEncoder } from './push-json.ts';

interface OpenRecord {
  lines: string[];
  /** UTF-8 bytes of the lines and their separators. */
  bytes: number;
  /** The view whose header the next row line follows (null: no header yet). */
  view: string | null;
}

export class RowRecords {
  private readonly open = new Map<number, OpenRecord>();
  /** Header lines by partition, then view, built once (no key string to build per row). */
  private readonly headers = new Map<number, Map<string, string>>();
  private closed: Message[] = [];

  constructor(
    private readonly sourceTopic: string,
    private readonly encoder: PushEncoder,
    /** A record closes before it would pass this many bytes (ROWS_RECORD_BYTES); a longer line goes alone. */
    private readonly maxBytes: number,
  ) {}

  /** The header line the rows of `view` from `partition` follow. */
  header(partition: number, view: string): string {
    let byView = this.headers.get(partition);
    if (byView === undefined) {
      byView = new Map();
      this.headers.set(partition, byView);
    }
    let header = byView.get(view);
    if (header === undefined) {
      header = this.encoder.rowsHeader(this.sourceTopic, view, partition);
      byView.set(view, header);
    }
    return header;
  }

  /** Appends a row line (encoded by `encoder.row`) of `row.view` from `row.partition`. */
  row(row: TrainingRow, line: string): void {
    this.append(row.partition, line, row.view);
  }

  /** Appends a no-row mark (encoded by `encoder.noRow`): it needs no header and keeps the current one. */
  mark(partition: number, line: string): void {
    this.append(partition, line, null);
  }

  /** The records so far, the open ones closed: what the caller sends, in order per partition. */
  take(): Message[] {
    for (const [partition, record] of this.open) this.close(partition, record);
    this.open.clear();
    const out = this.closed;
    this.closed = [];
    return out;
  }

  private append(partition: number, line: string, view: string | null): void {
    let record = this.open.get(partition);
    let header = view !== null && record?.view !== view ? this.header(partition, view) : null;
    // In UTF-8 bytes: names and values may be any text, up to three bytes per UTF-16 unit.
    const lineBytes = Buffer.byteLength(line);
    if (
      record &&
      record.bytes + lineBytes + 1 + (header === null ? 0 : Buffer.byteLength(header) + 1) > this.maxBytes
    ) {
      this.close(partition, record);
      record = undefined;
    }
    if (!record) {
      record = { lines: [], bytes: 0, view: null };
      this.open.set(partition, record);
      if (view !== null) header = this.header(partition, view);
    }
    if (header !== null) {
      record.lines.push(header);
      record.bytes += Buffer.byteLength(header) + 1;
      record.view = view;
    }
    record.lines.push(line);
    record.bytes += lineBytes + 1;
  }

  private close(partition: number, record: OpenRecord): void {
    this.closed.push({ key: `${this.sourceTopic}/${partition}`, value: record.lines.join('\n') });
  }
}
