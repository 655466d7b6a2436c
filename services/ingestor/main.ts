// `npx tsx services/ingestor/main.ts [--flags]`: runs one ingestor (run several for scale-out;
// they share partitions through the consumer group). Configuration: shared/config (env or flags).
//
// kafkajs gets Tessera's faster internals (shared/kafkajs-fast-paths.ts: CRC-32C, grouping,
// request encoding, record decoding) before it loads. Importing them first is not enough: Node
// loads the CommonJS modules of a static import graph (kafkajs) while linking it, before any module
// body runs. So this file installs them, then loads the process itself.
import '../../shared/kafkajs-fast-paths.ts';
import { setFlagsFromString } from 'node:v8';

// No allocation-site pretenuring. Once most objects of an allocation site survive a young
// collection, V8 allocates that site's objects straight in the old generation. A catch-up (a start
// with lag, a burst) makes a fetch's records, their Kafka messages and the pushes outlive young
// collections, and the steady stream that follows did not undo it: at 10k events/s the records'
// Kafka messages were still old-generation objects. Full collections reclaimed 304 MB in a 25 s
// run, against 136 MB in one with this flag, and their pauses and marking steps made the
// freshness p99 (docs/benchmarks.md, twenty-fourth pass). Set before any event is handled;
// `node --allocation-site-pretenuring` keeps V8's default (to compare).
if (!process.execArgv.includes('--allocation-site-pretenuring'))
  setFlagsFromString('--no-allocation-site-pretenuring');

await import('./run.ts');
