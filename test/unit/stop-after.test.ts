// stopAfter / stopProcess (test/support/stop-after.ts) on real processes: a child a failing test
// started is stopped when the test fails, not at its timeout; one that ignores SIGTERM is killed;
// a stop is a no-op once the test stopped the process itself; a detached group goes whole.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stopProcess } from '../support/stop-after.ts';

/** Whether `pid` runs: it exists and is no zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The first line the child prints. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`exited (${code}) before printing a line: ${out}`)));
  });
}

const killQuietly = (pid: number | undefined) => {
  try {
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
  } catch {
    // gone, as it should be
  }
};

describe('stopAfter', () => {
  it('stops the child of a test that fails right after starting it, at once and not at its timeout', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'stop-after-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const helper = join(import.meta.dirname, '..', 'support', 'stop-after.ts');
    const pidFile = join(dir, 'pid');
    // A test file whose only test starts a 10-minute child, then fails.
    writeFileSync(
      join(dir, 'fails.test.ts'),
      [
        "import { spawn } from 'node:child_process';",
        "import { writeFileSync } from 'node:fs';",
        "import { it } from 'node:test';",
        `import { stopAfter } from ${JSON.stringify(helper)};`,
        "it('fails after a start', { timeout: 600_000 }, (t) => {",
        "  const child = stopAfter(t, spawn('sleep', ['600'], { stdio: 'ignore' }));",
        `  writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));`,
        "  throw new Error('injected failure');",
        '});',
      ].join('\n'),
    );
    const started = Date.now();
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(dir, 'fails.test.ts')], {
      encoding: 'utf8',
      // Without the runner's NODE_TEST_CONTEXT, which makes a file report to it in its own format.
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')),
      timeout: 30_000,
      killSignal: 'SIGKILL',
    });
    const seconds = (Date.now() - started) / 1000;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    t.after(() => killQuietly(pid));
    assert.equal(
      run.error,
      undefined,
      `the file still ran after ${seconds.toFixed(0)} s: its child was not stopped`,
    );
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /not ok 1 - fails after a start[\s\S]*injected failure/);
    assert.ok(seconds < 20, `the file took ${seconds.toFixed(1)} s`);
    assert.equal(alive(pid), false, `the child ${pid} still runs`);
  });

  it('sends SIGKILL after the grace to a child that ignores SIGTERM', { timeout: 10_000 }, async (t) => {
    const child = spawn('bash', ['-c', "trap '' TERM; echo up; exec sleep 600"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    t.after(() => killQuietly(child.pid));
    await firstLine(child);
    const started = Date.now();
    await stopProcess(child, { graceMs: 300 });
    assert.equal(child.signalCode, 'SIGKILL');
    assert.ok(Date.now() - started >= 290, 'killed before its grace was over');
  });

  it('does nothing for a process the test stopped itself, and two stops both resolve', async (t) => {
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    t.after(() => killQuietly(child.pid));
    const exited = new Promise((r) => child.once('exit', r));
    const first = stopProcess(child);
    const second = stopProcess(child);
    await Promise.all([first, second, exited]);
    assert.equal(child.signalCode, 'SIGTERM');
    const sent: string[] = [];
    const kill = child.kill.bind(child);
    child.kill = (signal?: NodeJS.Signals | number) => {
      sent.push(String(signal));
      return kill(signal);
    };
    await stopProcess(child);
    assert.deepEqual(sent, [], 'signalled an exited process');
  });

  it('with group: true also ends what the detached child started (as flock and its command)', async (t) => {
    const child = spawn('bash', ['-c', 'sleep 600 & echo $!; wait'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    });
    const grandchild = Number(await firstLine(child));
    t.after(() => {
      killQuietly(child.pid);
      killQuietly(grandchild);
    });
    assert.ok(alive(grandchild));
    await stopProcess(child, { group: true });
    for (let i = 0; i < 50 && alive(grandchild); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(grandchild), false, 'the sleep the child started still runs');
  });
});
