// Stops a process a test started once the test is over, passed or failed. A stop written at the end
// of a test body never ran when an assertion failed first: the child then ran on, and the file's
// process waited for it until the test's timeout. docs/testing.md says when to use which.
import type { ChildProcess } from 'node:child_process';

/** What the start helpers return (startIngestor, startServer, startFlusher), or a bare child. */
export type Stoppable = ChildProcess | { child: ChildProcess };

/**
 * Where the stop is registered: a test's context (`t`, whose `after` runs when that test ends), or
 * node:test's `after` called in a `describe` body (runs when the suite ends).
 */
export type StopRegistrar = { after(fn: () => Promise<void>): void } | ((fn: () => Promise<void>) => void);

/** How long a process gets to exit after SIGTERM before it is sent SIGKILL. */
export const STOP_GRACE_MS = 5_000;

const childOf = (p: Stoppable): ChildProcess => ('child' in p ? p.child : p);

/** Whether the child has exited (or never started: a failed spawn has no pid and no exit). */
function gone(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

export interface StopOptions {
  /** How long the process gets to exit after SIGTERM before SIGKILL. Default STOP_GRACE_MS. */
  graceMs?: number;
  /**
   * Signal the process group the child leads (it was spawned with `detached: true`), not the child
   * alone: for a child whose own children hold what matters (flock and the command it runs). The
   * group is sent SIGKILL even when the child has exited already. Default false.
   */
  group?: boolean;
}

/**
 * Sends SIGTERM, then SIGKILL if the process has not exited after the grace, and resolves once it
 * has exited. Does nothing for a process that has exited already, so a test may stop (or kill) it
 * itself first, e.g. to restart it mid-test, and the registered stop is then a no-op.
 */
export async function stopProcess(p: Stoppable, options: StopOptions = {}): Promise<void> {
  const child = childOf(p);
  const { graceMs = STOP_GRACE_MS, group = false } = options;
  const signal = (name: NodeJS.Signals) => {
    if (!group) return void child.kill(name);
    try {
      process.kill(-child.pid!, name);
    } catch {
      // ESRCH: nothing of the group is left
    }
  };
  if (gone(child)) {
    if (group && child.pid !== undefined) signal('SIGKILL');
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signal('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  try {
    if ((await Promise.race([exited, late])) === 'late') {
      signal('SIGKILL');
      await exited;
    }
  } finally {
    clearTimeout(timer);
  }
  // What the group's leader left behind.
  if (group) signal('SIGKILL');
}

/**
 * Registers `stopProcess(p)` with `t` and returns `p`: call it on the line that starts the process,
 * `const ingestor = stopAfter(t, startIngestor(run));`, so the process is stopped whichever
 * assertion fails. A stop the test does itself stays as it is (it asserts the exit code).
 */
export function stopAfter<T extends Stoppable>(t: StopRegistrar, p: T, options: StopOptions = {}): T {
  const stop = () => stopProcess(p, options);
  if (typeof t === 'function') t(stop);
  else t.after(stop);
  return p;
}
