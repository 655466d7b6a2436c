// Files and directories a run names for its pid (spill directories, the hidden output being
// written) cannot be removed by a run killed outright (SIGKILL, the OOM killer): a later run removes
// those whose process is gone. One rule for all of them: only when no process has that pid.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Whether a process exists (EPERM: it does, another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface DeadRunCleanup {
  removed: string[];
  failed: { path: string; error: string }[];
}

/**
 * Removes the entries of `dir` whose name matches `pattern` (its first group is the owner's pid)
 * and whose owner pid names no process. While that pid is in use (its run still going, or the
 * number reused by another process) the entry stays, so a live run's files are never touched; a
 * reused pid only delays the removal to a later run. This process's own pid is skipped too
 * (another run in this process may own it). A missing `dir` removes nothing. Returns what was
 * removed and what could not be (e.g. another user's), for the caller to log.
 */
export function removeDeadRunEntries(
  dir: string,
  pattern: RegExp,
  alive: (pid: number) => boolean = processAlive,
): DeadRunCleanup {
  const result: DeadRunCleanup = { removed: [], failed: [] };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return result; // a missing directory is reported by whoever needs it
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1] ?? Number.NaN);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    const path = join(dir, name);
    try {
      rmSync(path, { recursive: true, force: true });
      result.removed.push(path);
    } catch (error) {
      result.failed.push({ path, error: (error as Error).message });
    }
  }
  return result;
}
