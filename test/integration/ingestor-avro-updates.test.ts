// TESSERA_UPDATES_FORMAT=avro: the ingestor registers one record schema per view in the schema
// registry (a small Confluent-compatible one on loopback) and pushes every vector to
// features.updates in the Confluent wire format; PUBLISH carries the same bytes. A consumer that
// knows only the registry decodes them, and each user's last vector equals a naive loop over the
// events as of its as_of.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import avro from 'avsc';
import { Redis } from 'ioredis';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  fraudMessages,
  ingestThenStop,
  newTestRun,
  readTopicToEnd,
  type TestRun,
} from '../support/ingestor-process.ts';
import { naiveFraudValue, sameValue } from '../support/naive-reference.ts';
import { startTestRegistry, type TestRegistry } from '../support/schema-registry.ts';

const VIEW = loadDefinitionsFile('definitions/fraud.yaml').views[0]!;

describe('ingestor: feature updates in Avro', { timeout: 120_000 }, () => {
  let registry: TestRegistry;
  let run: TestRun;
  let subscriber: Redis;

  before(async () => {
    registry = await startTestRegistry();
    run = newTestRun({
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_UPDATES_FORMAT: 'avro',
      TESSERA_SCHEMA_REGISTRY_URL: registry.url,
      TESSERA_PUBLISH_UPDATES: 'true',
    });
    await createSourceTopic(run, 2);
    subscriber = new Redis(run.config.redisUrl);
  });
  after(async () => {
    subscriber.disconnect();
    await cleanupRun(run);
    await registry.close();
  });

  it('registers the view schema and pushes every vector Confluent-framed, equal to a naive loop', async () => {
    const published: Buffer[] = [];
    await subscriber.subscribe(`${run.id}:updates:${VIEW.name}`);
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => published.push(message));

    const events = generateFraudEvents({ events: 400, seed: 41 });
    await ingestThenStop(run, fraudMessages(events));

    const subject = `${run.id}.features.updates-tessera.updates.${VIEW.name}`;
    assert.deepEqual(
      [...registry.subjects.keys()],
      [subject],
      'one subject per view (TopicRecordNameStrategy)',
    );
    const [id] = registry.subjects.get(subject)!;
    const type = avro.Type.forSchema(JSON.parse(registry.schemas.get(id!)!) as avro.Schema);

    assert.ok(published.length > 0);
    // The whole topic (the ingestor has stopped): a record no PUBLISH carried fails the compare.
    const records = await readTopicToEnd(run, `${run.id}.features.updates`);
    assert.equal(records.length, published.length, 'no more records than PUBLISHed vectors');
    assert.deepEqual(
      records.map((r) => r.value!.toString('hex')).sort(),
      published.map((b) => b.toString('hex')).sort(),
      'PUBLISH carries the topic records bytes',
    );

    // Topic order within a partition is push order, and a user's vectors share its partition.
    const last = new Map<string, Record<string, unknown>>();
    for (const r of records) {
      const value = r.value!;
      assert.equal(value[0], 0, 'magic byte');
      assert.equal(value.readUInt32BE(1), id, 'registered schema id');
      const vector = type.fromBuffer(value.subarray(5)) as Record<string, unknown>;
      assert.equal(vector.entity, r.key!.toString());
      assert.equal(vector.view, VIEW.name);
      last.set(String(vector.entity), vector);
    }
    const users = new Set(events.map((e) => String(e.user_id)));
    assert.deepEqual(new Set(last.keys()), users, 'a vector for every user');
    let compared = 0;
    for (const [user, vector] of last) {
      const features = vector.features as Record<string, unknown>;
      for (const f of VIEW.features) {
        const want = naiveFraudValue(events, Number(user), f, vector.as_of as number);
        assert.ok(
          sameValue(f.aggregation, features[f.name], want),
          `user ${user} ${f.name} as of ${vector.as_of}: ${features[f.name]} vs naive ${want}`,
        );
        compared++;
      }
    }
    assert.equal(compared, users.size * VIEW.features.length);
  });
});
