// scripts/lib/common.sh's pid_alive, run by bash: a pid file naming a process that is not the
// stack's is stale, but a service started a moment ago is still the shell forked for it (its
// command line the caller's) until it execs: that one is alive, not stale. The race once failed a
// private broker's start as "broker process exited during start-up".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const COMMON = join(import.meta.dirname, '../../scripts/lib/common.sh');

/**
 * Runs `script` in bash with common.sh sourced and DIR set to `dir`, by environment: a forked
 * subshell's command line (bash's own) must not name the directory.
 */
function bash(dir: string, script: string): { out: string; err: string } {
  const run = spawnSync('bash', ['-c', `source "${COMMON}"; ${script}`], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, DIR: dir },
  });
  assert.equal(run.status, 0, run.stderr);
  return { out: run.stdout, err: run.stderr };
}

describe('stack pid files (scripts/lib/common.sh pid_alive)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pid-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("calls a live process whose command line is not the stack's stale, and removes its file", () => {
    const { out, err } = bash(
      dir,
      'sleep 20 & echo $! >"$DIR/a.pid"; if pid_alive "$DIR/a.pid"; then echo alive; else echo stale; fi; ' +
        '[[ -f "$DIR/a.pid" ]] && echo kept || echo removed; kill $!',
    );
    assert.deepEqual(out.trim().split('\n'), ['stale', 'removed']);
    assert.match(err, /stale pid file .*a\.pid/);
  });

  it('calls a process forked a moment ago, before its exec names the stack, alive', () => {
    // The subshell's command line is this bash's until it execs, 0.1 s later, a command naming DIR.
    const { out, err } = bash(
      dir,
      '( sleep 0.1; exec bash -c "sleep 5; true" "$DIR/service" ) & echo $! >"$DIR/b.pid"; ' +
        'if pid_alive "$DIR/b.pid"; then echo alive; else echo stale; fi; kill $!',
    );
    assert.equal(out.trim(), 'alive');
    assert.doesNotMatch(err, /stale pid file/);
  });
});
