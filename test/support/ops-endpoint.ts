// The ops endpoints (/health, /ready, /metrics) of an ingestor or flusher child process, found from
// the "<service> ready (metrics on <host>:<port>)" line it logs once it listens.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';

/** `http://127.0.0.1:<port>` of the process's ops server; throws when the line is not logged yet. */
export function opsUrl(output: string): string {
  // The port right before the line's ")": within the line, so a `--trace-gc` line that follows
  // (`[pid:0x...] ...`) cannot lend it a colon and a number.
  const port = /metrics on \S*?:(\d+)\)/.exec(output)?.[1];
  assert.ok(port, `no "metrics on <host>:<port>" line in the process's output yet:\n${output}`);
  return `http://127.0.0.1:${port}`;
}

/** The process's /metrics text. */
export async function scrapeMetrics(output: string): Promise<string> {
  return (await fetch(`${opsUrl(output)}/metrics`)).text();
}

/** Fails the test when the process has exited (`when`: e.g. "during the outage"). */
export function assertStillUp(
  proc: { child: ChildProcess; output(): string },
  when = 'before the test was done',
): void {
  assert.equal(proc.child.exitCode, null, `the process exited ${when}:\n${proc.output()}`);
}
