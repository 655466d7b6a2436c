// Runs the real online server (node services/server/main.ts) for integration tests, with the run's
// env (key prefix, topic prefix) plus whatever the test adds (tokens, Redis URL).
import { type ChildProcess, spawn } from 'node:child_process';
import { type IngestorProcess, startIngestor, type TestRun } from './ingestor-process.ts';
import { trackChild } from './process-guard.ts';
import { stopProcess } from './stop-after.ts';

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

/** POSTs `body` as JSON to `url` + `path` with a bearer token: the status and the parsed answer. */
export async function postJson<T = Record<string, unknown>>(
  url: string,
  path: string,
  body: unknown,
  token: string,
): Promise<{ status: number; json: T }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}

/** Two events of `user` a second apart from `ts`, as a Feast push body to the reference source. */
export function twoEventPush(user: number, ts: number) {
  return {
    push_source_name: 'transactions',
    df: {
      user_id: [user, user],
      event_timestamp: [new Date(ts).toISOString(), new Date(ts + 1000).toISOString()],
      amount: [12.5, 7.5],
      merchant_id: ['m1', 'm2'],
    },
  };
}

/** The real ingestor (ready) and server (listening, bearer `token`) of a run, stopped together. */
export async function startIngestorAndServer(
  run: TestRun,
  token: string,
): Promise<{ ingestor: IngestorProcess; server: ServerProcess; url: string; stop(): Promise<void> }> {
  const ingestor = startIngestor(run);
  let server: ServerProcess | undefined;
  let url: string;
  try {
    await ingestor.ready;
    server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: token });
    url = await server.url;
  } catch (error) {
    // The caller never gets them to stop: what started is stopped and awaited here.
    await Promise.all([stopProcess(ingestor), server && stopProcess(server)]);
    throw error;
  }
  return {
    ingestor,
    server,
    url,
    async stop() {
      ingestor.child.kill('SIGTERM');
      await ingestor.exited;
      await server.stop();
    },
  };
}
