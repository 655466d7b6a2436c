// The producer CLI's answers to a wrong command line and to brokers it cannot reach: exit 2 with
// the flag named for the first (every error exited 1, and -h was an "unexpected argument"), exit 1
// within seconds for the second, saying which setting to check (kafkajs' last words were only
// "Connection error: connect ECONNREFUSED"). No broker is needed: the port is a closed one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

function producer(...argv: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'services/producer/main.ts', ...argv], {
    encoding: 'utf8',
    env: { ...process.env, TESSERA_KAFKA_BROKERS: '127.0.0.1:9' },
    timeout: 60_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
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
      [['--events', 'NaN'], /--events: expected an integer >= 0, got "NaN"/],
      [['--format', 'xml'], /--format: expected one of json, avro, avro-confluent, got "xml"/],
      [['--bad-fraction', '2'], /--bad-fraction: expected a number between 0 and 1/],
      [['--source', 'nope'], /--source nope: no such source; declared: transactions/],
      [['--definitions', 'no/such.yaml'], /cannot read definitions file no\/such\.yaml/],
      [['--no-such-flag', '1'], /unknown flag --no-such-flag/],
      [['stray'], /stray: unexpected argument/],
    ];
    for (const [argv, message] of cases) {
      const r = producer(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
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
