// The producer CLI's answers to a wrong command line and to brokers it cannot reach: exit 2 with
// the flag named for the first (every error exited 1, and -h was an "unexpected argument"), exit 1
// within seconds for the second, saying which setting to check (kafkajs' last words were only
// "Connection error: connect ECONNREFUSED"). No broker is needed: the port is a closed one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

function producer(...argv: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'services/producer/main.ts', ...argv], {
    encoding: 'utf8',
    env: { ...process.env, TESSERA_KAFKA_BROKERS: '127.0.0.1:9' },
    timeout: 60_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'tessera-producer-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The reference definitions copied to a directory of their own, with `line` added to the source. */
function elsewhere(line?: string): string {
  const file = join(dir, `fraud-${randomUUID()}.yaml`);
  const text = readFileSync('definitions/fraud.yaml', 'utf8');
  writeFileSync(
    file,
    line === undefined ? text : text.replace('    format: json\n', `    format: json\n    ${line}\n`),
  );
  return file;
}

describe('producer CLI', () => {
  it('-h and --help print the usage, exit 0, even beside a bad flag', () => {
    for (const argv of [['-h'], ['--help'], ['--rate', '-5', '--help']]) {
      const r = producer(...argv);
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^usage: npx tsx services\/producer\/main\.ts/);
    }
  });

  it('a wrong command line exits 2 and names the flag', () => {
    const cases: [string[], RegExp][] = [
      [['--rate', '-5'], /--rate: expected an integer >= 0, got "-5"/],
      [['--events', 'NaN'], /--events: expected an integer >= 0 and <= 100000000, got "NaN"/],
      [['--format', 'xml'], /--format: expected one of json, avro, avro-confluent, got "xml"/],
      [['--bad-fraction', '2'], /--bad-fraction: expected a number between 0 and 1/],
      [['--source', 'nope'], /--source nope: no such source; declared: transactions/],
      [['--definitions', 'no/such.yaml'], /cannot read definitions file no\/such\.yaml/],
      [['--no-such-flag', '1'], /unknown flag --no-such-flag/],
      [['stray'], /stray: unexpected argument/],
      // A trillion failed with a raw RangeError; seeds past 32 bits repeated smaller ones.
      [['--events', '1000000000000'], /--events: expected an integer >= 0 and <= 100000000/],
      [['--seed', '4294967297'], /--seed: expected an integer >= 0 and <= 4294967295/],
      [['--topic', 'bad topic!'], /--topic: expected a Kafka topic name/],
      [['--topic', '..'], /--topic: expected a Kafka topic name/],
      // Within the reference view's 1h lateness, 'late' messages would be applied as transactions.
      [
        ['--bad-fraction', '0.1', '--late-by', '1h'],
        /--late-by 1h is within the allowed_lateness \(1h\) of source transactions's views: its 'late' messages would be applied; give more than 1h/,
      ],
      // Registering a schema file that is not there: a raw ENOENT, exit 1.
      [
        [
          '--format',
          'avro-confluent',
          '--schema-registry-url',
          'http://127.0.0.1:9',
          '--definitions',
          elsewhere('avro_schema: nowhere.avsc'),
        ],
        /cannot read Avro schema file .*nowhere\.avsc \(source transactions\)/,
      ],
    ];
    for (const [argv, message] of cases) {
      const r = producer(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('finds the shipped Avro schema for a source without one, wherever the definitions file is', () => {
    // It was looked for beside the definitions file: exit 2, "cannot read Avro schema file".
    const r = producer('--events', '10', '--rate', '0', '--format', 'avro', '--definitions', elsewhere());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot reach Kafka/);
  });

  it('says that --schema-id and --schema-dir do nothing for JSON', () => {
    const r = producer('--events', '10', '--rate', '0', '--schema-id', '42');
    assert.match(r.stderr, /--schema-id and --schema-dir are for avro-confluent; ignored for json/);
  });

  it('brokers that cannot be reached: exit 1 within seconds, naming the setting to check', () => {
    const started = performance.now();
    const r = producer('--events', '10', '--rate', '0', '--topic', 'unreachable');
    assert.ok(performance.now() - started < 45_000, 'no hang');
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /producer: cannot reach Kafka at 127\.0\.0\.1:9 \(.*ECONNREFUSED.*\); check --kafka-brokers \(TESSERA_KAFKA_BROKERS\)/,
    );
  });
});
