// Features over a bool column, end to end: JSON events through Kafka, the real ingestor, Redis and
// the real online server. Booleans once reached the engine as nulls, so `last` of a bool column
// answered its default and `count_distinct` 0. The values must be JSON booleans and equal a naive
// loop over the events. The second view has only aggregations the server can read straight from
// the state bytes; over a bool column they are read by decoding the state
// (test/unit/engine/fast-read.test.ts checks that hand-over).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  cleanupRun,
  createSourceTopic,
  ingestThenStop,
  newTestRun,
  type TestRun,
} from '../support/ingestor-process.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

const HOUR = 3_600_000;
const TOKEN = 'bool-features-token';
const DEFINITIONS = `
version: 1
project: cards
entities: [{ name: user, join_key: user_id, type: int64 }]
sources:
  - { name: transactions, topic: transactions, format: json, key_field: user_id,
      timestamp_field: event_timestamp, timestamp_format: iso8601,
      schema: { user_id: int64, event_timestamp: timestamp, card_present: bool } }
views:
  - name: card_features
    entity: user
    source: transactions
    features:
      - { name: last_present, aggregation: last, column: card_present, window: 1h }
      - { name: recent, aggregation: last_n, column: card_present, window: 24h, n: 3 }
  - name: card_kinds
    entity: user
    source: transactions
    features:
      - { name: kinds_1h, aggregation: count_distinct, column: card_present, window: 1h }
      - { name: kinds_24h, aggregation: count_distinct, column: card_present, window: 24h, mode: tiled, tile: 1h }
`;

interface Card {
  user_id: number;
  event_timestamp: number;
  card_present: boolean;
}

describe('features over a bool column, ingestor to server', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bool-'));
  const t0 = Date.UTC(2026, 0, 5);
  // Ten users; some only ever present, some never, the rest mixed, over ten hours.
  const cards: Card[] = Array.from({ length: 600 }, (_, i) => {
    const user = 1 + (i % 10);
    return {
      user_id: user,
      event_timestamp: t0 + i * 60_000,
      card_present:
        user === 1 ? true : user === 2 ? false : Math.floor(i / 10) % (user % 3 === 0 ? 3 : 4) === 0,
    };
  });
  const asOf = t0 + 600 * 60_000;
  let run: TestRun;
  let server: ServerProcess;

  before(async () => {
    const definitions = join(dir, 'cards.yaml');
    writeFileSync(definitions, DEFINITIONS);
    run = newTestRun({ TESSERA_DEFINITIONS: definitions, TESSERA_INGEST_CLOCK: 'event' });
    await createSourceTopic(run, 2);
    const output = await ingestThenStop(
      run,
      cards.map((c) => ({
        key: String(c.user_id),
        value: JSON.stringify({ ...c, event_timestamp: new Date(c.event_timestamp).toISOString() }),
      })),
    );
    assert.doesNotMatch(output, /dead.letter|DLQ/i, 'no event was dead-lettered');
    server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
  });

  after(async () => {
    await server?.stop();
    await cleanupRun(run);
    rmSync(dir, { recursive: true, force: true });
  });

  /** The naive answer: a user's values in [asOf - window, asOf), oldest first. */
  const within = (user: number, windowMs: number): boolean[] =>
    cards
      .filter((c) => c.user_id === user && c.event_timestamp >= asOf - windowMs && c.event_timestamp < asOf)
      .map((c) => c.card_present);

  it('answers booleans equal to a naive loop, from both views', async () => {
    const users = Array.from({ length: 10 }, (_, i) => i + 1);
    const response = await fetch(`${await server.url}/get-online-features`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        features: [
          'card_features:last_present',
          'card_features:recent',
          'card_kinds:kinds_1h',
          'card_kinds:kinds_24h',
        ],
        entities: { user_id: users },
        as_of: new Date(asOf).toISOString(),
      }),
    });
    const body = (await response.json()) as { results: { values: unknown[]; statuses: string[] }[] };
    assert.equal(response.status, 200, JSON.stringify(body) + server.output());
    const [, last, recent, kinds1h, kinds24h] = body.results;
    users.forEach((user, row) => {
      const hour = within(user, HOUR);
      // The tiled window starts at the hour boundary at or before asOf - 24h; all events are later.
      const day = within(user, 24 * HOUR);
      assert.equal(typeof last!.values[row], 'boolean', `user ${user}: ${JSON.stringify(last!.values[row])}`);
      assert.deepEqual(
        {
          last: last!.values[row],
          recent: recent!.values[row],
          kinds1h: kinds1h!.values[row],
          kinds24h: kinds24h!.values[row],
        },
        {
          last: hour.at(-1),
          recent: day.slice(-3),
          kinds1h: new Set(hour).size,
          kinds24h: new Set(day).size,
        },
        `user ${user}`,
      );
      assert.equal(last!.statuses[row], 'PRESENT');
    });
    // The data covers the cases: a user with one value only, and one with both.
    assert.equal(kinds24h!.values[0], 1);
    assert.equal(kinds24h!.values[2], 2);
  });
});
