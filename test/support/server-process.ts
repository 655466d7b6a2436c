// Runs the real online server (node services/server/main.ts) for integration tests, with the run's
// env (key prefix, topic prefix) plus whatever the test adds (tokens, Redis URL).
import { type ChildProcess, spawn } from 'node:child_process';
import { trackChild } from './process-guard.ts';

export interface ServerProcess {
  child: ChildProcess;
  /** http://127.0.0.1:<port> once listening. */
  url: Promise<string>;
  exited: Promise<number | null>;
  output(): string;
  stop(): Promise<void>;
}

export function startServer(env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/server/main.ts'], {
    env: { ...process.env, TESSERA_HTTP_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child, 'server (startServer)');
  let out = '';
  const url = new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /server listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${out}`)));
  });
  url.catch(() => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    url,
    exited,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
