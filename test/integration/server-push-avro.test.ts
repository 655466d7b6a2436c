// POST /push to an avro-confluent source: the server encodes the rows with the latest schema of the
// topic's value subject in the schema registry (a small Confluent-compatible one on loopback) and
// frames them with its id; the ingestor, resolving that id in the same registry, applies them, and
// the lookup answers their features. Before the subject exists, the push is refused naming it.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { registerSchema } from '../../shared/codecs/schema-registry.ts';
import {
  cleanupRun,
  createSourceTopic,
  newTestRun,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { startTestRegistry, type TestRegistry } from '../support/schema-registry.ts';
import { startIngestorAndServer } from '../support/server-process.ts';

const TOKEN = 'push-avro-test-token-0123';
const VIEW = 'user_transaction_features';

describe('server: /push to an avro-confluent source', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-push-avro-'));
  let registry: TestRegistry;
  let run: TestRun;
  let services: Awaited<ReturnType<typeof startIngestorAndServer>> | undefined;
  let url = '';

  before(async () => {
    registry = await startTestRegistry();
    const definitions = join(dir, 'fraud-confluent.yaml');
    writeFileSync(
      definitions,
      readFileSync('definitions/fraud.yaml', 'utf8').replace('format: json', 'format: avro-confluent'),
    );
    run = newTestRun({
      TESSERA_DEFINITIONS: definitions,
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_SCHEMA_REGISTRY_URL: registry.url,
    });
    await createSourceTopic(run, 2);
    services = await startIngestorAndServer(run, TOKEN);
    url = services.url;
  });

  after(async () => {
    await services?.stop();
    await cleanupRun(run);
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const push = async (df: Record<string, unknown[]>) => {
    const res = await fetch(`${url}/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ push_source_name: 'transactions', df }),
    });
    return { status: res.status, json: (await res.json()) as { rows?: number; error?: { message: string } } };
  };

  it('encodes with the subject latest schema, and the ingestor applies what it framed', async () => {
    const user = 88_000_001;
    const ts = Date.UTC(2026, 0, 5, 12);
    const df = {
      user_id: [user, user],
      event_timestamp: [new Date(ts).toISOString(), new Date(ts + 1000).toISOString()],
      amount: [12.5, 7.5],
      merchant_id: ['m1', 'm2'],
    };
    const subject = `${run.topic}-value`;
    const early = await push(df);
    assert.equal(early.status, 400, JSON.stringify(early.json));
    assert.match(early.json.error!.message, new RegExp(`no Avro schema under subject ${subject}`));

    const id = await registerSchema(
      registry.url,
      subject,
      readFileSync('definitions/schemas/transaction.avsc', 'utf8'),
    );
    const openapi = (await (await fetch(`${url}/openapi.json`)).json()) as {
      components: { schemas: { PushRequest: { properties: { push_source_name: { enum: string[] } } } } };
    };
    assert.deepEqual(openapi.components.schemas.PushRequest.properties.push_source_name.enum, [
      'transactions',
    ]);

    const ok = await push(df);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json.rows, 2);
    await waitForCaughtUp(run, run.topic, 30_000);
    assert.doesNotMatch(services!.ingestor.output(), /dead-lettered/, 'the ingestor decoded both rows');

    const res = await fetch(`${url}/get-online-features`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        features: [`${VIEW}:transaction_count_1h`, `${VIEW}:avg_transaction_amount_7d`],
        entities: { user_id: [user] },
        as_of: ts + 2000,
      }),
    });
    const body = (await res.json()) as { results: { values: unknown[] }[] };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual([body.results[1]!.values[0], body.results[2]!.values[0]], [2, 10]);
    assert.ok(id > 0);
  });
});
