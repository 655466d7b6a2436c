// Faster versions of kafkajs internals, put in kafkajs' module cache before kafkajs loads (kafkajs
// 2.2.4, whose files these replace; any other version is left alone). Profiles of the ingestor put
// kafkajs' CRC-32C (a byte-at-a-time table loop over every record batch it produces) at ~4 % of the
// process; its per-partition grouping copies a partition's array once per message (quadratic, and
// garbage for the young generation); its produce requests are built in an Encoder per record and
// copied five times over (kafkajs-lean-encoding.ts); and its record decoder does 64-bit BigInt
// arithmetic on every fetched record (kafkajs-lean-decoding.ts). Each replacement gives kafkajs'
// own results, byte for byte, checked against kafkajs' code in test/unit/kafkajs-fast-paths.test.ts;
// the broker checks every CRC in the integration tests.
//
// It must run before kafkajs loads: every service's main.ts that uses kafkajs (ingestor, server,
// producer, flusher) imports it, then loads the rest of the process dynamically (a static import
// graph loads kafkajs while it is linked).
import { createRequire, Module } from 'node:module';
import { dirname, join } from 'node:path';
import { leanRecordDecoder } from './kafkajs-lean-decoding.ts';
import {
  type EncoderClass,
  type LongClass,
  leanProduceRequest,
  leanRequestFraming,
  type ProduceArgs,
  type ProduceRequest,
} from './kafkajs-lean-encoding.ts';

const require = createRequire(import.meta.url);
const KAFKAJS_VERSION = '2.2.4';
const CRC_MODULE = 'src/protocol/recordBatch/crc32C/index.js';
const GROUPING_MODULE = 'src/producer/groupMessagesPerPartition.js';
const PRODUCE_MODULE = 'src/protocol/requests/produce/v3/request.js'; // v4-v7 reuse it
const FRAMING_MODULE = 'src/protocol/request.js';
const ENCODER_MODULE = 'src/protocol/encoder.js';
const LONG_MODULE = 'src/utils/long.js';
const RECORD_DECODER_MODULE = 'src/protocol/recordBatch/record/v0/decoder.js';

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): slicing-by-8 tables, 8 bytes a step. */
const TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++)
    for (let s = 1; s < 8; s++) {
      const prev = t[(s - 1) * 256 + i]!;
      t[s * 256 + i] = (prev >>> 8) ^ t[prev & 0xff]!;
    }
  return t;
})();

/** CRC-32C of the bytes, unsigned (what kafkajs' crc32C module returns). */
export function crc32c(bytes: Uint8Array): number {
  const t = TABLES;
  let crc = -1;
  let i = 0;
  const n = bytes.length;
  const whole = n - (n & 7);
  for (; i < whole; i += 8) {
    const a = crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    crc =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < n; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

interface GroupingInput<M> {
  topic: string;
  partitionMetadata: readonly unknown[];
  messages: readonly M[];
  partitioner: (args: { topic: string; partitionMetadata: readonly unknown[]; message: M }) => number;
}

/**
 * The messages by the partition the partitioner picks, each partition's in send order: kafkajs'
 * groupMessagesPerPartition in one pass (its reduce copies the partition's array for every message).
 */
export function groupMessagesPerPartition<M>({
  topic,
  partitionMetadata,
  messages,
  partitioner,
}: GroupingInput<M>): Record<number, M[]> {
  if (partitionMetadata.length === 0) return {};
  const out: Record<number, M[]> = {};
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const list = out[partition];
    if (list === undefined) out[partition] = [message];
    else list.push(message);
  }
  return out;
}

export interface FastPathsStatus {
  /** Whether kafkajs will use the replacements (false: another version, or kafkajs loaded first). */
  active: boolean;
  /** Left out on purpose (TESSERA_KAFKAJS_FAST_PATHS=false), which is not worth a warning. */
  turnedOff?: true;
  reason: string;
}

/** Set to `false` to run kafkajs as shipped (read here: the fast paths install before any config loads). */
export const FAST_PATHS_ENV = 'TESSERA_KAFKAJS_FAST_PATHS';

function install(): FastPathsStatus {
  const setting = process.env[FAST_PATHS_ENV];
  if (setting === 'false')
    return {
      active: false,
      turnedOff: true,
      reason: `turned off by ${FAST_PATHS_ENV}=false: kafkajs runs as shipped`,
    };
  if (setting !== undefined && setting !== '' && setting !== 'true') {
    // Read while main.ts's imports load, before any service can report a configuration error:
    // stopped here, in the services' own form (a throw printed a stack, even for --help).
    process.stderr.write(
      `CONFIG_INVALID: ${FAST_PATHS_ENV} must be true or false (unset: true), got ${JSON.stringify(setting)}\n`,
    );
    process.exit(1);
  }
  let root: string;
  let version: string;
  try {
    const pkg = require.resolve('kafkajs/package.json');
    root = dirname(pkg);
    version = (require(pkg) as { version: string }).version;
  } catch {
    return { active: false, reason: 'kafkajs is not installed' };
  }
  if (version !== KAFKAJS_VERSION)
    return {
      active: false,
      reason: `kafkajs ${version}, not ${KAFKAJS_VERSION} whose internals these replace`,
    };
  const index = join(root, 'index.js');
  if (require.cache[index])
    return {
      active: false,
      reason:
        'kafkajs was loaded before this module: install it from a main.ts whose only static import it is, then import the rest dynamically',
    };
  const put = (file: string, exports: unknown) => {
    const path = join(root, file);
    const m = new Module(path);
    m.filename = path;
    m.loaded = true;
    m.exports = exports;
    require.cache[path] = m;
  };
  put(CRC_MODULE, crc32c);
  put(GROUPING_MODULE, groupMessagesPerPartition);
  // Before kafkajs' record batch decoder loads it; kafkajs' own stays the fallback.
  put(RECORD_DECODER_MODULE, leanRecordDecoder(require(join(root, RECORD_DECODER_MODULE))));
  // kafkajs' own produce request, loaded after the CRC above is in place (its record batches use
  // it), stays the fallback of the lean one for what that does not cover.
  const Encoder = require(join(root, ENCODER_MODULE)) as EncoderClass;
  const Long = require(join(root, LONG_MODULE)) as LongClass;
  const produce = require(join(root, PRODUCE_MODULE)) as (args: ProduceArgs) => ProduceRequest;
  put(PRODUCE_MODULE, leanProduceRequest(produce, Encoder, Long, crc32c));
  put(FRAMING_MODULE, leanRequestFraming(Encoder));
  return {
    active: true,
    reason: `kafkajs ${version}: CRC-32C, per-partition grouping, produce requests, request framing and record decoding replaced`,
  };
}

export const fastPaths: FastPathsStatus = install();

/**
 * One start-up line: info when active or turned off on purpose, a warning (with the reason) when
 * kafkajs runs without them otherwise.
 */
export function logFastPaths(logger: { info(msg: string): void; warn(msg: string): void }): void {
  if (fastPaths.active || fastPaths.turnedOff) logger.info(fastPaths.reason);
  else
    logger.warn(
      `kafkajs runs without Tessera's faster CRC-32C, grouping, request encoding and record decoding: ${fastPaths.reason}`,
    );
}
