// shared/graceful-stop.ts in a child process (it exits the process): a fatal failure reported while
// a signal's graceful stop is running must still end the process with exit code 1, not 0.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';

function run(script: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      timeout: 20_000,
    });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

const prelude = `
import { pino } from 'pino';
import { stopOnSignals } from './shared/graceful-stop.ts';
const fail = stopOnSignals(pino({ level: 'silent' }), {
  stopping: 'stopping', graceMs: 10_000, late: 'late',
  stop: () => new Promise((resolve) => setTimeout(resolve, 300)),
});
setInterval(() => {}, 1000);
`;

test('a signal alone stops with exit code 0', async () => {
  const { code, output } = await run(`${prelude} process.kill(process.pid, 'SIGTERM');`);
  assert.equal(code, 0, output);
});

test('a fatal failure during a signal stop exits 1', async () => {
  const { code, output } = await run(
    `${prelude} process.kill(process.pid, 'SIGTERM'); setTimeout(() => fail('consumer crashed for good'), 100);`,
  );
  assert.equal(code, 1, output);
});

test('a stop that fails is logged and exits 1, not an unhandled rejection', async () => {
  const { code, output } = await run(`
import { pino } from 'pino';
import { stopOnSignals } from './shared/graceful-stop.ts';
stopOnSignals(pino(), {
  stopping: 'stopping', graceMs: 10_000, late: 'late',
  stop: () => Promise.reject(new Error('disconnect refused')),
});
setInterval(() => {}, 1000);
process.kill(process.pid, 'SIGTERM');`);
  assert.equal(code, 1, output);
  assert.match(output, /"msg":"the stop failed: the process exits 1"/);
  assert.match(output, /disconnect refused/);
  assert.match(output, /"msg":"stopped"/);
  assert.doesNotMatch(output, /UnhandledPromiseRejection|triggerUncaughtException/);
});
