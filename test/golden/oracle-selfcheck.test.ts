// The oracle is only worth comparing against if it is right: run its own hand-computed checks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { pythonBin } from '../support/oracle.ts';

const CHECKS = 'test/oracle/test_oracle.py';

it('the Python oracle passes its hand-computed self-checks', () => {
  // The checks its file defines, counted from the file: "0 passed, 0 failed" (none found, or a
  // main that runs nothing) also matches the summary line alone.
  const names = [...readFileSync(CHECKS, 'utf8').matchAll(/^def (test_\w+)\(/gm)].map((m) => m[1]!);
  assert.ok(names.length > 0, `no test_ function in ${CHECKS}`);
  const run = spawnSync(pythonBin(), [CHECKS], { encoding: 'utf8' });
  assert.equal(run.status, 0, `${pythonBin()} ${CHECKS} failed:\n${run.stdout}\n${run.stderr}`);
  const summary = /\b(\d+) passed, 0 failed/.exec(run.stdout);
  assert.ok(summary, `no summary line:\n${run.stdout}`);
  assert.ok(
    Number(summary[1]) >= names.length,
    `${summary[1]} of ${names.length} checks passed:\n${run.stdout}`,
  );
  for (const name of names)
    assert.match(run.stdout, new RegExp(`^ok +${name}$`, 'm'), `${name} did not pass`);
});
