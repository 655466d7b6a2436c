// One flush on a local directory store: duplicates dropped, and a flush interrupted halfway and
// redone from its saved intent leaves exactly the same objects, byte for byte.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { newestSnapshot } from '../../../services/flusher/entity-snapshot.ts';
import { runFlush } from '../../../services/flusher/flush.ts';
import { loadState, saveState, withinTopics } from '../../../services/flusher/flusher-state.ts';
import { RecordBuffer } from '../../../services/flusher/record-buffer.ts';
import { createDecoder } from '../../../shared/codecs/decode.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import { readLateMarks } from '../../../shared/offline/late-marks.ts';
import { LocalObjectStore, type ObjectStore } from '../../../shared/offline/object-store.ts';
import { readParquet } from '../../../shared/offline/parquet.ts';

const definitions = loadDefinitionsFile('definitions/fraud.yaml');
const source = definitions.sources[0]!;
const view = definitions.views[0]!;
const sources = new Map([
  ['transactions', { source, decoder: createDecoder(source, { definitionsDir: dirname(definitions.file) }) }],
]);
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function newStore(): Promise<LocalObjectStore> {
  const dir = await mkdtemp(join(tmpdir(), 'flush-unit-'));
  dirs.push(dir);
  return new LocalObjectStore(dir);
}

function fill(buffer: RecordBuffer): void {
  const t0 = Date.UTC(2026, 0, 1, 23, 59, 58);
  const events = Array.from({ length: 6 }, (_, i) => ({
    user_id: 1 + (i % 2),
    event_timestamp: new Date(t0 + i * 1000).toISOString(), // crosses midnight: two raw day files
    amount: 10 + i,
    merchant_id: `m${i % 3}`,
  }));
  buffer.append(
    'transactions',
    0,
    events.map((e, i) => ({
      offset: i,
      key: Buffer.from(String(e.user_id)),
      value: Buffer.from(JSON.stringify(e)),
    })),
  );
  const row = (i: number) =>
    Buffer.from(
      JSON.stringify({
        view: view.name,
        entity: String(1 + (i % 2)),
        event_timestamp: events[i]!.event_timestamp,
        source_topic: 'transactions',
        partition: 0,
        offset: i,
        features: Object.fromEntries(view.features.map((f) => [f.name, i])),
        definitions_hash: definitions.hash,
      }),
    );
  // Row 2 arrives twice (at-least-once), on another rows partition.
  buffer.append(
    'features.rows',
    0,
    [0, 2, 4].map((i, k) => ({ offset: k, key: null, value: row(i) })),
  );
  buffer.append(
    'features.rows',
    1,
    [1, 3, 5, 2].map((i, k) => ({ offset: k, key: null, value: row(i) })),
  );
}

/** A local store whose PUTs a hook can fail or slow down; counts the PUTs in flight. */
class FaultyStore implements ObjectStore {
  inFlight = 0;
  constructor(
    private readonly inner: LocalObjectStore,
    private readonly hook: (key: string, body: Uint8Array | string) => 'fail' | number | undefined,
  ) {}
  get location(): string {
    return this.inner.location;
  }
  async put(key: string, body: Uint8Array | string, type?: string): Promise<void> {
    const what = this.hook(key, body);
    this.inFlight++;
    try {
      if (typeof what === 'number') await new Promise((r) => setTimeout(r, what));
      if (what === 'fail') throw new Error(`injected failure of ${key}`);
      await (this.inner as ObjectStore).put(key, body, type);
    } finally {
      this.inFlight--;
    }
  }
  get(key: string): Promise<Uint8Array> {
    return this.inner.get(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  delete(keys: readonly string[]): Promise<void> {
    return this.inner.delete(keys);
  }
}

async function snapshotOf(store: LocalObjectStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const o of await store.list(''))
    out.set(o.key, Buffer.from(await store.get(o.key)).toString('base64'));
  return out;
}

describe('runFlush', () => {
  const ctx = (store: ObjectStore) => ({
    store,
    definitions,
    sources,
    rowsTopic: 'features.rows',
    retentionVersions: 0,
    codeVersion: 'test',
    logger: pino({ level: 'silent' }),
  });
  const intent = {
    version: 'v_20260102T000000',
    cut: { transactions: { '0': 6 }, 'features.rows': { '0': 3, '1': 4 } },
    startedAt: '2026-01-02T00:00:00.000Z',
  };

  it('writes one row per source offset and records the progress', async () => {
    const store = await newStore();
    const state = await loadState(store);
    const buffer = new RecordBuffer(() => state.positions);
    fill(buffer);
    const report = await runFlush(ctx(store), state, buffer, intent);
    assert.equal(report.rows.get(view.name), 6);
    assert.equal(report.duplicateRows.get(view.name), 1);
    assert.equal(report.rawEvents.get('transactions'), 6);
    const keys = (await store.list('')).map((o) => o.key);
    assert.ok(keys.includes('raw/transactions/date=2026-01-01/part-p0-0-1.parquet'), keys.join('\n'));
    assert.ok(keys.includes('raw/transactions/date=2026-01-02/part-p0-2-5.parquet'));
    const saved = await loadState(store);
    assert.equal(saved.pending, null);
    assert.deepEqual(saved.positions, intent.cut);
    assert.deepEqual(saved.written.get(`${view.name}/transactions`)?.get(0)?.toJSON(), [[0, 5]]);

    // The same rows delivered again after the flush are all duplicates: no new version.
    const again = new RecordBuffer(() => ({}));
    fill(again);
    const second = await runFlush(ctx(store), saved, again, { ...intent, version: 'v_20260102T000100' });
    assert.equal(second.rows.size, 0);
    assert.equal(second.duplicateRows.get(view.name), 7);
  });

  it("closes the gaps of dead-lettered offsets from the ingestor's no-row marks", async () => {
    const store = await newStore();
    const state = await loadState(store);
    const buffer = new RecordBuffer(() => state.positions);
    const t0 = Date.UTC(2026, 0, 1);
    const line = (offset: number, mark: boolean) =>
      JSON.stringify({
        view: view.name,
        ...(mark ? {} : { entity: '1', event_timestamp: new Date(t0 + offset).toISOString() }),
        source_topic: 'transactions',
        partition: 0,
        offset,
        ...(mark
          ? { no_row: 'late' }
          : { features: Object.fromEntries(view.features.map((f) => [f.name, 1])) }),
        definitions_hash: definitions.hash,
      });
    // Offsets 2 and 4 were dead-lettered; a row for 2 arrives after its mark (a replay).
    const lines = [
      line(0, false),
      line(1, false),
      line(2, true),
      line(3, false),
      line(4, true),
      line(5, false),
    ];
    buffer.append('features.rows', 0, [
      { offset: 0, key: null, value: Buffer.from(lines.join('\n')) },
      { offset: 1, key: null, value: Buffer.from(line(2, false)) },
    ]);
    const cut = {
      version: 'v_20260102T000000',
      cut: { 'features.rows': { '0': 2 } },
      startedAt: intent.startedAt,
    };
    const report = await runFlush(ctx(store), state, buffer, cut);
    assert.equal(report.rows.get(view.name), 4);
    assert.equal(report.noRows.get(view.name), 2);
    assert.equal(report.duplicateRows.get(view.name), 1, 'the row after its mark is a duplicate: first wins');
    const saved = await loadState(store);
    assert.deepEqual(saved.written.get(`${view.name}/transactions`)?.get(0)?.toJSON(), [[0, 5]]);
  });

  it('keeps the late marks, by day of their events, for point-in-time retrieval', async () => {
    const day1 = Date.UTC(2026, 0, 1, 23, 59, 59, 500) + 0.25;
    const day2 = Date.UTC(2026, 0, 2, 0, 0, 1);
    const mark = (offset: number, reason: string, ts?: number, partition = 0) =>
      JSON.stringify({
        view: view.name,
        source_topic: 'transactions',
        partition,
        offset,
        no_row: reason,
        ...(ts === undefined ? {} : { event_time_ms: ts }),
        definitions_hash: definitions.hash,
      });
    const row = JSON.stringify({
      view: view.name,
      entity: '1',
      event_timestamp: new Date(day1).toISOString(),
      source_topic: 'transactions',
      partition: 0,
      offset: 0,
      features: Object.fromEntries(view.features.map((f) => [f.name, 1])),
      definitions_hash: definitions.hash,
    });
    const lines = [
      mark(0, 'late', day1), // its row was flushed before: first wins, not kept
      mark(1, 'late', day1),
      mark(2, 'undecodable'), // in no raw log: nothing to leave out
      mark(3, 'late'), // an older ingestor's mark: no time, no day to file it under
      mark(4, 'late', day2),
      mark(1, 'late', day1), // a redelivery: kept once
      mark(7, 'late', day1, 3), // another source partition
    ];
    // Two flushes: the row of offset 0, then the marks.
    const twoFlushes = async (store: ObjectStore) => {
      const state = await loadState(store);
      const buffer = new RecordBuffer(() => state.positions);
      buffer.append('features.rows', 0, [{ offset: 0, key: null, value: Buffer.from(row) }]);
      const first = {
        version: 'v_20260102T000000',
        cut: { 'features.rows': { '0': 1 } },
        startedAt: intent.startedAt,
      };
      await runFlush(ctx(store), state, buffer, first);
      buffer.release(first.cut);
      buffer.append('features.rows', 0, [{ offset: 1, key: null, value: Buffer.from(lines.join('\n')) }]);
      const second = { ...first, version: 'v_20260102T000100', cut: { 'features.rows': { '0': 2 } } };
      return runFlush(ctx(store), state, buffer, second);
    };
    const store = await newStore();
    const report = await twoFlushes(store);
    assert.equal(report.noRows.get(view.name), 5, 'offsets 1, 2, 3, 4 and 7 of partition 3 have no row');
    assert.equal(report.lateMarks.get(view.name), 3);
    const keys = (await store.list(`${view.name}/late/`)).map((o) => o.key).sort();
    assert.deepEqual(keys, [
      `${view.name}/late/date=2026-01-01/v_20260102T000100.parquet`,
      `${view.name}/late/date=2026-01-02/v_20260102T000100.parquet`,
    ]);
    const rows = readParquet(await store.get(keys[0]!))
      .toArray()
      .map((r) => ({ ...r }));
    const t1 = new Date(Math.floor(day1));
    assert.deepEqual(
      rows.map((r) => [
        r.source_topic,
        r.source_partition,
        r.source_offset,
        new Date(Number(r.event_timestamp)),
      ]),
      [
        ['transactions', 0, 1n, t1],
        ['transactions', 3, 7n, t1],
      ],
    );
    assert.deepEqual((await readLateMarks(store, view.name, () => true)).positions(), ['0/1', '0/4', '3/7']);
    const secondDay = await readLateMarks(store, view.name, (d) => d === Date.UTC(2026, 0, 2));
    assert.deepEqual(secondDay.positions(), ['0/4']);
    assert.equal(secondDay.objects, 1);
    // Matched by position and the event's time (whole ms): the same offset at another time is
    // another event (a topic made again restarts its offsets).
    assert.ok(secondDay.has(0, 4, day2 + 0.5));
    assert.ok(!secondDay.has(0, 4, day2 + 1));
    assert.ok(!secondDay.has(1, 4, day2));
    // The same records flushed again (a redone flush) give the same objects, byte for byte.
    const again = await newStore();
    await twoFlushes(again);
    for (const key of keys) assert.deepEqual(await again.get(key), await store.get(key), key);
  });

  it('files the late marks of an ingestor with the training rows off, without adding them to the written offsets', async () => {
    const store = await newStore();
    const state = await loadState(store);
    const t = Date.UTC(2026, 0, 5, 12);
    const mark = (offset: number, reason = 'late') =>
      JSON.stringify({
        view: view.name,
        source_topic: 'transactions',
        partition: 1,
        offset,
        no_row: reason,
        event_time_ms: t + offset,
        rows_off: true,
        definitions_hash: definitions.hash,
      });
    const buffer = new RecordBuffer(() => state.positions);
    buffer.append('features.rows', 0, [
      {
        offset: 0,
        key: null,
        value: Buffer.from([mark(10), mark(30), mark(10), mark(40, 'undecodable')].join('\n')),
      },
    ]);
    const report = await runFlush(ctx(store), state, buffer, {
      version: 'v_20260105T120000',
      cut: { 'features.rows': { '0': 1 } },
      startedAt: intent.startedAt,
    });
    assert.equal(report.lateMarks.get(view.name), 2, 'offsets 10 and 30, each once');
    assert.equal(report.noRows.size, 0, 'they close no gap');
    const saved = await loadState(store);
    assert.equal(saved.written.size, 0, 'no written offsets: one interval per mark would be kept forever');
    const marks = await readLateMarks(store, view.name, () => true);
    assert.deepEqual(marks.positions(), ['1/10', '1/30']);
    assert.equal(marks.marks, 2);

    // A rolling change of the setting: the same offset marked by an ingestor with the rows on, in
    // the same flush, is taken into the written offsets but filed only once.
    const rowsOn = JSON.parse(mark(50)) as Record<string, unknown>;
    delete rowsOn.rows_off;
    buffer.release({ 'features.rows': { '0': 1 } });
    buffer.append('features.rows', 0, [
      { offset: 1, key: null, value: Buffer.from(`${mark(50)}\n${JSON.stringify(rowsOn)}`) },
    ]);
    const mixed = await runFlush(ctx(store), state, buffer, {
      version: 'v_20260105T120100',
      cut: { 'features.rows': { '0': 2 } },
      startedAt: intent.startedAt,
    });
    assert.equal(mixed.lateMarks.get(view.name), 1);
    assert.equal(mixed.noRows.get(view.name), 1);
    assert.equal((await readLateMarks(store, view.name, () => true)).marks, 3);
  });

  it('skips and counts a row whose feature its column cannot hold, and writes the others', async () => {
    const store = await newStore();
    const state = await loadState(store);
    const buffer = new RecordBuffer(() => state.positions);
    fill(buffer);
    // A row written under other definitions: transaction_count_1h (an int64 column) was last_n.
    const misfit = {
      view: view.name,
      entity: '1',
      event_timestamp: '2026-01-02T00:00:05.000Z',
      source_topic: 'transactions',
      partition: 0,
      offset: 6,
      features: { transaction_count_1h: ['m1', 'm2'] },
      definitions_hash: 'older',
    };
    buffer.append('features.rows', 0, [{ offset: 3, key: null, value: Buffer.from(JSON.stringify(misfit)) }]);
    // Before, the parquet writer refused it, the flush failed, and every retry failed the same way.
    const report = await runFlush(ctx(store), state, buffer, {
      ...intent,
      cut: { ...intent.cut, 'features.rows': { '0': 4, '1': 4 } },
    });
    assert.equal(report.rows.get(view.name), 6);
    assert.deepEqual([...report.invalid], [['features.rows:feature_type', 1]]);
  });

  it('keeps its intent when the final state save fails, so the retry redoes that very flush', async () => {
    // The final save (no intent left in it) fails once.
    let failFinal = true;
    const store = new FaultyStore(await newStore(), (key, body) => {
      if (failFinal && key === '_flusher/state.json' && /"pending":\s*null/.test(String(body))) {
        failFinal = false;
        return 'fail';
      }
      return undefined;
    });
    const state = await loadState(store);
    const buffer = new RecordBuffer(() => state.positions);
    fill(buffer);
    await assert.rejects(
      runFlush(ctx(store), state, buffer, intent),
      /injected failure of _flusher\/state\.json/,
    );
    // Before, memory said "done" while the store said "pending": a stop's final flush then cut a
    // new version over the same records (raw events twice), and the retry found every row written.
    assert.deepEqual(state.pending, intent);
    const recorded = [...state.written.values()].flatMap((parts) => [...parts.values()]);
    assert.deepEqual(
      recorded.map((ranges) => ranges.size),
      recorded.map(() => 0),
      'no row recorded as written',
    );
    const retry = await runFlush(ctx(store), state, buffer, intent);
    assert.equal(retry.rows.get(view.name), 6);
    assert.equal(state.pending, null);
    assert.deepEqual((await loadState(store)).positions, intent.cut);
  });

  it('does not return from a failed flush while uploads of it are still in flight', async () => {
    let failOnce = true;
    const store = new FaultyStore(await newStore(), (key) => {
      if (failOnce && key.endsWith('latest/schema.json')) {
        failOnce = false;
        return 'fail';
      }
      return key.endsWith('latest/features.parquet') ? 300 : undefined;
    });
    const state = await loadState(store);
    const buffer = new RecordBuffer(() => state.positions);
    fill(buffer);
    await assert.rejects(runFlush(ctx(store), state, buffer, intent), /injected failure/);
    // A slow PUT of the failed attempt once landed after the retry and the next flush, leaving
    // latest/features.parquet of an older version than latest/_VERSION.
    assert.equal(store.inFlight, 0, 'no upload of the failed attempt outlives it');
  });

  it('keeps only the newest versions and their snapshots with retentionVersions', async () => {
    const store = await newStore();
    const state = await loadState(store);
    const snapshots: string[] = [];
    const context = {
      ...ctx(store),
      retentionVersions: 2,
      snapshot: async (_view: unknown, version: string) => {
        snapshots.push(version);
        await store.put(`${view.name}/snapshots/${version}/entities.parquet`, 'x');
      },
    };
    // The store's delete calls: S3 runs a call's deletes several at a time, so "metadata.json
    // first" needs every metadata.json in calls of their own, before any other file.
    const deletes: string[][] = [];
    const remove = store.delete.bind(store);
    store.delete = async (keys: readonly string[]) => {
      deletes.push([...keys]);
      await remove(keys);
    };
    for (let k = 0; k < 3; k++) {
      const buffer = new RecordBuffer(() => ({}));
      fill(buffer);
      // Each round's rows get fresh offsets so every flush writes a version.
      state.written.clear();
      await runFlush(context, state, buffer, { ...intent, version: `v_2026010${k + 1}T000000` });
    }
    const order = deletes.filter((call) => call.length > 0);
    assert.deepEqual(order[0], [`${view.name}/v_20260101T000000/metadata.json`]);
    assert.ok(order.slice(1).flat().length > 0);
    assert.ok(
      !order
        .slice(1)
        .flat()
        .some((key) => key.endsWith('/metadata.json')),
      JSON.stringify(order),
    );
    const versions = [
      ...new Set((await store.list(`${view.name}/`)).map((o) => o.key.split('/').slice(1, -1).join('/'))),
    ];
    assert.deepEqual(versions.sort(), [
      'latest',
      'snapshots/v_20260102T000000',
      'snapshots/v_20260103T000000',
      'v_20260102T000000',
      'v_20260103T000000',
    ]);
  });

  it('a failing snapshot (Redis down) does not fail the flush: version, latest/ and state are written', async () => {
    // The snapshot ran inside the flush: with Redis down every attempt failed on it, retried
    // forever, and the raw log, the rows, latest/ and the Kafka commit all waited.
    const store = await newStore();
    const state = await loadState(store);
    const buffer = new RecordBuffer(() => state.positions);
    fill(buffer);
    const context = {
      ...ctx(store),
      snapshot: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:1');
      },
    };
    const report = await runFlush(context, state, buffer, intent);
    assert.equal(report.rows.get(view.name), 6);
    assert.deepEqual(report.snapshots, []);
    assert.match(String(report.snapshotErrors.get(view.name)), /ECONNREFUSED/);
    assert.equal(state.pending, null, 'the flush is recorded: nothing to redo');
    assert.equal(state.lastVersion, intent.version);
    const saved = await loadState(store);
    assert.equal(saved.pending, null);
    assert.equal(
      Buffer.from(await store.get(`${view.name}/latest/_VERSION`)).toString(),
      `${intent.version}\n`,
    );
    assert.ok((await store.list(`${view.name}/${intent.version}/metadata.json`)).length === 1);
    assert.deepEqual(await store.list(`${view.name}/snapshots/`), []);
  });

  it('retention keeps the newest complete snapshot while the kept versions have none', async () => {
    const store = await newStore();
    const state = await loadState(store);
    let redisUp = true;
    const context = {
      ...ctx(store),
      retentionVersions: 1,
      snapshot: async (_view: unknown, version: string) => {
        if (!redisUp) throw new Error('Redis is not connected');
        await store.put(`${view.name}/snapshots/${version}/entities.parquet`, 'x');
        await store.put(`${view.name}/snapshots/${version}/metadata.json`, '{}');
      },
    };
    const flush = async (k: number) => {
      const buffer = new RecordBuffer(() => ({}));
      fill(buffer);
      state.written.clear();
      await runFlush(context, state, buffer, { ...intent, version: `v_2026010${k}T000000` });
    };
    const snapshotVersions = async () => [
      ...new Set((await store.list(`${view.name}/snapshots/`)).map((o) => o.key.split('/')[2])),
    ];
    await flush(1);
    redisUp = false;
    await flush(2);
    await flush(3);
    // Versions 1 and 2 are gone; the only snapshot left to restore from is version 1's.
    assert.deepEqual(
      [...new Set((await store.list(`${view.name}/v_`)).map((o) => o.key.split('/')[1]))],
      ['v_20260103T000000'],
    );
    assert.deepEqual(await snapshotVersions(), ['v_20260101T000000']);
    assert.equal(await newestSnapshot(store, view.name), 'v_20260101T000000');
    // Once a newer snapshot exists, the old one goes with the next retention.
    redisUp = true;
    await flush(4);
    await flush(5);
    assert.deepEqual(await snapshotVersions(), ['v_20260105T000000']);
  });

  it('redone after a crash halfway, leaves the very same objects', async () => {
    const whole = await newStore();
    {
      const state = await loadState(whole);
      const buffer = new RecordBuffer(() => state.positions);
      fill(buffer);
      await runFlush(ctx(whole), state, buffer, intent);
    }
    const crashed = await newStore();
    {
      // The crash: intent saved, some data objects written, nothing else.
      const state = await loadState(crashed);
      await saveState(crashed, { ...state, pending: intent });
      for (const [key, body] of await snapshotOf(whole))
        if (key.startsWith('raw/') && key.includes('date=2026-01-01'))
          await crashed.put(key, Buffer.from(body, 'base64'));
      // The restart: state with the intent, the same records re-read, the flush redone.
      const restarted = await loadState(crashed);
      assert.deepEqual(restarted.pending, intent);
      const buffer = new RecordBuffer(() => restarted.positions);
      fill(buffer);
      assert.ok(buffer.reaches(restarted.pending!.cut));
      await runFlush(ctx(crashed), restarted, buffer, restarted.pending!);
    }
    assert.deepEqual(await snapshotOf(crashed), await snapshotOf(whole));
  });
});

describe('withinTopics', () => {
  it('drops from an interrupted flush the topics the flusher no longer reads, whose records never come', () => {
    const pending = { version: 'v_1', cut: { a: { '0': 3 }, gone: { '0': 2 } }, startedAt: 'x' };
    assert.deepEqual(withinTopics(pending, ['a', 'b']), {
      intent: { version: 'v_1', cut: { a: { '0': 3 } }, startedAt: 'x' },
      gone: ['gone'],
    });
    assert.equal(withinTopics(pending, ['a', 'gone']).intent, pending);
  });
});

describe('newestSnapshot', () => {
  it('picks the newest snapshot that has its metadata.json, written last', async () => {
    const store = await newStore();
    const at = (v: string, file: string) => store.put(`${view.name}/snapshots/${v}/${file}`, 'x');
    await at('v_20260101T000001', 'entities.parquet');
    await at('v_20260101T000001', 'metadata.json');
    // A crash between the two uploads of the next snapshot.
    await at('v_20260101T000002', 'entities.parquet');
    assert.equal(await newestSnapshot(store, view.name), 'v_20260101T000001');
    await at('v_20260101T000002', 'metadata.json');
    assert.equal(await newestSnapshot(store, view.name), 'v_20260101T000002');
    assert.equal(await newestSnapshot(store, 'other_view'), undefined);
  });
});
