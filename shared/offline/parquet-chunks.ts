// Parquet in and out a row group at a time (the point-in-time CLI's entity dataframe and training
// set), so that parquet-wasm's memory (which grows to its largest use and never shrinks) holds one
// row group rather than a whole table: decoded whole, 3M label rows took ~600 MB of it, and
// encoded whole the training set took as much again. Same bytes as parquet.ts gives.
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import * as arrow from 'apache-arrow';
import * as wasm from 'parquet-wasm';
import { TesseraError } from '../errors.ts';
import { encodeTable, DEFAULT_ROW_GROUP_ROWS as ROW_GROUP_ROWS, readParquet } from './parquet.ts';

/** parquet-wasm's read batch: whole-file reads cut the rows into batches of this many. */
const READ_BATCH_ROWS = 1024;

/**
 * The table readParquet(bytes) gives, batch for batch, decoded one row group at a time. A whole
 * file is read in batches of 1024 rows that run across row groups: read per group, the batches
 * match only when every group but the last holds a multiple of 1024 rows (pandas', pyarrow's and
 * Tessera's writers do). Any other file is read whole, so the batches (and the bytes of an output
 * built from them) never depend on how the file was read.
 */
export async function readParquetByRowGroup(bytes: Uint8Array): Promise<arrow.Table> {
  let file: wasm.ParquetFile;
  let groups: number[];
  try {
    // Read from a Blob: each row group's byte range goes into wasm memory, not the whole file.
    file = await wasm.ParquetFile.fromFile(new Blob([bytes]));
    groups = file
      .metadata()
      .rowGroups()
      .map((g) => g.numRows());
  } catch {
    return readParquet(bytes); // not parquet: its error names what is wrong
  }
  try {
    if (groups.length < 2 || groups.slice(0, -1).some((rows) => rows % READ_BATCH_ROWS !== 0))
      return readParquet(bytes);
    let schema: arrow.Schema | undefined;
    const batches: arrow.RecordBatch[] = [];
    for (let g = 0; g < groups.length; g++) {
      let part: arrow.Table;
      try {
        part = arrow.tableFromIPC((await file.read({ rowGroups: [g] })).intoIPCStream());
      } catch (error) {
        throw new TesseraError('INVALID_ARGUMENT', `not a readable parquet file: ${String(error)}`, {
          cause: error,
        });
      }
      schema ??= part.schema;
      batches.push(...part.batches);
    }
    return new arrow.Table(schema as arrow.Schema, batches);
  } finally {
    file.free();
  }
}

/**
 * Writes `table` to `path` as encodeTable(table) would (zstd, 128k-row groups), feeding the encoder
 * one record batch at a time and the file its bytes as each row group is done. The encoder gets
 * the same rows in the same write calls as from a whole-table encode (below), so the bytes are
 * the same.
 * Stops with `signal`'s reason between batches.
 */
export async function writeParquetByBatch(
  path: string,
  table: arrow.Table,
  signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted();
  // No row: nothing for the stream to take the schema from; a schema-only file, as before.
  if (table.numRows === 0) return writeFile(path, encodeTable(table));
  const properties = new wasm.WriterPropertiesBuilder()
    .setCompression(wasm.Compression.ZSTD)
    .setMaxRowGroupSize(ROW_GROUP_ROWS)
    .build();
  const batches = rowGroupPieces(table.batches);
  const input = new ReadableStream<wasm.RecordBatch>({
    pull(controller) {
      // Stopped: the file is ended early here and refused below (an error put into the stream
      // would come out of the encoder as its own "Dyn casting error").
      const next = signal?.aborted ? undefined : batches.next();
      const batch = next === undefined || next.done ? undefined : next.value;
      if (batch === undefined) {
        controller.close();
        return;
      }
      // The wasm table is freed now: left to the garbage collector, each piece's copy stayed in
      // wasm memory for a while, and that memory grew with the rows written.
      const piece = wasm.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table([batch]), 'stream'));
      try {
        controller.enqueue(piece.recordBatch(0) as wasm.RecordBatch);
      } finally {
        piece.free();
      }
    },
  });
  const bytes = (await wasm.transformParquetStream(input, properties)) as ReadableStream<Uint8Array>;
  const out = createWriteStream(path);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => {});
  try {
    for await (const chunk of bytes as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk))
        await Promise.race([new Promise<void>((r) => out.once('drain', () => r())), failed]);
    }
    signal?.throwIfAborted();
    await Promise.race([new Promise<void>((r) => out.end(() => r())), failed]);
  } finally {
    out.destroy();
  }
}

/**
 * The table's batches, cut where a row group ends. A whole-table encode gives the writer each
 * batch in turn and the writer cuts one at a row group's end itself: cut here instead, the
 * writer gets the same pieces, but a table of one batch (a CSV dataframe's) no longer goes into
 * wasm memory whole. Cut any finer, the bytes differ (pages end elsewhere), so a piece is up to
 * one row group (128k rows, ~10 MB of wasm memory for the reference features).
 */
function* rowGroupPieces(batches: readonly arrow.RecordBatch[]): Generator<arrow.RecordBatch> {
  let written = 0;
  for (const batch of batches) {
    let from = 0;
    while (from < batch.numRows) {
      const room = ROW_GROUP_ROWS - (written % ROW_GROUP_ROWS);
      const to = Math.min(batch.numRows, from + room);
      yield from === 0 && to === batch.numRows ? batch : batch.slice(from, to);
      written += to - from;
      from = to;
    }
  }
}
