// Tessera on a Kafka that authorizes every request, with least-privilege ACLs: the SASL user may
// read, write and describe the run's topics and read and describe its groups, nothing else (no
// DescribeConfigs, no Create; the topics made beforehand, as an operator does). The ingestor and
// /push read topics' max.message.bytes to size their requests: refused that, they fall back to the
// broker's default with a warning instead of failing (the ingestor's start failed on it). The
// features still equal the engine run offline, the flusher writes every training row to the
// offline store, and a push is applied.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { topicName } from '../../shared/config/clients.ts';
import { authorizationFailure, createServedTopics, messageLimits } from '../../shared/kafka-topics.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupStore,
  drainThroughIngestorAndFlusher,
  type FlusherRun,
  newFlusherRun,
  readTables,
} from '../support/flusher-process.ts';
import {
  cleanupRun,
  differencesFromOffline,
  fraudMessages,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { KafkaSecurityBroker, USERS } from '../support/kafka-security-broker.ts';
import { postJson, startServer, twoEventPush } from '../support/server-process.ts';
import { stopAfter } from '../support/stop-after.ts';

const { Kafka, logLevel, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } =
  kafkajs;
const TOKEN = 'kafka-acl-test-token-0123';

describe('Kafka with least-privilege ACLs (no DescribeConfigs)', { timeout: 300_000 }, () => {
  let broker: KafkaSecurityBroker;
  let run: FlusherRun;
  /** A client on the PLAINTEXT listener: a super user, as an operator's tooling is. */
  let operator: kafkajs.Kafka;

  before(async () => {
    broker = await KafkaSecurityBroker.start(undefined, { acls: true });
    // Event-time clock and a flush a second (newFlusherRun); its flusher group is `<run id>-flusher`.
    run = newFlusherRun(broker.clientEnv('scram-sha-512'));
    operator = new Kafka({
      clientId: `${run.id}-operator`,
      brokers: [`127.0.0.1:${broker.ports.plaintext}`],
      logLevel: logLevel.NOTHING,
    });
    const admin = operator.admin();
    await admin.connect();
    try {
      await createServedTopics(
        admin,
        [run.topic, `${run.topic}.dlq`, topicName(run.config, 'features.updates'), run.rowsTopic].map(
          (topic) => ({ topic, numPartitions: 3 }),
        ),
      );
      const grant = (resourceType: number, operation: number) => ({
        resourceType,
        resourceName: run.id,
        resourcePatternType: ResourcePatternTypes.PREFIXED,
        principal: `User:${USERS.scram.username}`,
        host: '*',
        operation,
        permissionType: AclPermissionTypes.ALLOW,
      });
      await admin.createAcls({
        acl: [
          grant(AclResourceTypes.TOPIC, AclOperationTypes.READ),
          grant(AclResourceTypes.TOPIC, AclOperationTypes.WRITE),
          grant(AclResourceTypes.TOPIC, AclOperationTypes.DESCRIBE),
          grant(AclResourceTypes.GROUP, AclOperationTypes.READ),
          grant(AclResourceTypes.GROUP, AclOperationTypes.DESCRIBE),
        ],
      });
    } finally {
      await admin.disconnect();
    }
  });

  after(async () => {
    if (run) {
      await cleanupRun(run).catch(() => undefined);
      await cleanupStore(run).catch(() => undefined);
    }
    broker?.remove();
  });

  it("refuses the user DescribeConfigs (the test's premise)", async () => {
    // ACLs reach the broker's metadata a moment after createAcls: asked until the grants hold.
    const admin = run.kafka.admin();
    await admin.connect();
    try {
      let refused: string | undefined;
      for (let attempt = 0; attempt < 50 && refused === undefined; attempt++) {
        try {
          await messageLimits(admin, [run.topic]);
          assert.fail('the user read the topic config without a DescribeConfigs ACL');
        } catch (error) {
          refused = authorizationFailure(error);
          if (refused === undefined) await new Promise((r) => setTimeout(r, 200));
        }
      }
      assert.equal(refused, 'TOPIC_AUTHORIZATION_FAILED');
    } finally {
      await admin.disconnect();
    }
  });

  it('the ingestor starts, warns, and gives the offline features; the flusher writes every row', async () => {
    const events = generateFraudEvents({ events: 3000, seed: 53 });
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: fraudMessages(events) });
    await producer.disconnect();

    const { ingestor, flusher, exits } = await drainThroughIngestorAndFlusher(run, 120_000);
    assert.deepEqual(exits, [0, 0], `ingestor:\n${ingestor.output()}\nflusher:\n${flusher.output()}`);
    assert.match(ingestor.output(), /cannot read the topics' max.message.bytes \(no DescribeConfigs ACL\)/);
    const { entities, differences } = await differencesFromOffline(run, events);
    assert.ok(entities > 50, `only ${entities} entities`);
    assert.deepEqual(differences, [], `first differences among ${entities} entities`);
    const tables = await readTables(run.store, `${run.view.name}/v_`, (k) => k.endsWith('/features.parquet'));
    const rows = new Set(
      tables.flatMap((t) => t.columns.source_offset!.map((o, i) => `${t.columns.source_partition![i]}:${o}`)),
    );
    assert.equal(rows.size, events.length, 'one training row per event in the offline store');
  });

  it('/push goes through with a warning, and the ingestor applies it', async (t) => {
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    const server = stopAfter(t, startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN }));
    const url = await server.url;
    const user = 93_000_001;
    const ts = Date.UTC(2026, 0, 9, 12);
    const pushed = await postJson(url, '/push', twoEventPush(user, ts), TOKEN);
    assert.equal(pushed.status, 200, JSON.stringify(pushed.json));
    assert.match(server.output(), /cannot read .*max.message.bytes \(TOPIC_AUTHORIZATION_FAILED/);
    await waitForCaughtUp(run, run.topic, 60_000);
    const { status, json: body } = await postJson<{ results: { values: unknown[] }[] }>(
      url,
      '/get-online-features',
      {
        features: ['user_transaction_features:transaction_count_1h'],
        entities: { user_id: [user] },
        as_of: ts + 2000,
      },
      TOKEN,
    );
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.results[1]!.values[0], 2, 'both pushed rows were applied');
  });
});
