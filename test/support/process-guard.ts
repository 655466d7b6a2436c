// Makes sure no process a test file started outlives it, and that one which would is named. Every
// process started from a test file (child, grandchild, a broker a shell script put in a session of
// its own) inherits TESSERA_TEST_OWNER from the file's environment; after the file's last hook the
// guard finds any still running (by that variable, or as a descendant), kills it and fails the file
// with its pid and command line. Imported by the test/support helpers that start processes, and by
// scripts/test for every file (`--import`). docs/testing.md describes it.
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, type Dirent, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const OWNER_VAR = 'TESSERA_TEST_OWNER';
/** How long processes found at the end get to finish exiting on their own (a SIGTERM just sent). */
const GRACE_MS = 5_000;

/** What started each tracked pid ("ingestor (startIngestor)"), to name it in a leak report. */
const labels = new Map<number, string>();

/** A process found running, as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Its command line, arguments joined by spaces. */
  args: string;
  /** What the helpers recorded for it, when they started it. */
  label?: string;
}

/** The test file this process runs (relative to the checkout), or null when it runs none. */
function testFile(): string | null {
  const main = process.argv[1] ?? '';
  // The runner's own process (node --test) imports this too (scripts/test's --import): it runs no
  // test file, its files run in child processes of their own.
  if (!/\.test\.[cm]?[jt]s$/.test(main) || process.execArgv.includes('--test')) return null;
  return relative(ROOT, main);
}

const FILE = testFile();
/** This file process's mark: `<pid>.<random>`, unique even when a pid is reused. */
const TOKEN = `${process.pid}.${randomUUID().slice(0, 8)}`;

/**
 * Records what started `child` (shown if it outlives the test file) and returns it. Untracked
 * processes are found too; the label only names them better.
 */
export function trackChild<T extends ChildProcess>(child: T, label: string): T {
  if (child.pid !== undefined) trackPid(child.pid, label);
  return child;
}

/** Records what a process started out of sight (a daemon whose pid a script wrote to a file) is. */
export function trackPid(pid: number, label: string): void {
  labels.set(pid, label);
}

function readProc(pid: number, file: string): Buffer | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`);
  } catch {
    return null; // gone, or not ours to read
  }
}

/** pid, ppid and state of a running process; null for a gone one. */
function stat(pid: number): { ppid: number; state: string } | null {
  const text = readProc(pid, 'stat')?.toString();
  if (!text) return null;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
  const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: state ?? '?', ppid: Number(ppid) };
}

/** The pids the local stack runs (its pid files): a test that starts the stack must never kill it. */
function stackPids(): Set<number> {
  const dir = process.env.TESSERA_STACK_DIR ?? join(ROOT, '.stack');
  const out = new Set<number>();
  const walk = (d: string, depth: number) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory() && depth < 3) walk(join(d, e.name), depth + 1);
      else if (e.name.endsWith('.pid')) {
        const pid = Number(safeRead(join(d, e.name)));
        if (Number.isInteger(pid) && pid > 0) out.add(pid);
      }
    }
  };
  walk(dir, 0);
  return out;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Every live process (zombies left out) that carries `owner` in its environment or descends from
 * `root`, except `root` itself and the local stack's services.
 */
export function processesOf(owner: string, root = process.pid): ProcessInfo[] {
  const mark = Buffer.from(`${OWNER_VAR}=${owner}\0`);
  const all = new Map<number, { ppid: number; marked: boolean }>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || pid === root) continue;
    const s = stat(pid);
    if (!s || s.state === 'Z' || s.state === 'X') continue;
    all.set(pid, { ppid: s.ppid, marked: readProc(pid, 'environ')?.includes(mark) ?? false });
  }
  const descends = (pid: number): boolean => {
    for (let p = all.get(pid)?.ppid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
      if (p === root) return true;
      p = all.get(p)?.ppid;
    }
    return false;
  };
  const stack = stackPids();
  const out: ProcessInfo[] = [];
  for (const [pid, p] of all) {
    if (stack.has(pid) || !(p.marked || descends(pid))) continue;
    const args = (readProc(pid, 'cmdline')?.toString() ?? '').split('\0').filter(Boolean).join(' ');
    // tsx's own esbuild service, which compiles the file's TypeScript and ends with it.
    if (p.ppid === root && /\/esbuild --service=/.test(args)) continue;
    const label = labels.get(pid);
    out.push({ pid, ppid: p.ppid, args, ...(label ? { label } : {}) });
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** One line per process: pid, parent, what started it, command line (cut at 300 characters). */
export function describeProcesses(list: readonly ProcessInfo[]): string {
  return list
    .map((p) => {
      const args = p.args.length > 300 ? `${p.args.slice(0, 300)}…` : p.args;
      return `  pid ${p.pid} (parent ${p.ppid})${p.label ? ` [${p.label}]` : ''}: ${args || '(no command line)'}`;
    })
    .join('\n');
}

function killAll(list: readonly ProcessInfo[]): void {
  for (const p of list)
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The file's processes still running after a grace for those already stopping; they are killed
 * (and waited for) before this returns. Exported for the guard's own test.
 */
export async function reapLeftovers(owner = TOKEN, graceMs = GRACE_MS): Promise<ProcessInfo[]> {
  const deadline = Date.now() + graceMs;
  let left = processesOf(owner);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = processesOf(owner);
  }
  if (left.length === 0) return [];
  // Named before they are killed: a killed child's /proc entry goes with it.
  killAll(left);
  const killDeadline = Date.now() + 10_000;
  while (Date.now() < killDeadline && left.some((p) => stat(p.pid) !== null && stat(p.pid)?.state !== 'Z'))
    await sleep(50);
  return left;
}

/** The message a leak fails the file with. */
export function leakMessage(file: string, list: readonly ProcessInfo[], when: string): string {
  return (
    `${list.length} process(es) started by ${file} were still running ${when} (killed now with SIGKILL). ` +
    `Stop and await every process the test starts, also when it fails (try/finally, or an after hook ` +
    `registered before the start):\n${describeProcesses(list)}`
  );
}

/**
 * Reports a leak on stderr and, under scripts/test, in its leak log (TESSERA_TEST_LEAK_LOG): the
 * runner drops what a file it killed for its timeout writes, so the log is what names those.
 */
function report(message: string): void {
  process.stderr.write(`${message}\n`);
  const log = process.env.TESSERA_TEST_LEAK_LOG;
  if (log)
    try {
      appendFileSync(log, `${message}\n`);
    } catch (error) {
      process.stderr.write(`process-guard: cannot append to TESSERA_TEST_LEAK_LOG ${log}: ${error}\n`);
    }
}

if (FILE !== null) {
  const file = FILE;
  process.env[OWNER_VAR] = TOKEN;
  process.env.TESSERA_TEST_FILE = file;
  const check = async () => {
    const left = await reapLeftovers();
    if (left.length === 0) return;
    const message = leakMessage(file, left, 'after its last test and hook');
    report(message);
    throw new Error(message);
  };
  // Root-level hooks run in the order registered, and this module is imported before the file's
  // own code: the check should come after the file's root-level after hooks. One registered once
  // the file's module graph has run comes last, but only if registered before the root's hooks
  // start (a file whose tests all finish at once is done before setImmediate); else the one
  // registered now checks. Suites' after hooks run before either.
  let late = false;
  after(async () => {
    if (!late) await check();
  });
  setImmediate(() => {
    late = true;
    after(check);
  });
  // Killed by the runner (a test over its timeout: SIGTERM) or by Ctrl-C, the file dies before its
  // hooks run; its processes would be orphaned. Kill and name them first, then die of the signal.
  // Not SIGHUP: the services reload their certificates on it, and a test of that (cert-reload)
  // emits it in its own process; a handler here counted a second reload.
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => {
      const left = processesOf(TOKEN);
      if (left.length > 0) {
        killAll(left);
        report(leakMessage(file, left, `when the file was stopped by ${signal}`));
      }
      process.kill(process.pid, signal);
    });
  // A file that ends some other way (process.exit) while its processes run.
  process.once('exit', () => {
    const left = processesOf(TOKEN);
    if (left.length === 0) return;
    killAll(left);
    report(leakMessage(file, left, 'when the file exited'));
    process.exitCode = 1;
  });
}
