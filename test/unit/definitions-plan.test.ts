// `cli.ts plan` and the change plan behind it: which edits of definitions/fraud.yaml change the
// state layout (a rebuild), leave windows short of history, or touch only the read side; the
// offline columns; the exit codes a script acts on (0, 3, 2).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isoDuration, planChange, spelledDuration } from '../../shared/definitions/change-plan.ts';
import { parseDefinitions } from '../../shared/definitions/load.ts';

const FILE = 'definitions/fraud.yaml';
const ORIGINAL = readFileSync(FILE, 'utf8');
const VIEW = 'user_transaction_features';

/** The reference file with `from` replaced by `to` (which must occur). */
function edited(...pairs: [string, string][]): string {
  let text = ORIGINAL;
  for (const [from, to] of pairs) {
    assert.ok(text.includes(from), `${FILE} changed: update this test's edit ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  }
  return text;
}

function plan(text: string) {
  return planChange(parseDefinitions(ORIGINAL, FILE), parseDefinitions(text, FILE));
}

const COUNT_1H = '      - name: transaction_count_1h\n        aggregation: count\n';
const AS_SUM = '      - name: transaction_count_1h\n        aggregation: sum\n        column: amount\n';

describe('change plan', () => {
  it('needs nothing for the same definitions', () => {
    const p = plan(ORIGINAL);
    assert.equal(p.rebuildNeeded, false);
    assert.equal(p.hash.before, p.hash.after);
    assert.deepEqual(
      p.views.map((v) => [v.view, v.kind, v.changes, v.columns.changed]),
      [[VIEW, 'unchanged', [], false]],
    );
  });

  it('asks for a rebuild when an aggregation changes the layout, with the offline column type', () => {
    const p = plan(edited([COUNT_1H, AS_SUM]));
    const v = p.views[0]!;
    assert.equal(v.kind, 'rebuild');
    assert.notEqual(v.fingerprint.before, v.fingerprint.after);
    assert.deepEqual(v.changes, [
      'feature transaction_count_1h: aggregation count -> sum',
      'feature transaction_count_1h: column none -> amount',
    ]);
    assert.ok(v.columns.before.includes('transaction_count_1h int64'));
    assert.ok(v.columns.after.includes('transaction_count_1h double'));
    // Longest window 30d + lateness 1h (exact features: no tile).
    assert.equal(v.replayMs, (30 * 24 + 1) * 3_600_000);
    assert.equal(p.rebuildNeeded, true);
  });

  it('asks for a rebuild when a feature is added, and names its new offline column', () => {
    const p = plan(
      edited([
        '\nfeature_services:',
        '      - name: min_amount_1h\n        aggregation: min\n        column: amount\n        window: 1h\n\nfeature_services:',
      ]),
    );
    const v = p.views[0]!;
    assert.equal(v.kind, 'rebuild');
    assert.deepEqual(v.changes, ['feature min_amount_1h added']);
    assert.equal(v.columns.after.length, v.columns.before.length + 1);
  });

  it('asks for a rebuild when a tiled window changes its tile', () => {
    const tiled = (tile: string) =>
      parseDefinitions(
        edited([
          '        window: 24h\n        tile: 1h',
          `        window: 24h\n        mode: tiled\n        tile: ${tile}`,
        ]),
        FILE,
      );
    const p = planChange(tiled('1h'), tiled('2h'));
    assert.equal(p.views[0]!.kind, 'rebuild');
    assert.deepEqual(p.views[0]!.changes, ['feature transaction_count_24h: tile 1h -> 2h']);
  });

  it('calls a longer window than the states hold a history rebuild, though the layout is the same', () => {
    const p = plan(edited(['        window: 30d\n', '        window: 60d\n']));
    const v = p.views[0]!;
    assert.equal(v.fingerprint.before, v.fingerprint.after);
    assert.equal(v.kind, 'history');
    assert.ok(
      v.changes.includes('feature avg_transaction_amount_30d: window 30d -> 60d'),
      v.changes.join('\n'),
    );
    assert.ok(v.changes.some((c) => /window 60d, the states hold 30d of history/.test(c)));
    assert.equal(p.rebuildNeeded, true);
  });

  it('needs nothing for a longer window the states already hold, a default, max_age or a feature service', () => {
    const p = plan(
      edited(
        ['        window: 1h\n', '        window: 2h\n'],
        ['        default: 0.0\n', '        default: 1.5\n'],
        ['max_age: 30d', 'max_age: 10d'],
        ['      - user_transaction_features:transaction_count_24h\n', ''],
      ),
    );
    const v = p.views[0]!;
    assert.equal(v.kind, 'read-side');
    assert.equal(v.fingerprint.before, v.fingerprint.after);
    assert.deepEqual(v.changes, [
      'max_age: 30d -> 10d',
      'feature transaction_count_1h: window 1h -> 2h',
      'feature avg_transaction_amount_7d: default 0 -> 1.5',
    ]);
    assert.deepEqual(p.featureServices, { added: [], removed: [], changed: ['fraud_model_v1'] });
    assert.notEqual(p.hash.before, p.hash.after);
    assert.equal(p.rebuildNeeded, false);
    assert.equal(v.replayMs, null);
  });

  it('asks for a source rebuild when the states hold what another topic, field or type gave', () => {
    const topic = plan(edited(['    topic: transactions\n', '    topic: transactions_v2\n'])).views[0]!;
    assert.equal(topic.kind, 'source');
    assert.equal(topic.fingerprint.before, topic.fingerprint.after);
    assert.ok(
      topic.changes.includes(
        'the states hold the offsets of topic transactions: records of transactions_v2 at or below them would be taken for duplicates',
      ),
      topic.changes.join('\n'),
    );
    assert.equal(topic.replayMs, (30 * 24 + 1) * 3_600_000);
    const type = plan(edited(['      merchant_id: string\n', '      merchant_id: int64\n']));
    assert.equal(type.views[0]!.kind, 'source');
    assert.ok(
      type.views[0]!.changes.includes(
        'the states hold the values of column merchant_id as string, not int64',
      ),
    );
    assert.equal(type.rebuildNeeded, true);
    const key = plan(
      edited(
        ['    join_key: user_id\n', '    join_key: account_id\n'],
        ['    key_field: user_id\n', '    key_field: account_id\n'],
        ['      amount: double\n', '      amount: double\n      account_id: int64\n'],
      ),
    );
    assert.equal(key.views[0]!.kind, 'source');
    assert.ok(key.views[0]!.changes.includes('the states hold events grouped by user_id, not account_id'));
    // Two timestamp columns in both files: only the one read as event time changes.
    const twoTimes = (field: string) =>
      edited(
        ['    timestamp_field: event_timestamp\n', `    timestamp_field: ${field}\n`],
        ['      amount: double\n', '      amount: double\n      processed_at: timestamp\n'],
      );
    const time = planChange(
      parseDefinitions(twoTimes('event_timestamp'), FILE),
      parseDefinitions(twoTimes('processed_at'), FILE),
    );
    assert.equal(time.views[0]!.kind, 'source');
    assert.ok(
      time.views[0]!.changes.includes(
        'the states hold event times read from event_timestamp, not processed_at',
      ),
    );
  });

  it('needs nothing when only the decoding changes: timestamp format, a column no feature reads', () => {
    const withCountry = (type: string) =>
      edited(['      amount: double\n', `      amount: double\n      country: ${type}\n`]);
    const p = planChange(
      parseDefinitions(withCountry('string'), FILE),
      parseDefinitions(
        withCountry('int64').replace('    timestamp_format: iso8601\n', '    timestamp_format: epoch_ms\n'),
        FILE,
      ),
    );
    const v = p.views[0]!;
    assert.equal(v.kind, 'read-side');
    assert.deepEqual(v.changes, [
      'source: transactions (topic transactions, json, key user_id, time event_timestamp iso8601) -> transactions (topic transactions, json, key user_id, time event_timestamp epoch_ms)',
      'source columns: user_id int64, event_timestamp timestamp, amount double, country string, merchant_id string -> user_id int64, event_timestamp timestamp, amount double, country int64, merchant_id string',
    ]);
    assert.equal(p.rebuildNeeded, false);
  });

  it('calls a longer allowed lateness a history rebuild (late rows reach past the states), a shorter one read-side', () => {
    const longer = plan(edited(['    allowed_lateness: 1h\n', '    allowed_lateness: 3h\n'])).views[0]!;
    assert.equal(longer.kind, 'history');
    assert.ok(
      longer.changes.some((c) =>
        /allowed_lateness grew: the rows of events up to 3h late .* the 1h of lateness the states hold/.test(
          c,
        ),
      ),
      longer.changes.join('\n'),
    );
    assert.equal(longer.replayMs, (30 * 24 + 3) * 3_600_000);
    const shorter = plan(edited(['    allowed_lateness: 1h\n', '    allowed_lateness: 30m\n'])).views[0]!;
    assert.equal(shorter.kind, 'read-side');
    assert.deepEqual(shorter.changes, ['allowed_lateness: 1h -> 30m', 'ttl: 721h -> 43230m']);
  });

  it('reports added and removed views without asking for a rebuild', () => {
    const renamed = edited(
      ['  - name: user_transaction_features', '  - name: user_tx'],
      ...Array.from({ length: 6 }, (): [string, string] => ['- user_transaction_features:', '- user_tx:']),
    );
    const p = plan(renamed);
    assert.deepEqual(
      p.views.map((v) => [v.view, v.kind]),
      [
        ['user_tx', 'added'],
        [VIEW, 'removed'],
      ],
    );
    assert.equal(p.rebuildNeeded, false);
  });

  it('writes durations for people and for kafka-consumer-groups.sh --by-duration', () => {
    assert.equal(spelledDuration((30 * 24 + 1) * 3_600_000), '30d 1h');
    assert.equal(isoDuration((30 * 24 + 1) * 3_600_000), 'P30DT1H');
    assert.equal(isoDuration(90_000), 'P0DT1M30S');
    assert.equal(isoDuration(2 * 86_400_000), 'P2D');
  });
});

describe('cli.ts plan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-plan-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const cli = (...args: string[]) => {
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'shared/definitions/cli.ts', 'plan', ...args],
      {
        encoding: 'utf8',
      },
    );
    return { code: run.status, out: run.stdout, err: run.stderr };
  };

  it('exits 3 and prints the rebuild with its replay horizon when the layout changes', () => {
    const run = cli(FILE, file('sum.yaml', edited([COUNT_1H, AS_SUM])));
    assert.equal(run.code, 3, run.err);
    assert.match(run.out, /^definitions hash [0-9a-f]{16} -> [0-9a-f]{16}$/m);
    assert.match(run.out, /view user_transaction_features: REBUILD: its state layout changed/);
    assert.match(run.out, /state layout fingerprint [0-9a-f]{8} -> [0-9a-f]{8}/);
    assert.match(run.out, /offline columns .* change: transaction_count_1h int64 -> double/);
    assert.match(
      run.out,
      /replay its source from now - 30d 1h \(kafka-consumer-groups.sh --reset-offsets --by-duration P30DT1H\)/,
    );
    assert.match(run.out, /rebuild needed \(exit 3\)/);
  });

  it('exits 0 when only the read side changes, and --json carries the same plan', () => {
    const run = cli(FILE, file('default.yaml', edited(['        default: 0.0\n', '        default: 2.0\n'])));
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /no rebuild: only reading or expiry changes/);
    assert.match(run.out, /offline columns \(features.parquet, training rows, pushed vectors\): unchanged/);
    const json = cli(FILE, join(dir, 'default.yaml'), '--json');
    assert.equal(json.code, 0);
    assert.equal(JSON.parse(json.out).views[0].kind, 'read-side');
  });

  it('exits 2 naming the problem for a wrong command line or a bad file', () => {
    const one = cli(FILE);
    assert.equal(one.code, 2);
    assert.match(one.err, /plan takes the old and the new definitions file, got 1/);
    assert.match(cli(FILE, FILE, '--mode', 'fast').err, /--mode must be exact or tiled, not fast/);
    assert.equal(cli(FILE, FILE, '--colour').code, 2);
    const bad = cli(FILE, file('bad.yaml', edited(['        window: 24h\n', '        window: 1 day\n'])));
    assert.equal(bad.code, 2);
    assert.match(bad.err, /bad\.yaml:\d+: views\[0\]\.features\[1\]\.window: must be a positive duration/);
    const missing = cli(FILE, join(dir, 'none.yaml'));
    assert.equal(missing.code, 2, missing.err);
    assert.match(missing.err, /none\.yaml/);
  });

  it('prints its usage on --help / -h with exit 0, for plan and for the plain check', () => {
    const plan = cli('--help');
    assert.equal(plan.code, 0, plan.err);
    assert.match(
      plan.out,
      /^usage: npx tsx shared\/definitions\/cli\.ts plan <old definitions> <new definitions>/,
    );
    const check = spawnSync(process.execPath, ['--import', 'tsx', 'shared/definitions/cli.ts', '-h'], {
      encoding: 'utf8',
    });
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /^usage: npx tsx shared\/definitions\/cli\.ts \[<definitions file>\]/);
  });
});
