// scripts/stack lets one install, start, stop or reset run at a time, through a lock in the cache
// that the checkouts share. These run against the started stack and never take the lock from it:
// a start while the stack is up is a no-op.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { trackChild } from '../support/process-guard.ts';
import { stopAfter } from '../support/stop-after.ts';

const root = join(import.meta.dirname, '..', '..');
const cache = process.env.TESSERA_CACHE ?? join(homedir(), '.cache', 'tessera');
const lock = join(cache, 'stack.lock');

/** Runs `command` for test `t`: its process group is ended when the test ends, whatever failed. */
function run(t: TestContext, command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  // Its own process group, so that a holder and its sleep are ended together.
  const child = trackChild(
    spawn(command, args, { cwd: root, env: { ...process.env, ...env }, detached: true }),
    `${command} ${args.join(' ')}`,
  );
  stopAfter(t, child, { group: true });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Holds the lock as another scripts/stack would, until released; resolves once it is held. */
async function holdLock(t: TestContext): Promise<{ release(): void }> {
  const holder = run(t, 'flock', [lock, 'bash', '-c', 'echo held; exec sleep 60']);
  for (let i = 0; i < 100 && !holder.output().includes('held'); i++)
    await new Promise((resolve) => setTimeout(resolve, 50));
  assert.match(holder.output(), /held/, 'the test could not take the lock: is a scripts/stack running?');
  return { release: () => process.kill(-holder.child.pid!, 'SIGKILL') };
}

describe('scripts/stack lock', { timeout: 60_000 }, () => {
  it('is not held by the running services (they outlive the start that took it)', async (t) => {
    const probe = run(t, 'flock', ['-n', lock, 'true']);
    assert.equal(await probe.exited, 0, `${lock} is held while no scripts/stack runs`);
  });

  it('makes a second start wait for the first, and give up past TESSERA_STACK_LOCK_WAIT_S', async (t) => {
    let holder = await holdLock(t);
    try {
      const refused = run(t, 'bash', ['scripts/stack', 'start'], { TESSERA_STACK_LOCK_WAIT_S: '1' });
      assert.equal(await refused.exited, 1, refused.output());
      assert.match(refused.output(), /waiting up to 1s for another scripts\/stack/);
      assert.match(refused.output(), /another scripts\/stack still holds .*stack\.lock after 1s/);
      assert.doesNotMatch(refused.output(), /already running/, 'it did not run without the lock');
    } finally {
      holder.release();
    }

    holder = await holdLock(t);
    const waiting = run(t, 'bash', ['scripts/stack', 'start'], { TESSERA_STACK_LOCK_WAIT_S: '30' });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.doesNotMatch(waiting.output(), /already running/, 'it waits while the lock is held');
    holder.release();
    assert.equal(await waiting.exited, 0, waiting.output());
    assert.match(waiting.output(), /start: already running, nothing to do/);
  });
});
