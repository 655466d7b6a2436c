// A Kafka broker of a test's own (single KRaft node, free loopback ports, data in a temporary
// directory), started and stopped by the same shell functions as the local stack
// (scripts/lib/kafka.sh), so outage tests can kill it without disturbing the stack's broker.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './flusher-process.ts';

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
    kafka.restart();
    return kafka;
  }

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** (Re)starts the broker on the same ports and storage (formatted on the first start only). */
  restart(): void {
    this.stack('kafka_start');
  }

  /** SIGKILL: the outage starts at once, with no controlled shutdown. */
  kill(): void {
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.dir, 'kafka', 'kafka.pid'), 'utf8'));
    } catch {
      return; // never started
    }
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
