// Flush benchmark: rows/s of the reference view's features.parquet, the flusher's hot path, on the
// local stack's S3 server. Stages, each timed over the same N rows (goal: >= 500k rows/s written):
//   encode  typed columns -> parquet bytes (shared/offline/parquet.ts, apache-arrow + parquet-wasm)
//   upload  encode + PUT to S3 (one object per file, as the flusher writes them)
//   flush   rows records (as the ingestor packs them on `features.rows`) -> parse -> columns -> parquet -> S3: the
//           flusher's whole per-row path for features.parquet
// Baseline in the same run: pyarrow's write_table of the very same columns (handed over as Arrow
// IPC) to the same S3 server (loadtest/baselines/pyarrow_write.py, TESSERA_PYTHON), beside `upload`.
//   eval "$(scripts/stack env)"; npx tsx loadtest/flush-bench.ts [--rows 1000000] [--files 4] [--repeat 3]
//     [--compression zstd|snappy|none]
// Figures and the writer comparison: docs/decisions/0002-parquet-writer.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tableToIPC } from 'apache-arrow';
import { compareRows, type FeatureRow, featureColumns, parseRows } from '../services/flusher/feature-rows.ts';
import { createPushEncoder } from '../services/ingestor/push-json.ts';
import { loadConfig } from '../shared/config/index.ts';
import { loadDefinitionsFile } from '../shared/definitions/load.ts';
import { openConfiguredStore } from '../shared/offline/configured-store.ts';
import { toArrowTable, writeParquet } from '../shared/offline/parquet.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    files: { type: 'string', default: '4' },
    repeat: { type: 'string', default: '3' },
    compression: { type: 'string', default: 'snappy' },
  },
});
const N = Number(args.rows);
const FILES = Number(args.files);
const REPEAT = Number(args.repeat);
const COMPRESSION = args.compression as 'zstd' | 'snappy' | 'none';
const config = loadConfig({ argv: [] });
const view = loadDefinitionsFile(config.definitions).views[0]!;
const PREFIX = `bench-flush-${Date.now()}`;
const store = openConfiguredStore({ ...config, offlineStore: `s3://${config.s3Bucket}/${PREFIX}` });
const hash = 'bench';
/** Rows per `features.rows` record: about what fits the ingestor's 64 KiB records. */
const ROWS_PER_RECORD = 700;

/** Training rows shaped like the ingestor's for the reference view (values in realistic ranges). */
function makeRows(n: number): FeatureRow[] {
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const start = Date.UTC(2026, 0, 1);
  return Array.from({ length: n }, (_, i) => {
    const ts = start + i * 100;
    return {
      view: view.name,
      entity: String(1 + Math.floor(rnd() * 100_000)),
      ts,
      source_topic: 'transactions',
      partition: i % 6,
      offset: Math.floor(i / 6),
      features: {
        transaction_count_1h: Math.floor(rnd() * 5),
        transaction_count_24h: Math.floor(rnd() * 30),
        avg_transaction_amount_7d: Math.round(rnd() * 50_000) / 100,
        avg_transaction_amount_30d: Math.round(rnd() * 50_000) / 100,
        max_transaction_amount_7d: Math.round(rnd() * 200_000) / 100,
        distinct_merchant_count_7d: Math.floor(rnd() * 12),
      },
      definitions_hash: hash,
    };
  });
}

function best(times: number[]): number {
  return Math.min(...times);
}

async function main(): Promise<void> {
  const rows = makeRows(N);
  const per = Math.ceil(N / FILES);
  const chunks = Array.from({ length: FILES }, (_, f) => rows.slice(f * per, (f + 1) * per));
  const columns = chunks.map((c) => featureColumns(view, c));
  // Packed as the ingestor packs them: per source partition, a header line then one line per row.
  const names = view.features.map((f) => f.name);
  const encoder = createPushEncoder(new Map([[view.name, names]]), hash);
  const messages: Buffer[] = [];
  for (let p = 0; p < 6; p++) {
    const mine = rows.filter((r) => r.partition === p);
    for (let at = 0; at < mine.length; at += ROWS_PER_RECORD) {
      const lines = [encoder.rowsHeader('transactions', view.name, p)];
      for (const r of mine.slice(at, at + ROWS_PER_RECORD))
        lines.push(encoder.row({ ...r, values: names.map((n) => r.features[n] as number) }));
      messages.push(Buffer.from(lines.join('\n')));
    }
  }

  const results: Record<string, number> = {};
  let bytes = 0;

  const encodeTimes: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    const t = performance.now();
    bytes = 0;
    for (let f = 0; f < FILES; f++)
      bytes += writeParquet(columns[f]!.specs, columns[f]!.columns, chunks[f]!.length, {
        compression: COMPRESSION,
      }).length;
    encodeTimes.push(performance.now() - t);
  }
  results.encode = N / (best(encodeTimes) / 1000);

  const uploadTimes: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    const t = performance.now();
    // Each PUT starts once its file is encoded, and they run together, as the flusher's putAll
    // uploads a version's files (one after another, this stage was slower than the flusher).
    const puts: Promise<void>[] = [];
    for (let f = 0; f < FILES; f++)
      puts.push(
        store.put(
          `upload/${r}/part-${f}.parquet`,
          writeParquet(columns[f]!.specs, columns[f]!.columns, chunks[f]!.length, {
            compression: COMPRESSION,
          }),
        ),
      );
    await Promise.all(puts);
    uploadTimes.push(performance.now() - t);
  }
  results.upload = N / (best(uploadTimes) / 1000);

  const flushTimes: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    const t = performance.now();
    const parsed: FeatureRow[] = [];
    for (const m of messages) {
      for (const p of parseRows(m)) if (p.ok && p.row) parsed.push(p.row);
    }
    parsed.sort(compareRows);
    const puts: Promise<void>[] = [];
    for (let f = 0; f < FILES; f++) {
      const part = parsed.slice(f * per, (f + 1) * per);
      const { specs, columns: cols } = featureColumns(view, part);
      puts.push(
        store.put(
          `flush/${r}/part-${f}.parquet`,
          writeParquet(specs, cols, part.length, { compression: COMPRESSION }),
        ),
      );
    }
    await Promise.all(puts);
    flushTimes.push(performance.now() - t);
  }
  results.flush = N / (best(flushTimes) / 1000);

  const baseline = pyarrowBaseline(columns, chunks);
  await store.delete((await store.list('')).map((o) => o.key));
  const fmt = (x: number) => `${Math.round(x / 1000)}k rows/s`;
  if (baseline)
    console.log(
      `pyarrow ${baseline.pyarrow} write_table of the same columns to the same S3 server: ${fmt(baseline.rows_per_s)} ` +
        `(best of ${baseline.seconds_rounds.length}: ${baseline.seconds_rounds.map((x) => x.toFixed(2)).join(' / ')} s); ` +
        `Tessera encode + PUT / pyarrow: ${(results.upload / baseline.rows_per_s).toFixed(2)}x`,
    );
  console.log(
    JSON.stringify({
      rows: N,
      files: FILES,
      compression: COMPRESSION,
      parquet_mb: +(bytes / 1e6).toFixed(1),
      encode: fmt(results.encode),
      encode_upload: fmt(results.upload),
      json_to_s3: fmt(results.flush),
      ...(baseline ? { pyarrow_upload: fmt(baseline.rows_per_s) } : {}),
      best_of: REPEAT,
    }),
  );
}

interface PyarrowBaseline {
  rows_per_s: number;
  seconds_rounds: number[];
  pyarrow: string;
}

/**
 * The same columns written by pyarrow (what a Python pipeline would run) to the same S3 server, one
 * object per file; null, said why, without TESSERA_PYTHON.
 */
function pyarrowBaseline(
  columns: ReturnType<typeof featureColumns>[],
  chunks: FeatureRow[][],
): PyarrowBaseline | null {
  const python = process.env.TESSERA_PYTHON;
  if (!python) {
    console.log('no pyarrow baseline: set TESSERA_PYTHON (eval "$(scripts/stack env)")');
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'flush-bench-'));
  try {
    const files = columns.map((c, f) => {
      const path = join(dir, `part-${f}.arrow`);
      writeFileSync(path, tableToIPC(toArrowTable(c.specs, c.columns, chunks[f]!.length), 'stream'));
      return path;
    });
    const run = spawnSync(
      python,
      [
        'loadtest/baselines/pyarrow_write.py',
        ...files.flatMap((f) => ['--ipc', f]),
        '--bucket',
        config.s3Bucket,
        '--prefix',
        `${PREFIX}/pyarrow`,
        '--compression',
        COMPRESSION,
        '--repeat',
        String(REPEAT),
      ],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
        env: {
          ...process.env,
          TESSERA_S3_ENDPOINT: config.s3Endpoint,
          TESSERA_S3_ACCESS_KEY_ID: config.s3AccessKeyId,
          TESSERA_S3_SECRET_ACCESS_KEY: config.s3SecretAccessKey,
          TESSERA_S3_REGION: config.s3Region,
        },
      },
    );
    if (run.status !== 0)
      throw new Error(`loadtest/baselines/pyarrow_write.py failed: ${run.stderr || run.error?.message}`);
    return JSON.parse(run.stdout.trim().split('\n').pop()!) as PyarrowBaseline;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
