// The ingestor's /ready over two source topics: `transactions` (JSON) and `payments` (Avro, schemas
// from a registry the test takes down). The trouble of one topic's batches is that topic's: /ready
// names payments and not transactions, transactions keep flowing into Redis meanwhile, and once
// the registry is back (or payments' partitions went to another ingestor) /ready is 200 again.
// Before, a payments batch retried in place held kafkajs' whole fetch: transactions produced during
// the registry outage waited for it, and a rebalance waited for it too.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AssignerProtocol } from 'kafkajs';
import { produceEvents } from '../../services/producer/produce.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  differencesFromOffline,
  fraudMessages,
  type IngestorProcess,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { assertStillUp, opsUrl, scrapeMetrics } from '../support/ops-endpoint.ts';
import { createReadyTopics } from '../support/topics.ts';
import {
  deleteRunGroups,
  newPrefixedRun,
  PAYMENTS_VIEW,
  type SwitchableRegistry,
  startSwitchableRegistry,
  writeTwoSourceDefinitions,
} from '../support/two-sources.ts';

const PREFIX = 'rd19';

/** Creates the run's two source topics, `partitions` each, and waits until the broker serves them. */
const createTopics = (run: TestRun, payments: string, partitions: number) =>
  createReadyTopics(
    run.kafka,
    [run.topic, payments].map((topic) => ({ topic, numPartitions: partitions })),
  );

async function produceJson(run: TestRun, events: ReturnType<typeof generateFraudEvents>): Promise<void> {
  const producer = run.kafka.producer();
  await producer.connect();
  try {
    await producer.send({ topic: run.topic, messages: fraudMessages(events) });
  } finally {
    await producer.disconnect();
  }
}

/**
 * The pid of the ingestor the group gave `topic`'s partition to, once the group is stable with
 * `members` members (each member's client id is `tessera-ingestor-<pid>`).
 */
async function holderOf(run: TestRun, topic: string, members: number, timeoutMs = 60_000): Promise<number> {
  const admin = run.kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const [group] = (await admin.describeGroups([run.config.ingestorGroup])).groups;
      last = `${group?.state} with ${group?.members.length} members`;
      if (group?.state === 'Stable' && group.members.length === members)
        for (const member of group.members) {
          const assigned = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
          if ((assigned?.assignment[topic]?.length ?? 0) > 0) {
            const pid = /^tessera-ingestor-(\d+)$/.exec(member.clientId);
            assert.ok(pid, `member ${member.memberId} has client id ${member.clientId}`);
            return Number(pid[1]);
          }
        }
      if (Date.now() > deadline)
        throw new Error(`no member of ${members} holds ${topic} after ${timeoutMs} ms: the group is ${last}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.disconnect();
  }
}

/** Polls /ready until `until` holds for its answer, or fails after `timeoutMs` naming the last answer. */
async function readyUntil(
  ingestor: IngestorProcess,
  until: (status: number, body: string) => boolean,
  timeoutMs: number,
  what: string,
): Promise<string> {
  const url = `${opsUrl(ingestor.output())}/ready`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(url);
    const body = await res.text();
    if (until(res.status, body)) return body;
    assertStillUp(ingestor, `while waiting for /ready: ${what}`);
    assert.ok(Date.now() < deadline, `/ready still "${res.status} ${body}" after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('ingestor /ready over two source topics', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}-ready-`));
  const definitions = writeTwoSourceDefinitions(dir);
  const payments = loadDefinitionsFile(definitions).sources.find((s) => s.name === 'payments')!;
  let registry: SwitchableRegistry;
  let healthyRegistry: SwitchableRegistry;

  before(async () => {
    registry = await startSwitchableRegistry();
    healthyRegistry = await startSwitchableRegistry();
  });
  after(async () => {
    await registry.close();
    await healthyRegistry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const producePayments = (run: TestRun, topic: string, events: number, seed: number) =>
    produceEvents({
      config: run.config,
      topic,
      source: payments,
      definitionsDir: dirname(definitions),
      schemaDir: join(dir, 'schemas'),
      schemaId: 1,
      events,
      seed,
      rate: 0,
    });

  it('names only the failing topic, keeps consuming the other, and is ready once the registry is back', async () => {
    const run = newPrefixedRun(PREFIX, {
      TESSERA_DEFINITIONS: definitions,
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_SCHEMA_REGISTRY_URL: registry.url,
    });
    const paymentsTopic = `${run.id}.payments`;
    const transactions = generateFraudEvents({ events: 2000, seed: 191 });
    const half = transactions.length / 2;
    let ingestor: IngestorProcess | null = null;
    try {
      await createTopics(run, paymentsTopic, 3);
      registry.down = true;
      assert.equal((await producePayments(run, paymentsTopic, 800, 192)).sent, 800);
      await produceJson(run, transactions.slice(0, half));
      ingestor = startIngestor(run);
      await ingestor.ready;

      const trouble = await readyUntil(
        ingestor,
        (status, body) => status === 503 && body.includes(paymentsTopic),
        30_000,
        'naming the payments topic while its registry is down',
      );
      assert.ok(!trouble.includes(run.topic), `/ready names the healthy topic too: ${trouble}`);

      // Transactions produced while payments cannot be decoded still reach Redis: the ingestor
      // keeps working on the healthy topic.
      await produceJson(run, transactions.slice(half));
      await waitForCaughtUp(run, run.topic, 30_000);
      assert.ok(registry.down);
      const during = await readyUntil(ingestor, () => true, 1000, 'any answer');
      assert.match(during, new RegExp(paymentsTopic.replaceAll('.', '\\.')));
      assert.ok(!during.includes(run.topic), `/ready names the healthy topic: ${during}`);
      // The held batch is fetched again after a backoff (200 ms, doubling) and the consumer's
      // long poll (up to 1 s), so its second request may come after the healthy topic caught up.
      const askedAgainBy = Date.now() + 15_000;
      while (registry.requests < 2 && Date.now() < askedAgainBy) await new Promise((r) => setTimeout(r, 100));
      assert.ok(registry.down);
      const requestsDown = registry.requests;
      assert.ok(requestsDown >= 2, `the registry was asked again while down, within 15 s: ${requestsDown}`);

      registry.down = false;
      await waitForCaughtUp(run, paymentsTopic, 60_000);
      await readyUntil(ingestor, (status) => status === 200, 15_000, 'ready once the registry is back');
      const metrics = await scrapeMetrics(ingestor.output());
      assert.match(metrics, /tessera_ingestor_consumer_crashes_total\{cause="batch"\} 0\n/);
      assert.match(metrics, /tessera_ingestor_consumer_crashes_total\{cause="kafka"\} 0\n/);
      ingestor.child.kill('SIGTERM');
      assert.equal(await ingestor.exited, 0, `graceful stop failed:\n${ingestor.output()}`);
      ingestor = null;

      const tx = await differencesFromOffline(run, transactions);
      assert.ok(tx.entities > 50);
      assert.deepEqual(tx.differences, [], `transactions: first differences among ${tx.entities} entities`);
      const pay = await differencesFromOffline(
        run,
        generateFraudEvents({ events: 800, seed: 192 }),
        paymentsTopic,
        PAYMENTS_VIEW,
      );
      assert.ok(pay.entities > 20);
      assert.deepEqual(pay.differences, [], `payments: first differences among ${pay.entities} entities`);
    } finally {
      registry.down = false;
      if (ingestor) {
        ingestor.child.kill('SIGTERM');
        await ingestor.exited;
      }
      await deleteRunGroups(run);
      await cleanupRun(run);
    }
  });

  it("drops a topic's trouble when a rebalance gives its partitions to another ingestor", async () => {
    // One partition per topic and two ingestors: kafkajs' round-robin assignor deals the topics'
    // partitions, in subscription order (transactions first), to the members sorted by member id.
    // The id starts with the client id `tessera-ingestor-<pid>`, so the first ingestor mostly keeps
    // transactions and payments moves to the second, whose registry answers. Compared as strings,
    // a second pid with more digits (or wrapped around) sorts first, and payments stays: then
    // another ingestor with a healthy registry joins, whose pid sorts as the second's, before the
    // first, and takes payments. Who holds payments is asked of the group, not guessed.
    const run = newPrefixedRun(PREFIX, {
      TESSERA_DEFINITIONS: definitions,
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_SCHEMA_REGISTRY_URL: registry.url,
    });
    const paymentsTopic = `${run.id}.payments`;
    const transactions = generateFraudEvents({ events: 300, seed: 193 });
    const started: IngestorProcess[] = [];
    try {
      await createTopics(run, paymentsTopic, 1);
      registry.down = true;
      await producePayments(run, paymentsTopic, 300, 194);
      await produceJson(run, transactions);
      const first = startIngestor(run);
      started.push(first);
      await first.ready;
      await readyUntil(
        first,
        (status, body) => status === 503 && body.includes(paymentsTopic),
        30_000,
        'naming the payments topic while its registry is down',
      );
      const second = startIngestor({
        ...run,
        env: { ...run.env, TESSERA_SCHEMA_REGISTRY_URL: healthyRegistry.url },
      });
      started.push(second);
      await second.ready;
      const healthy = [second];
      let holder = await holderOf(run, paymentsTopic, started.length);
      while (holder === first.child.pid && healthy.length < 3) {
        const another = startIngestor({
          ...run,
          env: { ...run.env, TESSERA_SCHEMA_REGISTRY_URL: healthyRegistry.url },
        });
        started.push(another);
        healthy.push(another);
        await another.ready;
        holder = await holderOf(run, paymentsTopic, started.length);
      }
      assert.ok(
        healthy.some((i) => i.child.pid === holder),
        `payments is held by pid ${holder}, not by an ingestor whose registry answers (first ${first.child.pid}, healthy ${healthy.map((i) => i.child.pid).join(' ')})`,
      );
      // An ingestor with a healthy registry decodes payments...
      await waitForCaughtUp(run, paymentsTopic, 90_000);
      // ...and the first, whose registry is still down, no longer holds a payments batch.
      assert.ok(registry.down);
      await readyUntil(
        first,
        (status) => status === 200,
        20_000,
        "the first ingestor ready once payments' partition has moved away",
      );
      for (const ingestor of healthy)
        await readyUntil(ingestor, (status) => status === 200, 20_000, 'the healthy ingestors ready');
      const pay = await differencesFromOffline(
        run,
        generateFraudEvents({ events: 300, seed: 194 }),
        paymentsTopic,
        PAYMENTS_VIEW,
      );
      assert.deepEqual(pay.differences, [], `payments: first differences among ${pay.entities} entities`);
    } finally {
      registry.down = false;
      for (const ingestor of started) {
        ingestor.child.kill('SIGTERM');
        await ingestor.exited;
      }
      await deleteRunGroups(run);
      await cleanupRun(run);
    }
  });
});
