// A redis-server of a test's own that speaks TLS only (Debian's redis-server 7 has it built in),
// with certificates signed by a private CA, on a loopback port the test picks; data in a temporary
// directory. `clientAuth` 'yes' makes it ask every client for a certificate (mutual TLS).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { trackChild } from './process-guard.ts';
import type { CertFiles } from './tls-certs.ts';

export interface TlsRedisOptions {
  port: number;
  /** The server's own certificate and key. */
  server: CertFiles;
  /** The CA that signed the server's certificate and the clients' ones. */
  caFile: string;
  /** Whether clients must show a certificate signed by the CA. */
  clientAuth: 'yes' | 'optional';
  /** A client certificate for the start-up probe (needed with clientAuth 'yes'). */
  client?: CertFiles;
}

export class TlsRedis {
  private constructor(
    readonly options: TlsRedisOptions,
    private readonly child: ChildProcess,
  ) {}

  get url(): string {
    return `rediss://127.0.0.1:${this.options.port}`;
  }

  /** Starts it and waits until a TLS client with the CA (and the client certificate) gets PONG. */
  static async start(options: TlsRedisOptions): Promise<TlsRedis> {
    const dir = mkdtempSync(join(tmpdir(), 'stls-redis-data-'));
    const child = spawn(
      'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(options.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--tls-cert-file',
        options.server.cert,
        '--tls-key-file',
        options.server.key,
        '--tls-ca-cert-file',
        options.caFile,
        '--tls-auth-clients',
        options.clientAuth,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    trackChild(child, `TLS redis-server on ${options.port} (TlsRedis)`);
    const redis = new TlsRedis(options, child);
    let log = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    // Its data goes with it, however it ends.
    child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = redis.client();
      probe.on('error', () => {}); // refused until it listens: connect() rejects, that is enough
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return redis;
      } catch {
        probe.disconnect();
        if (child.exitCode !== null || Date.now() > deadline) {
          await redis.stop();
          throw new Error(`TLS redis-server on port ${options.port} did not start:\n${log}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** A plain ioredis client of the test's own, trusting the CA. */
  client(): Redis {
    const { client } = this.options;
    return new Redis({
      host: '127.0.0.1',
      port: this.options.port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      tls: {
        ca: readFileSync(this.options.caFile),
        ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
      },
    });
  }

  /** Kills it (SIGKILL: nothing of it is worth keeping). */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await once(this.child, 'exit');
    }
  }
}
