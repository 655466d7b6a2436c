// services/flusher/restore.ts's command line, before it reaches any service: --help prints the
// usage (exit 0), an unknown flag says which and prints it (exit 2), not a stack trace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

function restore(...args: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'services/flusher/restore.ts', ...args], {
    encoding: 'utf8',
  });
  return { code: run.status, out: run.stdout, err: run.stderr };
}

describe('restore cli', () => {
  it('prints its usage for --help and -h, exit 0', () => {
    for (const flag of ['--help', '-h']) {
      const run = restore(flag);
      assert.equal(run.code, 0, run.err);
      assert.match(run.out, /^usage: npx tsx services\/flusher\/restore\.ts --view <view>/);
      assert.match(run.out, /--reset-offsets/);
    }
  });

  it('names an unknown flag and prints the usage, exit 2, without a stack trace', () => {
    const run = restore('--view', 'v', '--bogus');
    assert.equal(run.code, 2);
    assert.match(run.err, /Unknown option '--bogus'/);
    assert.match(run.err, /usage: npx tsx services\/flusher\/restore\.ts/);
    assert.doesNotMatch(run.err, /\n\s+at /);
  });
});
