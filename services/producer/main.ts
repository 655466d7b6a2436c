// `npx tsx services/producer/main.ts`: writes synthetic fraud events to Kafka at a chosen rate, in
// the format of a source of the definitions file (or --format). Progress on stderr each second,
// summary on stdout. Ctrl-C / SIGTERM: stop generating, flush what was built, disconnect, exit 0.
//
// kafkajs gets Tessera's faster internals (shared/kafkajs-fast-paths.ts: CRC-32C, grouping,
// request encoding, record decoding) before it loads. Importing them first is not enough: Node
// loads the CommonJS modules of a static import graph (kafkajs) while linking it, before any module
// body runs. So this file installs them, then loads the process itself.
import '../../shared/kafkajs-fast-paths.ts';

await import('./run.ts');
