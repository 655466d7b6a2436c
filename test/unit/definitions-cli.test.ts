// shared/definitions/cli.ts as a user runs it: exit 0 and the summary for a good file, 1 and the
// loader's errors for a bad one, 2 and the usage for a wrong command line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'tessera-defs-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]) {
  const env = { ...process.env };
  delete env.TESSERA_DEFINITIONS;
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'shared/definitions/cli.ts', ...args], {
    encoding: 'utf8',
    env,
  });
  return { code: run.status, out: run.stdout, err: run.stderr };
}

describe('definitions cli', () => {
  it('prints the features and the hash of a good file, exit 0', () => {
    const run = cli('definitions/fraud.yaml');
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /^definitions\/fraud\.yaml: project fraud, definitions hash [0-9a-f]{16}\n/);
    assert.match(
      run.out,
      /user_transaction_features:distinct_merchant_count_7d: count_distinct\(merchant_id\) over 1w, exact/,
    );
    assert.match(cli('--mode', 'tiled', 'definitions/fraud.yaml').out, /over 1h, tiled tile 5m/);
  });

  it('prints the errors of a bad file or the reason it cannot be read, exit 1', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      readFileSync('definitions/fraud.yaml', 'utf8').replace('window: 1h\n', 'window: 1.5h\n'),
    );
    const run = cli(bad);
    assert.equal(run.code, 1);
    assert.match(run.err, /bad\.yaml:\d+: views\[0\]\.features\[0\]\.window: must be a positive duration/);
    const missing = cli(join(dir, 'missing.yaml'));
    assert.equal(missing.code, 1);
    assert.match(missing.err, /cannot read definitions file .*missing\.yaml \(ENOENT\)/);
  });

  it('checks the Avro schema files the sources name, exit 1 for a missing one', () => {
    const avro = (schema: string) => {
      const file = join(dir, `avro-${schema.replace(/\W/g, '_')}.yaml`);
      writeFileSync(
        file,
        readFileSync('definitions/fraud.yaml', 'utf8').replace(
          '    format: json\n',
          `    format: avro\n    avro_schema: ${schema}\n`,
        ),
      );
      return cli(file);
    };
    const good = avro(join(process.cwd(), 'definitions/schemas/transaction.avsc'));
    assert.equal(good.code, 0, good.err);
    assert.match(good.out, /source transactions: Avro schema .*transaction\.avsc holds its columns/);
    const missing = avro('nowhere.avsc');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /cannot read Avro schema file .*nowhere\.avsc \(source transactions\)/);
  });

  it('refuses a wrong command line with the usage, exit 2', () => {
    // --mode=fast was ignored (exit 0, the file's own modes); an unknown option was a stack trace.
    for (const [args, pattern] of [
      [['--mode=fast', 'definitions/fraud.yaml'], /--mode must be exact or tiled, not fast/],
      [['--bogus', 'definitions/fraud.yaml'], /Unknown option '--bogus'/],
      [['definitions/fraud.yaml', 'other.yaml'], /one definitions file at a time/],
    ] as const) {
      const run = cli(...args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.err}`);
      assert.match(run.err, pattern);
      assert.match(run.err, /usage: npx tsx shared\/definitions\/cli\.ts/);
      assert.doesNotMatch(run.err, /\n\s+at /, 'no stack trace');
    }
  });
});
