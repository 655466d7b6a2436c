// Integration-test support for an ingestor over two source topics: the reference definitions with a
// second source (`payments`, Avro in the Confluent wire format) and a view on it, runs named with a
// caller's prefix, a schema registry the test can take down, and the offline comparison per view.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { newTestRun, type TestRun } from './ingestor-process.ts';

export const PAYMENTS_VIEW = 'user_payment_features';

/**
 * Writes `<dir>/two-sources.yaml`: definitions/fraud.yaml (JSON source `transactions`, listed first)
 * plus the source `payments` (avro-confluent, same columns) with a copy of the reference view on it,
 * and `<dir>/schemas/1.avsc`, the schema the payments are framed with. Returns the file's path.
 */
export function writeTwoSourceDefinitions(dir: string): string {
  const reference = readFileSync('definitions/fraud.yaml', 'utf8');
  const source = /\n {2}- name: transactions\n[\s\S]*?(?=\nviews:)/.exec(reference)?.[0];
  const view = /\n {2}- name: user_transaction_features\n[\s\S]*?(?=\nfeature_services:)/.exec(
    reference,
  )?.[0];
  if (!source || !view) throw new Error('definitions/fraud.yaml no longer has the layout this helper copies');
  const payments = source
    .replace('name: transactions', 'name: payments')
    .replace('topic: transactions', 'topic: payments')
    .replace('format: json', 'format: avro-confluent');
  const paymentsView = view
    .replace('name: user_transaction_features', `name: ${PAYMENTS_VIEW}`)
    .replace('source: transactions', 'source: payments');
  const file = join(dir, 'two-sources.yaml');
  writeFileSync(
    file,
    reference
      .replace(/\nviews:/, `${payments}\nviews:`)
      .replace(/\nfeature_services:/, `${paymentsView}\nfeature_services:`),
  );
  mkdirSync(join(dir, 'schemas'), { recursive: true });
  writeFileSync(join(dir, 'schemas', '1.avsc'), readFileSync('definitions/schemas/transaction.avsc', 'utf8'));
  return file;
}

/**
 * A test run (newTestRun) whose topics, consumer group and Redis keys start with `<prefix>-`, so
 * that cleanupRun finds them all. `topic` is its `transactions` topic.
 */
export function newPrefixedRun(prefix: string, extraEnv: Record<string, string> = {}): TestRun {
  const id = `${prefix}-${Date.now().toString(36)}-${randomUUID().slice(0, 6)}`;
  const run = newTestRun({
    TESSERA_TOPIC_PREFIX: `${id}.`,
    TESSERA_INGESTOR_GROUP: id,
    TESSERA_REDIS_KEY_PREFIX: id,
    ...extraEnv,
  });
  return { ...run, id, topic: `${id}.transactions` };
}

export interface SwitchableRegistry {
  url: string;
  /** While true every request is answered 503, as a registry being restarted answers. */
  down: boolean;
  /** Requests answered so far (503s included). */
  requests: number;
  close(): Promise<void>;
}

/** A schema registry on loopback that serves schema id 1 (the transaction schema) and can be taken down. */
export async function startSwitchableRegistry(): Promise<SwitchableRegistry> {
  const schema = readFileSync('definitions/schemas/transaction.avsc', 'utf8');
  const server = createServer((req, res) => {
    state.requests++;
    if (state.down) {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 50302, message: 'restarting' }));
    } else if (req.url === '/schemas/ids/1') {
      res.writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
      res.end(JSON.stringify({ schema }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const state: SwitchableRegistry = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    down: false,
    requests: 0,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return state;
}

/** Deletes the run's consumer groups (its ingestors' and its readers'; cleanupRun leaves them). */
export async function deleteRunGroups(run: TestRun): Promise<void> {
  const admin = run.kafka.admin();
  await admin.connect();
  try {
    const groups = (await admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((g) => g === run.id || g.startsWith(`${run.id}-`));
    if (groups.length > 0) await admin.deleteGroups(groups);
  } finally {
    await admin.disconnect();
  }
}
