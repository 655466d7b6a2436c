// The producer against the real Kafka: every format round-trips through the broker and the
// decoders, keyed so that each user's events stay in order; bad messages decode to the reasons
// they announce. Each run uses its own topics and removes them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { type Admin, Kafka, type KafkaMessage, logLevel } from 'kafkajs';
import { BAD_REASON_HEADER } from '../../services/producer/bad-messages.ts';
import { planMessages, produceEvents } from '../../services/producer/produce.ts';
import { createDecoder, type DecodeResult } from '../../shared/codecs/index.ts';
import { kafkaOptions, topicName } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import type { SourceDef } from '../../shared/definitions/schema.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { trackChild } from '../support/process-guard.ts';
import { startTestRegistry } from '../support/schema-registry.ts';
import { stopAfter } from '../support/stop-after.ts';
import { createReadyTopics } from '../support/topics.ts';

const config = loadConfig({ argv: [] });
const runId = `${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`;
const reference = loadDefinitionsFile('definitions/fraud.yaml').sources[0]!;
const HOOK = { timeout: 30_000 };
const EVENTS = 2000;
const SEED = 11;
const PARTITIONS = 3;
const kafka = new Kafka({ ...kafkaOptions(config, `tessera-test-${runId}`), logLevel: logLevel.NOTHING });
const schemaDir = mkdtempSync(join(tmpdir(), 'tessera-schemas-'));
const created: string[] = [];
const groups: string[] = [];
let admin: Admin | undefined;

const sourceIn = (format: SourceDef['format']): SourceDef => ({
  ...reference,
  format,
  avroSchema: 'schemas/transaction.avsc',
});

/** Reads `count` messages of a topic from the beginning, with their partitions. */
async function consumeAll(
  topic: string,
  count: number,
): Promise<{ partition: number; message: KafkaMessage }[]> {
  const groupId = `tessera-test-${runId}-${topic}`;
  groups.push(groupId);
  const consumer = kafka.consumer({ groupId });
  const out: { partition: number; message: KafkaMessage }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${out.length}/${count} messages read from ${topic}`)),
        30_000,
      );
      consumer
        .run({
          eachBatch: async ({ batch }) => {
            for (const message of batch.messages) out.push({ partition: batch.partition, message });
            if (out.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

async function produce(format: SourceDef['format'], badFraction = 0) {
  const topic = topicName(config, `tessera-test-${runId}-${format}-${badFraction > 0 ? 'bad' : 'good'}`);
  created.push(topic);
  const summary = await produceEvents({
    config,
    topic,
    source: sourceIn(format),
    definitionsDir: 'definitions',
    schemaDir,
    schemaId: 1,
    events: EVENTS,
    seed: SEED,
    rate: 0,
    createTopic: true,
    partitions: PARTITIONS,
    badFraction,
    clientId: `tessera-test-${runId}`,
  });
  return { topic, summary };
}

describe('producer on real Kafka', { timeout: 120_000 }, () => {
  before(async () => {
    // The decoders' schema directory: id 1 is the shipped transaction schema.
    writeFileSync(join(schemaDir, '1.avsc'), readFileSync('definitions/schemas/transaction.avsc'));
    admin = kafka.admin();
    await admin.connect();
  }, HOOK);

  after(async () => {
    rmSync(schemaDir, { recursive: true, force: true });
    if (admin === undefined) return;
    await admin.deleteTopics({ topics: created }).catch(() => {});
    await admin.deleteGroups(groups).catch(() => {});
    const left = await admin.listTopics();
    await admin.disconnect();
    assert.deepEqual(
      created.filter((t) => left.includes(t)),
      [],
      'test topics deleted',
    );
  }, HOOK);

  for (const format of ['json', 'avro', 'avro-confluent'] as const) {
    it(`${format}: ${EVENTS} events come back decoded, equal to the generator's, in order per user`, async () => {
      const { topic, summary } = await produce(format);
      assert.equal(summary.sent, EVENTS);
      assert.equal(summary.good, EVENTS);
      const consumed = await consumeAll(topic, EVENTS);
      assert.equal(consumed.length, EVENTS);
      const decoder = createDecoder(sourceIn(format), { definitionsDir: 'definitions', schemaDir });
      const decoded = await decoder.decodeBatch(consumed.map((c) => c.message));

      const expected = generateFraudEvents({ events: EVENTS, seed: SEED });
      const perUser = (records: { user_id: number | string }[]) => {
        const m = new Map<string, unknown[]>();
        for (const r of records) m.set(String(r.user_id), [...(m.get(String(r.user_id)) ?? []), r]);
        return m;
      };
      const got = decoded.map((d, i) => {
        assert.ok(d.ok, `message ${i} decodes: ${JSON.stringify(d)}`);
        assert.equal(d.messageKey, d.key, 'Kafka key is the user id');
        return d.record as { user_id: number };
      });
      const want = expected.map((e) => ({
        user_id: e.user_id,
        event_timestamp: e.event_timestamp,
        amount: e.amount,
        merchant_id: e.merchant_id,
      }));
      // Partitions interleave arbitrarily; each user's own sequence is exact.
      assert.deepEqual(perUser(got), perUser(want));
      // Keyed: each user lives in exactly one partition.
      const partitionsOf = new Map<string, Set<number>>();
      consumed.forEach((c, i) => {
        const key = (decoded[i] as { key: string }).key;
        partitionsOf.set(key, (partitionsOf.get(key) ?? new Set()).add(c.partition));
      });
      assert.ok([...partitionsOf.values()].every((s) => s.size === 1));
      assert.ok(new Set(consumed.map((c) => c.partition)).size > 1, 'users spread over partitions');
    });

    it(`${format}: --bad-fraction messages decode to the reasons they announce`, async () => {
      const { topic, summary } = await produce(format, 0.05);
      const badTotal = Object.values(summary.bad).reduce((a, b) => a + (b ?? 0), 0);
      assert.ok(badTotal > 40, `some bad messages were mixed in (${badTotal})`);
      assert.equal(summary.good, EVENTS);
      const consumed = await consumeAll(topic, summary.sent);
      const decoder = createDecoder(sourceIn(format), { definitionsDir: 'definitions', schemaDir });
      const decoded: DecodeResult[] = await decoder.decodeBatch(consumed.map((c) => c.message));
      const seen: Record<string, number> = {};
      let good = 0;
      decoded.forEach((d, i) => {
        const announced = consumed[i]!.message.headers?.[BAD_REASON_HEADER]?.toString();
        if (announced === undefined) {
          assert.ok(d.ok, `good message ${i} decodes`);
          good++;
          return;
        }
        seen[announced] = (seen[announced] ?? 0) + 1;
        // `late` is the ingestor's verdict: it decodes fine, a week older than its neighbours.
        if (announced === 'late') assert.ok(d.ok, 'late messages decode');
        else assert.equal(d.ok ? 'ok' : d.reason, announced);
      });
      assert.equal(good, EVENTS);
      assert.deepEqual(seen, summary.bad);
    });
  }

  it('--now-based shifts event times so the stream ends at the wall clock', () => {
    const now = Date.UTC(2027, 5, 1);
    const plan = planMessages({
      source: sourceIn('json'),
      definitionsDir: 'definitions',
      events: 500,
      seed: SEED,
      nowBased: true,
      now: () => now,
    });
    const original = generateFraudEvents({ events: 500, seed: SEED });
    const events = [...plan.events];
    assert.equal(Math.max(...events.map((e) => e.event_timestamp)), now);
    assert.equal(events[0]!.event_timestamp - original[0]!.event_timestamp, plan.shiftMs);
  });

  /**
   * Starts the CLI for test `t` (which stops it when it ends, whatever failed): the process, what
   * it printed so far, and its exit code once it ends.
   */
  const startCli = (t: TestContext, argv: string[], env: Record<string, string> = {}) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'services/producer/main.ts', ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    trackChild(child, 'producer CLI');
    stopAfter(t, child);
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (d: Buffer) => {
      out.stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out.stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { child, out, exited };
  };

  /** Runs the CLI to its end. */
  const cli = async (t: TestContext, argv: string[], env: Record<string, string> = {}) => {
    const { out, exited } = startCli(t, argv, env);
    const code = await exited;
    return { code, ...out };
  };

  it('the CLI refuses a missing topic without --create-topic (exit 2) and creates none', async (t) => {
    // The broker creates topics on first use: the CLI wrote to a 1-partition topic of the broker's
    // default, whatever --partitions said, and exited 0.
    const base = `tessera-test-${runId}-missing`;
    const topic = topicName(config, base);
    created.push(topic);
    const r = await cli(t, ['--events', '50', '--rate', '0', '--topic', base, '--partitions', '3']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`producer: topic ${topic} does not exist; pass --create-topic`));
    assert.ok(!(await admin!.listTopics()).includes(topic), 'no topic created');
  });

  it('--create-topic on a topic that exists with other partitions says so, and writes to it', async (t) => {
    const base = `tessera-test-${runId}-existing`;
    const topic = topicName(config, base);
    created.push(topic);
    await createReadyTopics(kafka, [{ topic, numPartitions: 2 }]);
    const r = await cli(t, ['--events', '20', '--rate', '0', '--topic', base, '--create-topic']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `producer: topic ${topic} exists with 2 partitions, not the 6 of --partitions: --create-topic leaves`,
      ),
    );
    const offsets = await admin!.fetchTopicOffsets(topic);
    assert.equal(offsets.length, 2);
    assert.equal(
      offsets.reduce((n, p) => n + Number(p.high), 0),
      20,
    );
  });

  it('avro-confluent with a schema registry: frames carry the id the registry gave the schema', async (t) => {
    // The id 1 was written whatever the registry held: here another schema, so the ingestor
    // decoded nothing of it.
    const registry = await startTestRegistry();
    try {
      registry.schemas.set(1, JSON.stringify({ type: 'record', name: 'Other', fields: [] }));
      const base = `tessera-test-${runId}-registry`;
      const topic = topicName(config, base);
      created.push(topic);
      const r = await cli(
        t,
        ['--events', '300', '--rate', '0', '--format', 'avro-confluent', '--topic', base, '--create-topic'],
        { TESSERA_SCHEMA_REGISTRY_URL: registry.url, TESSERA_SCHEMA_DIR: '' },
      );
      assert.equal(r.code, 0, r.stderr);
      const id = registry.subjects.get(`${topic}-value`)?.[0];
      assert.ok(id !== undefined && id !== 1, `schema registered under ${topic}-value (${id})`);
      assert.match(r.stdout, new RegExp(`schema id ${id} \\(registry subject ${topic}-value\\)`));
      const consumed = await consumeAll(topic, 300);
      assert.deepEqual(new Set(consumed.map((c) => c.message.value!.readUInt32BE(1))), new Set([id]));
      const decoder = createDecoder(sourceIn('avro-confluent'), {
        definitionsDir: 'definitions',
        schemaRegistryUrl: registry.url,
      });
      const decoded = await decoder.decodeBatch(consumed.map((c) => c.message));
      assert.equal(decoded.filter((d) => d.ok).length, 300, 'every message decodes via the registry');
    } finally {
      await registry.close();
    }
  });

  it('the CLI stops on SIGTERM, flushes what it built and exits 0', async (t) => {
    const base = `tessera-test-${runId}-cli`;
    const topic = topicName(config, base);
    created.push(topic);
    const { child, out, exited } = startCli(t, [
      '--events',
      '100000',
      '--rate',
      '4000',
      '--topic',
      base,
      '--create-topic',
      '--partitions',
      '2',
    ]);
    // Wait for the first progress line, then stop it mid-stream.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (/sent \d+/.test(out.stderr)) {
          clearInterval(poll);
          resolve();
        }
      }, 50);
    });
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out.stderr);
    const m = /produced (\d+) messages .* stopped early/.exec(out.stdout);
    assert.ok(m, `summary line: ${out.stdout}`);
    const sent = Number(m[1]);
    assert.ok(sent > 0 && sent < 100_000);
    const offsets = await admin!.fetchTopicOffsets(topic);
    assert.equal(
      offsets.reduce((sum, o) => sum + Number(o.high), 0),
      sent,
      'every message counted as sent is in the topic',
    );
  });
});
