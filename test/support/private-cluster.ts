// A Redis Cluster of a test's own: three masters on free loopback ports, data in a temporary
// directory. A test may move slots between them, kill one and restart it, which it must never do to
// the stack's shared cluster.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './flusher-process.ts';
import { trackChild } from './process-guard.ts';

export class PrivateCluster {
  private readonly children = new Map<number, ChildProcess>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'tessera-cluster-'));

  private constructor(readonly ports: readonly number[]) {}

  /** Three masters, every slot assigned, waited for until the cluster says ok. */
  static async start(): Promise<PrivateCluster> {
    const ports = await freePorts(3);
    const cluster = new PrivateCluster(ports);
    try {
      for (const port of ports) await cluster.startNode(port);
      cluster.cli(ports[0]!, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes');
      await cluster.waitUntilOk();
    } catch (error) {
      // The caller never gets the cluster to remove(): its nodes would outlive the test file.
      await cluster.remove();
      throw error;
    }
    return cluster;
  }

  /** A node to hand to TESSERA_REDIS_URL: the client learns the others from it. */
  get url(): string {
    return `redis://127.0.0.1:${this.ports[0]}`;
  }

  /**
   * redis-cli against one node; its output, trimmed. Its stderr goes with the error it throws, not
   * to the test's output (a node still starting printed "Could not connect" lines into the CI log).
   */
  cli(port: number, ...args: string[]): string {
    return execFileSync('redis-cli', ['-p', String(port), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  }

  /** The port of the master serving `slot`. */
  ownerOf(slot: number): number {
    const nodes = this.cli(this.ports[0]!, 'cluster', 'nodes').split('\n');
    for (const node of nodes) {
      const [, address, flags, , , , , , ...ranges] = node.split(' ');
      if (!flags?.includes('master')) continue;
      for (const range of ranges) {
        const [from, to] = range.split('-').map(Number);
        if (slot >= from! && slot <= (to ?? from)!) return Number(address!.split(':')[1]!.split('@')[0]);
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /** Moves a slot and its keys to another master, as redis-cli --cluster reshard does. */
  moveSlot(slot: number, from: number, to: number): void {
    const source = this.cli(from, 'cluster', 'myid');
    const target = this.cli(to, 'cluster', 'myid');
    this.cli(to, 'cluster', 'setslot', String(slot), 'importing', source);
    this.cli(from, 'cluster', 'setslot', String(slot), 'migrating', target);
    const keys = this.cli(from, 'cluster', 'getkeysinslot', String(slot), '100000')
      .split('\n')
      .filter(Boolean);
    if (keys.length > 0) this.cli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', ...keys);
    for (const port of this.ports) this.cli(port, 'cluster', 'setslot', String(slot), 'node', target);
  }

  /** SIGKILL one master: its keys are gone (no persistence), its cluster identity is kept on disk. */
  async kill(port: number): Promise<void> {
    const child = this.children.get(port);
    this.children.delete(port);
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }

  /** Starts a killed master again on its port and directory; it rejoins with its slots. */
  async restart(port: number): Promise<void> {
    await this.startNode(port);
    await this.waitUntilOk();
  }

  async remove(): Promise<void> {
    for (const port of [...this.children.keys()]) await this.kill(port);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async startNode(port: number): Promise<void> {
    const dir = join(this.dir, String(port));
    mkdirSync(dir, { recursive: true });
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--appendonly',
        'no',
        '--save',
        '',
      ],
      { stdio: 'ignore' },
    );
    trackChild(child, `private cluster node on ${port} (PrivateCluster)`);
    this.children.set(port, child);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if (this.cli(port, 'ping') === 'PONG') return;
      } catch {
        // not listening yet
      }
      // A node that exited (the port taken, a bad argument) fails the start now, not 10 s on.
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `private cluster node on port ${port} exited (${child.exitCode ?? child.signalCode}) before it listened`,
        );
      if (Date.now() > deadline) throw new Error(`private cluster node on port ${port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async waitUntilOk(): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (!this.ports.every((p) => this.safeInfo(p).includes('cluster_state:ok'))) {
      if (Date.now() > deadline) throw new Error('private cluster did not reach cluster_state:ok');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  private safeInfo(port: number): string {
    try {
      return this.cli(port, 'cluster', 'info');
    } catch {
      return '';
    }
  }
}
