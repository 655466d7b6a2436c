// `npx tsx services/ingestor/main.ts [--flags]`: runs one ingestor (run several for scale-out;
// they share partitions through the consumer group). Configuration: shared/config (env or flags).
//
// kafkajs gets Tessera's faster internals (shared/kafkajs-fast-paths.ts: CRC-32C, grouping,
// request encoding, record decoding) before it loads. Importing them first is not enough: Node
// loads the CommonJS modules of a static import graph (kafkajs) while linking it, before any module
// body runs. So this file installs them, then loads the process itself.
import '../../shared/kafkajs-fast-paths.ts';

await import('./run.ts');
