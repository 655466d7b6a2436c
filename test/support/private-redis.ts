// A redis-server of a test's own, on a free loopback port with its data in a temporary directory:
// outage tests stop and restart it without disturbing the stack's Redis or other tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './flusher-process.ts';
import { trackChild } from './process-guard.ts';

export class PrivateRedis {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'tessera-redis-'));

  private constructor(readonly port: number) {}

  /** Starts one on `port` (default: a free one) and waits until it answers PING. */
  static async start(port?: number): Promise<PrivateRedis> {
    const redis = new PrivateRedis(port ?? (await freePort()));
    await redis.restart();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /**
   * (Re)starts the server on the same port and directory. AOF with fsync always: every write it
   * acknowledged before a SIGKILL is there after the restart, as on a production Redis with AOF.
   */
  async restart(): Promise<void> {
    if (this.child) throw new Error('private redis is already running');
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
      ],
      { stdio: 'ignore' },
    );
    trackChild(this.child, `private redis-server on ${this.port} (PrivateRedis)`);
    try {
      await this.waitUntilUp();
    } catch (error) {
      // start() throws before its caller holds the object: nobody else could kill it.
      await this.kill();
      throw error;
    }
  }

  /** SIGKILL: the outage starts at once, with no shutdown save. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }

  /** Kills it and deletes its data. */
  async remove(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitUntilUp(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new Redis({
        port: this.port,
        host: '127.0.0.1',
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on('error', () => {}); // refused until it listens: connect() rejects, that is enough
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        // A server that exited (the port taken, a bad argument) fails the start now, not 10 s on.
        const child = this.child;
        if (child && (child.exitCode !== null || child.signalCode !== null))
          throw new Error(
            `private redis-server on port ${this.port} exited (${child.exitCode ?? child.signalCode}) before it listened`,
          );
        if (Date.now() > deadline) throw new Error(`private redis-server on port ${this.port} did not start`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
