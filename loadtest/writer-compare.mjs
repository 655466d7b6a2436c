// Parquet writer comparison for docs/decisions/0002-parquet-writer.md: the reference view's 10
// columns (features.parquet), N rows from plain row objects, encoded to an in-memory parquet file by
// each candidate; best of 3, rows/s. The alternatives are NOT project dependencies, so this runs in a
// scratch directory outside the repository:
//   mkdir -p /tmp/pqcmp && cd /tmp/pqcmp && echo '{"type":"module"}' > package.json
//   npm install --save-exact parquetjs-lite@0.8.7 @dsnp/parquetjs@1.8.8 apache-arrow@21.2.0 parquet-wasm@0.8.0
//   cp <repo>/loadtest/writer-compare.mjs . && node writer-compare.mjs 200000

import * as dsnp from '@dsnp/parquetjs';
import * as arrow from 'apache-arrow';
import * as wasm from 'parquet-wasm';
import lite from 'parquetjs-lite';

const N = Number(process.argv[2] ?? 200000);
let seed = 12345;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const t0 = Date.UTC(2026, 0, 1);
const rows = Array.from({ length: N }, (_, i) => ({
  user_id: 1 + Math.floor(rnd() * 100000),
  event_timestamp: new Date(t0 + i * 100),
  transaction_count_1h: Math.floor(rnd() * 5),
  transaction_count_24h: Math.floor(rnd() * 30),
  avg_transaction_amount_7d: Math.round(rnd() * 50000) / 100,
  avg_transaction_amount_30d: Math.round(rnd() * 50000) / 100,
  max_transaction_amount_7d: Math.round(rnd() * 200000) / 100,
  distinct_merchant_count_7d: Math.floor(rnd() * 12),
  source_partition: i % 6,
  source_offset: Math.floor(i / 6),
}));
const fields = {
  user_id: { type: 'INT64' },
  event_timestamp: { type: 'TIMESTAMP_MILLIS' },
  transaction_count_1h: { type: 'INT64' },
  transaction_count_24h: { type: 'INT64' },
  avg_transaction_amount_7d: { type: 'DOUBLE' },
  avg_transaction_amount_30d: { type: 'DOUBLE' },
  max_transaction_amount_7d: { type: 'DOUBLE' },
  distinct_merchant_count_7d: { type: 'INT64' },
  source_partition: { type: 'INT32' },
  source_offset: { type: 'INT64' },
};

class Sink {
  constructor() {
    this.chunks = [];
  }
  write(b, cb) {
    this.chunks.push(b);
    cb?.();
    return true;
  }
  end(cb) {
    cb?.();
  }
  close(cb) {
    cb?.();
  }
  on() {
    return this;
  }
  once() {
    return this;
  }
  emit() {
    return true;
  }
}

async function jsWriter(lib) {
  const schema = new lib.ParquetSchema(fields);
  const sink = new Sink();
  const writer = await lib.ParquetWriter.openStream(schema, sink);
  for (const r of rows) await writer.appendRow(r);
  await writer.close();
  return sink.chunks.reduce((n, c) => n + c.length, 0);
}

function arrowWasm(codec) {
  const col = (key, Ctor, f = (v) => v) => Ctor.from(rows.map((r) => f(r[key])));
  const big = (key) => BigInt64Array.from(rows, (r) => BigInt(r[key]));
  const mk = (type, data) => arrow.makeVector(arrow.makeData({ type, length: N, data }));
  const table = new arrow.Table({
    user_id: mk(new arrow.Int64(), big('user_id')),
    event_timestamp: mk(
      new arrow.TimestampMillisecond('UTC'),
      BigInt64Array.from(rows, (r) => BigInt(r.event_timestamp.getTime())),
    ),
    transaction_count_1h: mk(new arrow.Int64(), big('transaction_count_1h')),
    transaction_count_24h: mk(new arrow.Int64(), big('transaction_count_24h')),
    avg_transaction_amount_7d: mk(new arrow.Float64(), col('avg_transaction_amount_7d', Float64Array)),
    avg_transaction_amount_30d: mk(new arrow.Float64(), col('avg_transaction_amount_30d', Float64Array)),
    max_transaction_amount_7d: mk(new arrow.Float64(), col('max_transaction_amount_7d', Float64Array)),
    distinct_merchant_count_7d: mk(new arrow.Int64(), big('distinct_merchant_count_7d')),
    source_partition: mk(new arrow.Int32(), col('source_partition', Int32Array)),
    source_offset: mk(new arrow.Int64(), big('source_offset')),
  });
  const props = new wasm.WriterPropertiesBuilder().setCompression(wasm.Compression[codec]).build();
  return wasm.writeParquet(wasm.Table.fromIPCStream(arrow.tableToIPC(table, 'stream')), props).length;
}

const contenders = {
  'parquetjs-lite': () => jsWriter(lite),
  '@dsnp/parquetjs': () => jsWriter(dsnp),
  'apache-arrow + parquet-wasm (zstd)': async () => arrowWasm('ZSTD'),
  'apache-arrow + parquet-wasm (snappy)': async () => arrowWasm('SNAPPY'),
};
for (const [name, run] of Object.entries(contenders)) {
  const times = [];
  let bytes = 0;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    bytes = await run();
    times.push(performance.now() - t);
  }
  const best = Math.min(...times);
  console.log(
    JSON.stringify({
      writer: name,
      rows: N,
      best_ms: Math.round(best),
      rows_per_s: Math.round(N / (best / 1000)),
      mb: +(bytes / 1e6).toFixed(2),
    }),
  );
}
