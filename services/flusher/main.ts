// `npx tsx services/flusher/main.ts [--flags]`: runs the flusher (one per offline store), which
// writes the raw event log and each view's training rows to S3 or a local directory
// (docs/offline-store.md). Configuration: shared/config (env or flags).
//
// kafkajs gets Tessera's faster internals (shared/kafkajs-fast-paths.ts: CRC-32C, grouping,
// request encoding, record decoding) before it loads. Importing them first is not enough: Node
// loads the CommonJS modules of a static import graph (kafkajs) while linking it, before any module
// body runs. So this file installs them, then loads the process itself.
import '../../shared/kafkajs-fast-paths.ts';

await import('./run.ts');
