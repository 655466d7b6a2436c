// A Kafka broker of a test's own (single KRaft node, free loopback ports, data in a temporary
// directory), started and stopped by the same shell functions as the local stack
// (scripts/lib/kafka.sh), so outage tests can kill it without disturbing the stack's broker.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './flusher-process.ts';
import { trackPid } from './process-guard.ts';

export class PrivateKafka {
  private readonly dir = mkdtempSync(join(tmpdir(), 'tessera-kafka-'));

  private constructor(
    readonly port: number,
    private readonly controllerPort: number,
  ) {}

  /** Formats its storage and starts it; resolves once the broker listens. */
  static async start(): Promise<PrivateKafka> {
    const [port, controllerPort] = await freePorts(2);
    const kafka = new PrivateKafka(port!, controllerPort!);
    try {
      kafka.restart();
    } catch (error) {
      // kafka_start gives up (not listening after 90 s, or our 120 s timeout) without stopping the
      // broker it started in a session of its own; the caller never gets this object to remove().
      kafka.remove();
      throw error;
    }
    return kafka;
  }

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** (Re)starts the broker on the same ports and storage (formatted on the first start only). */
  restart(): void {
    try {
      this.stack('kafka_start');
    } finally {
      const pid = this.pid();
      if (pid !== null) trackPid(pid, `private Kafka broker on ${this.port} (PrivateKafka)`);
    }
  }

  /** The broker's pid, as kafka_start wrote it (null before the first start). */
  private pid(): number | null {
    try {
      const pid = Number(readFileSync(join(this.dir, 'kafka', 'kafka.pid'), 'utf8'));
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** SIGKILL: the outage starts at once, with no controlled shutdown. */
  kill(): void {
    const pid = this.pid();
    if (pid === null) return; // never started
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return; // already gone
    }
    // Wait for the exit, so a restart finds its ports free.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      execFileSync('sleep', ['0.1']);
    }
    throw new Error(`private kafka (pid ${pid}) did not exit after SIGKILL`);
  }

  /** Kills it and deletes its data. */
  remove(): void {
    this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private stack(fn: string): void {
    const root = new URL('../../', import.meta.url).pathname;
    execFileSync(
      'bash',
      [
        '-c',
        `source scripts/lib/common.sh && source scripts/lib/java.sh && source scripts/lib/kafka.sh && ${fn}`,
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          TESSERA_STACK_DIR: this.dir,
          TESSERA_KAFKA_PORT: String(this.port),
          TESSERA_KAFKA_CONTROLLER_PORT: String(this.controllerPort),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 120_000,
      },
    );
  }
}
