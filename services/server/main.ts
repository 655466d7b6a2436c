// `npx tsx services/server/main.ts [--flags]`: the online feature server. Reads entity state from
// Redis and answers Feast-shaped lookups; /push produces to Kafka when brokers are configured.
// Configuration: shared/config (env or flags); auth is on unless TESSERA_DEV_NO_AUTH=true.
//
// kafkajs gets Tessera's faster internals (shared/kafkajs-fast-paths.ts: CRC-32C, grouping,
// request encoding, record decoding) before it loads. Importing them first is not enough: Node
// loads the CommonJS modules of a static import graph (kafkajs) while linking it, before any module
// body runs. So this file installs them, then loads the process itself.
import '../../shared/kafkajs-fast-paths.ts';

await import('./run.ts');
