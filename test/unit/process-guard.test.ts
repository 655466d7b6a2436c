// The leak guard's search and kill (test/support/process-guard.ts), on real processes: a child, and a
// daemon a shell moved to a session of its own, whose parent is no longer this process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { leakMessage, processesOf, reapLeftovers, trackChild } from '../support/process-guard.ts';

/** Whether `pid` runs: it exists and is no zombie (one answers kill(0) until it is reaped). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('process guard', () => {
  it('finds a child and a setsid daemon by the mark they inherited, names them, and kills them', async (t) => {
    const owner = `guardtest.${randomUUID().slice(0, 8)}`;
    const env = { ...process.env, TESSERA_TEST_OWNER: owner };
    const tag = randomUUID().slice(0, 8);
    const child = trackChild(spawn('sleep', ['987'], { env, stdio: 'ignore' }), `sleeper ${tag}`);
    // The shell exits at once; its sleep lives on in a session of its own, parent 1 (or a subreaper).
    const shell = spawn('bash', ['-c', `setsid sleep 988 </dev/null >/dev/null 2>&1 & echo $!`], {
      env,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    shell.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await new Promise((r) => shell.on('exit', r));
    const daemon = Number(out.trim());
    t.after(() => {
      for (const pid of [child.pid!, daemon])
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone, as it should be
        }
    });
    assert.ok(daemon > 0 && alive(daemon), `the daemon did not start: ${out}`);
    // Until setsid has exec'd, the daemon's command line is still setsid's.
    const cmdline = () => readFileSync(`/proc/${daemon}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    for (let i = 0; i < 100 && cmdline() !== 'sleep 988'; i++) await sleep(20);

    const found = processesOf(owner);
    assert.deepEqual(
      found.map((p) => [p.pid, p.args, p.label]),
      [
        [child.pid, 'sleep 987', `sleeper ${tag}`],
        [daemon, 'sleep 988', undefined],
      ].sort((a, b) => Number(a[0]) - Number(b[0])),
    );
    assert.notEqual(found.find((p) => p.pid === daemon)!.ppid, process.pid, 'the daemon is no child of ours');
    assert.deepEqual(
      processesOf(`other.${tag}`).map((p) => p.pid),
      [child.pid],
      'under another mark only the child is found (it descends from us), not the daemon',
    );

    const message = leakMessage('test/unit/x.test.ts', found, 'at the end');
    assert.match(
      message,
      /^2 process\(es\) started by test\/unit\/x\.test\.ts were still running at the end/,
    );
    assert.match(
      message,
      new RegExp(`pid ${child.pid} \\(parent ${process.pid}\\) \\[sleeper ${tag}\\]: sleep 987`),
    );

    const reaped = await reapLeftovers(owner, 200);
    assert.deepEqual(reaped.map((p) => p.pid).sort(), [child.pid, daemon].sort());
    for (let i = 0; i < 50 && (alive(child.pid!) || alive(daemon)); i++) await sleep(20);
    assert.equal(alive(child.pid!), false, 'the child was killed');
    assert.equal(alive(daemon), false, 'the daemon was killed');
    assert.deepEqual(processesOf(owner), []);
  });

  it('waits out a process that is already exiting instead of calling it a leak', async () => {
    const owner = `guardtest.${randomUUID().slice(0, 8)}`;
    const child = spawn('sleep', ['0.3'], {
      env: { ...process.env, TESSERA_TEST_OWNER: owner },
      stdio: 'ignore',
    });
    await new Promise((r) => child.on('spawn', r));
    assert.equal(processesOf(owner).length, 1);
    assert.deepEqual(await reapLeftovers(owner, 5_000), []);
  });
});
