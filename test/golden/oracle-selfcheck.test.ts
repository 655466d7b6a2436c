// The oracle is only worth comparing against if it is right: run its own hand-computed checks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { pythonBin } from '../support/oracle.ts';

it('the Python oracle passes its hand-computed self-checks', () => {
  const run = spawnSync(pythonBin(), ['test/oracle/test_oracle.py'], { encoding: 'utf8' });
  assert.equal(
    run.status,
    0,
    `${pythonBin()} test/oracle/test_oracle.py failed:\n${run.stdout}\n${run.stderr}`,
  );
  assert.match(run.stdout, /\b(\d+) passed, 0 failed/);
});
