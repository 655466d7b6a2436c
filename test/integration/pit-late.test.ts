// Events the ingestor refuses as late, end to end on the real stack (Kafka, Redis, S3): online never
// counts them, yet the flusher's raw log holds them (it cannot judge lateness). The ingestor's late
// no-row marks reach the flusher, which files them under `<view>/late/`, and `tessera historical`
// then leaves those events out, so a training set equals what online served (an independent naive
// loop over the events minus the late ones, and the online server's own answers at the same times);
// `--include-late` counts them (the loop over all).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { readLateMarks } from '../../shared/offline/late-marks.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { cleanupStore, newFlusherRun } from '../support/flusher-process.ts';
import { cleanupRun } from '../support/ingestor-process.ts';
import { historicalAgainstNaive, throughIngestorAndFlusher, withLateEvents } from '../support/late-events.ts';
import { sameValue } from '../support/naive-reference.ts';
import { postJson, startServer } from '../support/server-process.ts';

const PARTITIONS = 3;
const MIN = 60_000;
const execFileAsync = promisify(execFile);
const TOKEN = 'pit-late-token-0123456789abcdef';

describe("late events: historical retrieval leaves out what online refused, from the ingestor's marks", {
  timeout: 180_000,
}, () => {
  const run = newFlusherRun();
  const { events, late, online } = withLateEvents(
    generateFraudEvents({ events: 3000, seed: 23, partitions: PARTITIONS }),
    PARTITIONS,
  );
  let dir = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-late-'));
    await throughIngestorAndFlusher(run, events, PARTITIONS);
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await cleanupStore(run);
    await cleanupRun(run);
  });

  it('files a late mark for exactly the events the ingestor refused as late', async () => {
    const marks = await readLateMarks(run.store, run.view.name, () => true);
    assert.deepEqual(marks.positions(), [...new Set(late.map((e) => `${e.partition}/${e.offset}`))].sort());
    for (const e of late)
      assert.ok(marks.has(e.partition, e.offset, e.event_timestamp), `${e.partition}/${e.offset}`);
    assert.ok(late.length >= 40, `${late.length} late events`);
  });

  it('writes late marks pandas and pyarrow read with their declared dtypes', async () => {
    const python = process.env.TESSERA_PYTHON;
    assert.ok(python, 'TESSERA_PYTHON is unset: eval "$(scripts/stack env)"');
    const local = join(dir, 'late-marks');
    for (const o of await run.store.list(`${run.view.name}/late/`)) {
      mkdirSync(dirname(join(local, o.key)), { recursive: true });
      writeFileSync(join(local, o.key), await run.store.get(o.key));
    }
    const { stdout } = await execFileAsync(python, ['test/compat/flusher_dtypes.py', local], {
      timeout: 60_000,
    });
    const files = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; rows: number; pandas: Record<string, string> });
    assert.ok(files.length > 0);
    for (const f of files) {
      assert.match(f.file, /\/late\/date=\d{4}-\d{2}-\d{2}\/v_\d{8}T\d{6}\.parquet$/);
      assert.deepEqual(f.pandas, {
        source_topic: 'object',
        source_partition: 'int32',
        source_offset: 'int64',
        event_timestamp: 'datetime64[ms, UTC]',
      });
    }
    assert.equal(
      files.reduce((n, f) => n + f.rows, 0),
      late.length,
    );
  });

  it('answers as online by default and counts the late events with --include-late', async () => {
    // At the transactions of the users with a late event (their own times) and 17 minutes later.
    const users = new Set(late.map((e) => e.user_id));
    const rows = online
      .filter((e, i) => users.has(e.user_id) && i % 3 === 0)
      .flatMap((e) => [
        { user: e.user_id, t: e.event_timestamp },
        { user: e.user_id, t: e.event_timestamp + 17 * MIN },
      ]);
    let apart = 0;
    for (const includeLate of [false, true]) {
      const answer = await historicalAgainstNaive(
        run,
        dir,
        rows,
        { kept: includeLate ? events : online, all: events },
        includeLate ? ['--include-late'] : [],
      );
      if (includeLate) assert.equal(answer.summary.eventsLate, 0);
      else {
        assert.ok(answer.summary.eventsLate > 0, JSON.stringify(answer.summary));
        apart = answer.apart;
      }
      assert.deepEqual(answer.differences.slice(0, 10), [], `--include-late ${includeLate}`);
    }
    // Else the comparisons above could not tell the two answers apart.
    assert.ok(apart > 50, `only ${apart} values differ with and without the late events`);
  });

  it('equals the online server at the same times: both leave the late events out', async () => {
    // Each user with a late event, 10 minutes after its newest applied event: within the allowed
    // lateness of its state's clock, so the server answers exactly as of then.
    const users = [...new Set(late.map((e) => e.user_id))];
    const rows = users.map((user) => ({
      user,
      t: Math.max(...online.filter((e) => e.user_id === user).map((e) => e.event_timestamp)) + 10 * MIN,
    }));
    const offline = await historicalAgainstNaive(run, dir, rows, { kept: online, all: events });
    assert.deepEqual(offline.differences.slice(0, 5), []);
    const server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
    try {
      const url = await server.url;
      const differences: string[] = [];
      for (const [i, { user, t }] of rows.entries()) {
        const { status, json } = await postJson<{ results: { values: unknown[]; statuses: string[] }[] }>(
          url,
          '/get-online-features',
          {
            features: run.view.features.map((f) => f.ref),
            entities: { user_id: [user] },
            as_of: new Date(t).toISOString(),
          },
          TOKEN,
        );
        assert.equal(status, 200, JSON.stringify(json));
        run.view.features.forEach((f, k) => {
          const online = json.results[k + 1]!;
          assert.equal(online.statuses[0], 'PRESENT', `${f.name} of user ${user}`);
          const historical = offline.cells.get(f.name)![i];
          if (!sameValue(f.aggregation, online.values[0], historical))
            differences.push(
              `user ${user} at ${new Date(t).toISOString()}: ${f.name} server ${online.values[0]}, historical ${historical}`,
            );
        });
      }
      assert.deepEqual(differences.slice(0, 10), []);
    } finally {
      await server.stop();
    }
    // With the late events counted these times would differ from the server's answers.
    assert.ok(offline.apart > 0, 'no value differs with the late events counted');
  });
});
