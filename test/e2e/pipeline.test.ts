// The whole pipeline, one claim: zero online/offline skew. Generated events go to Kafka; the real
// ingestor keeps their state in Redis and the real flusher writes their training rows to S3. Then,
// bit for bit: every event's training row in the offline store equals `tessera historical` (from
// the raw log) at that event's time, and the online server's answer for every user equals
// `tessera historical` at the same time, just after its last event and hours later (decayed).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { readParquet } from '../../shared/offline/parquet.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupStore,
  drainThroughIngestorAndFlusher,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
  readTables,
} from '../support/flusher-process.ts';
import { cleanupRun, createSourceTopic } from '../support/ingestor-process.ts';
import { startServer } from '../support/server-process.ts';

const exec = promisify(execFile);
const PARTITIONS = 3;
const HOUR = 3_600_000;
const TOKEN = 'e2e-token-0123456789abcdef';

describe('pipeline: Kafka -> ingestor/Redis + flusher/S3 -> server and historical agree', {
  timeout: 240_000,
}, () => {
  const run = newFlusherRun({ TESSERA_FLUSH_INTERVAL_MS: '2000' });
  const features = run.view.features.map((f) => f.name);
  // In time order (no late arrivals): a streaming row then sees exactly the events before it,
  // which is what the raw log gives offline (docs/semantics.md explains late arrivals).
  const events = placeEvents(
    generateFraudEvents({
      events: 4000,
      users: 150,
      seed: 23,
      partitions: PARTITIONS,
      lateFraction: 0,
      spanMs: 20 * 24 * HOUR,
    }).sort((a, b) => a.event_timestamp - b.event_timestamp),
    PARTITIONS,
  );
  const users = [...new Set(events.map((e) => e.user_id))].sort((a, b) => a - b);
  const newest = new Map<number, number>();
  for (const e of events) newest.set(e.user_id, Math.max(newest.get(e.user_id) ?? 0, e.event_timestamp));
  /** Per user: just after its newest event, and three hours later (the 1h window has emptied). */
  const readTimes = [(u: number) => newest.get(u)! + 1, (u: number) => newest.get(u)! + 3 * HOUR];
  const dir = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
  /** historical's answers, in entity-file order: the events, then each user at each read time. */
  let pit: Record<string, unknown[]>;
  let flusherRows: Map<string, Record<string, unknown>>;
  const children: { kill(signal?: NodeJS.Signals): boolean }[] = [];

  before(async () => {
    await createSourceTopic(run, PARTITIONS);
    await producePlacedEvents(run, events);

    await drainThroughIngestorAndFlusher(run, 90_000);

    // Every version's rows (latest/ is a copy of the newest one), keyed by source position.
    flusherRows = new Map();
    for (const t of await readTables(run.store, `${run.view.name}/`, (k) =>
      /\/v_\d{8}T\d{6}\/features\.parquet$/.test(k),
    ))
      for (let i = 0; i < t.rows; i++) {
        const row = Object.fromEntries(Object.entries(t.columns).map(([k, v]) => [k, v[i]]));
        const id = `${row.source_partition}:${row.source_offset}`;
        assert.ok(!flusherRows.has(id), `row ${id} twice in the offline store`);
        flusherRows.set(id, row);
      }

    const lines = ['user_id,event_timestamp'];
    for (const e of events) lines.push(`${e.user_id},${e.event_timestamp}`);
    for (const at of readTimes) for (const u of users) lines.push(`${u},${at(u)}`);
    writeFileSync(join(dir, 'entities.csv'), `${lines.join('\n')}\n`);
    await exec(
      process.execPath,
      [
        '--import',
        'tsx',
        'services/historical/main.ts',
        '--entities',
        join(dir, 'entities.csv'),
        '--out',
        join(dir, 'train.parquet'),
        '--store',
        run.env.TESSERA_OFFLINE_STORE!,
        '--quiet',
      ],
      { env: { ...process.env, ...run.env }, maxBuffer: 1 << 24, timeout: 120_000 },
    );
    const table = readParquet(new Uint8Array(readFileSync(join(dir, 'train.parquet'))));
    pit = {};
    for (const name of features)
      pit[name] = Array.from(table.getChild(name) ?? [], (v) => (typeof v === 'bigint' ? Number(v) : v));
    assert.equal(table.numRows, events.length + readTimes.length * users.length);
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await cleanupStore(run);
    await cleanupRun(run);
  });

  it("every event's training row in the offline store equals historical at the event's time", () => {
    assert.equal(flusherRows.size, events.length);
    let compared = 0;
    events.forEach((e, i) => {
      const row = flusherRows.get(`${e.partition}:${e.offset}`);
      assert.ok(row, `event ${e.partition}:${e.offset} has no training row`);
      assert.equal(Number(row.event_timestamp), e.event_timestamp);
      for (const name of features) {
        const offline = typeof row[name] === 'bigint' ? Number(row[name]) : row[name];
        assert.ok(
          Object.is(offline, pit[name]![i]),
          `${name} of event ${i}: flusher ${offline}, historical ${pit[name]![i]}`,
        );
        compared++;
      }
    });
    assert.equal(compared, events.length * features.length);
  });

  it('the online server equals historical for every user, just after its last event and after decay', async () => {
    const server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
    children.push(server.child);
    try {
      const url = await server.url;
      let compared = 0;
      for (const [k, at] of readTimes.entries()) {
        for (const [u, user] of users.entries()) {
          const res = await fetch(`${url}/get-online-features`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
            body: JSON.stringify({
              features: run.view.features.map((f) => f.ref),
              entities: { user_id: [user] },
              as_of: at(user),
            }),
          });
          assert.equal(res.status, 200);
          const body = (await res.json()) as { results: { values: unknown[]; statuses: string[] }[] };
          features.forEach((name, f) => {
            const column = body.results[f + 1]!;
            const offline = pit[name]![events.length + k * users.length + u];
            assert.equal(column.statuses[0], 'PRESENT', `${name} of user ${user}`);
            assert.ok(
              Object.is(column.values[0], offline),
              `${name} of user ${user} (read ${k}): server ${column.values[0]}, historical ${offline}`,
            );
            compared++;
          });
          // Three hours after its last event a user's 1h window is empty: decayed at read time.
          if (k === 1) assert.equal(body.results[1]!.values[0], 0);
        }
      }
      assert.equal(compared, readTimes.length * users.length * features.length);
    } finally {
      await server.stop();
    }
  });
});
