// A point-in-time run that cannot succeed says so before any work, and one that stops half-way
// leaves nothing behind: no spill files, no half-written training set, the previous one intact.
// Before: a wrong --store gave a training set of zeros (exit 0), an unwritable --out failed only
// after the whole run, --out naming the labels overwrote them, and Ctrl-C left spill files and a
// partial CSV.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import type { Definitions } from '../../../shared/definitions/schema.ts';
import { planView } from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { LocalObjectStore, type ObjectStore } from '../../../shared/offline/object-store.ts';
import { rawBatchFromRecords, writeRawLog } from '../../../shared/offline/raw-log.ts';
import { readLabels } from '../../../shared/pit/labels.ts';
import { retrieveHistorical } from '../../../shared/pit/retrieve.ts';
import { FeatureTable, writeTrainingSet } from '../../../shared/pit/training-output.ts';
import { type FraudEvent, generateFraudEvents } from '../../../shared/synth/fraud-events.ts';

describe('point-in-time run safety', () => {
  let dir: string;
  let store: LocalObjectStore;
  let definitions: Definitions;
  let labels: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-safety-'));
    store = new LocalObjectStore(join(dir, 'store'));
    definitions = loadDefinitionsFile('definitions/fraud.yaml');
    const events = generateFraudEvents({ events: 4000, seed: 5, users: 50 });
    const source = definitions.views[0]!.source;
    const position = (r: FraudEvent) => ({ partition: r.partition, offset: r.offset });
    // One object per day and per part: many objects, so a run can be stopped between two.
    for (let i = 0; i < events.length; i += 1000)
      await writeRawLog(
        store,
        source,
        rawBatchFromRecords(source, events.slice(i, i + 1000), position),
        `p${i}`,
      );
    labels = join(dir, 'labels.csv');
    writeFileSync(
      labels,
      `user_id,event_timestamp\n${events.map((e) => `${e.user_id},${e.event_timestamp + 1}`).join('\n')}\n`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The store, counting reads (and stopping the run at the `stopAt`-th when given a controller). */
  function watched(inner: ObjectStore, stop?: { at: number; controller: AbortController }) {
    let gets = 0;
    let lists = 0;
    const wrapped: ObjectStore = {
      location: inner.location,
      put: (k, b) => inner.put(k, b),
      delete: (k) => inner.delete(k),
      list: (p) => {
        lists++;
        return inner.list(p);
      },
      get: (k) => {
        gets++;
        if (stop && gets === stop.at) stop.controller.abort(new Error('stopped by test'));
        return inner.get(k);
      },
    };
    return { store: wrapped, reads: () => ({ gets, lists }) };
  }

  it('refuses a store without a raw log of the source, naming the store and the source', async () => {
    for (const where of [join(dir, 'no-such-dir'), join(dir, 'store', 'raw')]) {
      await assert.rejects(
        retrieveHistorical({
          store: new LocalObjectStore(where),
          definitions,
          entities: labels,
          out: join(dir, 'empty.parquet'),
          progress: false,
        }),
        (e) =>
          isTesseraError(e, 'NOT_FOUND') &&
          e.message.includes(`offline store ${where} has no raw log of source transactions`) &&
          /check --store/.test(e.message),
      );
    }
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('empty')),
      [],
    );
  });

  it('refuses an --out it cannot write, or that is the labels file, before reading anything', async () => {
    const cases = [
      { out: join(dir, 'missing-dir', 'train.parquet'), why: /the directory .*missing-dir does not exist/ },
      { out: join(dir, 'train.json'), why: /use a \.parquet or \.csv file name/ },
      { out: labels, why: /is the entity dataframe \(--entities\)/ },
    ];
    mkdirSync(join(dir, 'a-dir.csv'));
    cases.push({ out: join(dir, 'a-dir.csv'), why: /is a directory/ });
    const before = readFileSync(labels, 'utf8');
    for (const { out, why } of cases) {
      const { store: counted, reads } = watched(store);
      await assert.rejects(
        retrieveHistorical({ store: counted, definitions, entities: labels, out, progress: false }),
        (e) =>
          isTesseraError(e, 'INVALID_ARGUMENT') &&
          e.message.startsWith(`--out ${out}: `) &&
          why.test(e.message),
      );
      assert.deepEqual(reads(), { gets: 0, lists: 0 }, `${out}: nothing read`);
    }
    assert.equal(readFileSync(labels, 'utf8'), before, 'the labels are untouched');
  });

  it('refuses a --temp-dir that is missing, not a directory or not writable, before reading anything', async () => {
    // It failed once the labels were read and the raw log listed, as a bare ENOENT from mkdtemp
    // (exit 1), and only when the run had more than one shard.
    const readOnly = join(dir, 'read-only');
    mkdirSync(readOnly, { mode: 0o555 });
    const cases = [
      { tempDir: join(dir, 'no-such-temp'), why: /does not exist; create it first/ },
      { tempDir: labels, why: /is not a directory/ },
      { tempDir: '', why: /does not exist/ },
    ];
    // root may write anywhere: the mode bits are not checked for it.
    if (process.getuid?.() !== 0) cases.push({ tempDir: readOnly, why: /is not writable/ });
    for (const { tempDir, why } of cases) {
      const { store: counted, reads } = watched(store);
      await assert.rejects(
        retrieveHistorical({
          store: counted,
          definitions,
          entities: labels,
          out: join(dir, 'temp-dir.parquet'),
          tempDir,
          shards: 4,
          progress: false,
        }),
        (e) =>
          isTesseraError(e, 'INVALID_ARGUMENT') &&
          e.message.startsWith(`--temp-dir ${tempDir}: `) &&
          why.test(e.message),
      );
      assert.deepEqual(reads(), { gets: 0, lists: 0 }, `${tempDir}: nothing read`);
    }
    const spill = join(dir, 'spill');
    mkdirSync(spill);
    const summary = await retrieveHistorical({
      store,
      definitions,
      entities: labels,
      out: join(dir, 'temp-dir.parquet'),
      tempDir: spill,
      shards: 4,
      progress: false,
    });
    assert.equal(summary.shards, 4);
    assert.deepEqual(readdirSync(spill), [], 'its spill directory removed');
  });

  for (const format of ['csv', 'parquet'] as const)
    it(`stopped (${format}): rejects with the signal's reason, removes its spill files, keeps the previous output`, async () => {
      const out = join(dir, `train.${format}`);
      await retrieveHistorical({ store, definitions, entities: labels, out, progress: false });
      const previous = readFileSync(out);
      for (const at of [2, 4]) {
        const temp = join(dir, `spill-${format}-${at}`);
        mkdirSync(temp);
        const controller = new AbortController();
        const { store: stopping } = watched(store, { at, controller });
        await assert.rejects(
          retrieveHistorical({
            store: stopping,
            definitions,
            entities: labels,
            out,
            shards: 3,
            tempDir: temp,
            progress: false,
            signal: controller.signal,
          }),
          /stopped by test/,
        );
        assert.deepEqual(readdirSync(temp), [], 'no spill files left');
        assert.deepEqual(readFileSync(out), previous, 'the previous training set is intact');
        assert.deepEqual(
          readdirSync(dir).filter((f) => f.includes('.tmp-')),
          [],
          'no partial output',
        );
      }
    });

  for (const format of ['csv', 'parquet'] as const)
    it(`a training set stopped while being written (${format}) leaves no file, the previous one intact`, async () => {
      const frame = await readLabels(labels, [{ joinKey: 'user_id', keyType: 'int64' }]);
      const view = definitions.views[0]!;
      const features = new FeatureTable(planView(view), view.source, frame.n);
      const out = join(dir, `written.${format}`);
      writeFileSync(out, 'a previous run');
      const controller = new AbortController();
      controller.abort(new Error('stopped by test'));
      // 4,000 rows: the CSV writer checks the signal after its first 64 KiB.
      await assert.rejects(writeTrainingSet(out, frame, features, controller.signal), /stopped by test/);
      assert.equal(readFileSync(out, 'utf8'), 'a previous run');
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.includes(`written.${format}`) && f !== `written.${format}`),
        [],
        'no partial output',
      );
      await writeTrainingSet(out, frame, features);
      assert.notEqual(readFileSync(out, 'utf8'), 'a previous run', 'replaced once complete');
    });
});
