// Keeps the k8s workloads, docker-compose.yml and the image true to how the services run: which
// one may be scaled, ports and probes against the code's endpoints, stop grace periods against the
// code's own stop timers, and an image that holds every file the services load. (No Docker engine
// or cluster here: these read the files and the code, nothing is started.)
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { DEFAULTS } from '../../shared/config/defaults.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';

interface Probe {
  httpGet?: { path?: string; port?: string | number };
}
interface Container {
  name: string;
  command?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] }; sleep?: { seconds: number } } };
}
interface Workload {
  kind: string;
  metadata: { name: string };
  spec: {
    replicas?: number;
    strategy?: { type?: string };
    template: {
      metadata: { annotations?: Record<string, string> };
      spec: { terminationGracePeriodSeconds?: number; containers: Container[] };
    };
  };
}

const manifests = readdirSync('deploy/k8s')
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => join('deploy/k8s', f));
const workloads = manifests
  .flatMap((f) => parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS() as Workload))
  .filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet');
const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string[]; stop_grace_period?: string }>;
};

/** The service a container command runs: `services/<name>/main.ts`. */
function serviceOf(command: readonly string[] | undefined): string | undefined {
  return command?.join(' ').match(/services\/([a-z-]+)\/main\.ts/)?.[1];
}

function workloadOf(service: string): { workload: Workload; container: Container } {
  for (const workload of workloads)
    for (const container of workload.spec.template.spec.containers)
      if (serviceOf(container.command) === service) return { workload, container };
  assert.fail(`no k8s workload runs services/${service}/main.ts`);
}

/** The grace period a service's process gives its own stop before exiting 1 (services/<name>/run.ts). */
function codeGraceSeconds(service: string): number {
  const m = readFileSync(`services/${service}/run.ts`, 'utf8').match(/graceMs: ([\d_]+)/);
  assert.ok(m, `services/${service}/run.ts sets graceMs`);
  return Number(m[1]!.replaceAll('_', '')) / 1000;
}

/** Seconds a preStop hook holds the pod before SIGTERM (`sleep N`), 0 without one. */
function preStopSeconds(container: Container): number {
  const hook = container.lifecycle?.preStop;
  if (hook?.sleep) return hook.sleep.seconds;
  const cmd = hook?.exec?.command;
  return cmd?.[0] === 'sleep' ? Number(cmd[1]) : 0;
}

/** A compose duration (`40s`, `1m30s`) in seconds; compose's default is 10 s. */
function composeSeconds(value: string | undefined): number {
  if (value === undefined) return 10;
  let total = 0;
  for (const [, n, unit] of value.matchAll(/(\d+)(ms|s|m|h)/g))
    total += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit as 'ms' | 's' | 'm' | 'h'];
  return total;
}

function envOf(container: Container, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}

describe('deploy/k8s workloads', () => {
  it('runs the flusher as a one-pod StatefulSet, never two at once, and scales the ingestor', () => {
    // Two flushers writing one store each write every row (docs/offline-store.md). A Deployment
    // replaces an evicted or deleted pod while the old one still runs its final flush; a
    // StatefulSet starts its pod again only once the old one is gone.
    const flusher = workloadOf('flusher').workload;
    assert.equal(flusher.kind, 'StatefulSet', 'the flusher must be a StatefulSet');
    assert.equal(flusher.spec.replicas, 1);
    // The ingestors share the partitions through one consumer group: scaled out.
    const ingestor = workloadOf('ingestor').workload;
    assert.equal(ingestor.kind, 'Deployment');
    assert.ok((ingestor.spec.replicas ?? 1) >= 2, 'the ingestor is scaled out');
  });

  it("gives every pod more time to stop than its process's own stop timer (and the preStop pause)", () => {
    for (const service of ['ingestor', 'server', 'flusher']) {
      const { workload, container } = workloadOf(service);
      const grace = workload.spec.template.spec.terminationGracePeriodSeconds ?? 30; // k8s default
      const needed = preStopSeconds(container) + codeGraceSeconds(service);
      assert.ok(grace > needed, `${service}: terminationGracePeriodSeconds ${grace} <= ${needed} s`);
    }
  });

  it('keeps the server out of its Service before it stops listening', () => {
    // Endpoints are removed while SIGTERM is already delivered; the pause covers the gap.
    const { container } = workloadOf('server');
    assert.ok(preStopSeconds(container) >= 3, 'the server has a preStop pause');
    const cmd = container.lifecycle?.preStop?.exec?.command;
    // The image is node:20-bookworm-slim: coreutils' sleep is there, not a shell builtin only.
    if (cmd) assert.match(readFileSync('deploy/docker/Dockerfile', 'utf8'), /^FROM node:\d+-bookworm-slim/m);
  });

  it('probes and scrapes each service on the port its code serves /health, /ready and /metrics on', () => {
    // The ops endpoint of the ingestor and the flusher; the server's own routes on its API port.
    const ops = readFileSync('shared/ops-server.ts', 'utf8');
    const app = readFileSync('services/server/app.ts', 'utf8');
    for (const path of ['/health', '/ready', '/metrics']) {
      assert.ok(ops.includes(`req.url === '${path}'`), `ops-server serves ${path}`);
      assert.ok(app.includes(`app.get('${path}'`), `the server serves ${path}`);
    }
    for (const service of ['ingestor', 'server', 'flusher']) {
      const { workload, container } = workloadOf(service);
      const variable = service === 'server' ? 'TESSERA_HTTP_PORT' : 'TESSERA_METRICS_PORT';
      const fallback = service === 'server' ? DEFAULTS.httpPort : DEFAULTS.metricsPort;
      const port = Number(envOf(container, variable) ?? fallback);
      const declared = container.ports?.find((p) => p.containerPort === port);
      assert.ok(declared, `${service}: containerPort ${port} (${variable}) is declared`);
      for (const [kind, path] of [
        ['livenessProbe', '/health'],
        ['readinessProbe', '/ready'],
      ] as const) {
        const probe = container[kind]?.httpGet;
        assert.equal(probe?.path, path, `${service} ${kind}`);
        assert.ok(probe?.port === port || probe?.port === declared.name, `${service} ${kind} port`);
      }
      const annotations = workload.spec.template.metadata.annotations ?? {};
      assert.equal(annotations['prometheus.io/scrape'], 'true', service);
      assert.equal(Number(annotations['prometheus.io/port']), port, `${service} is scraped on ${port}`);
    }
  });
});

describe('docker-compose.yml stop grace periods', () => {
  it("outlast every Tessera service's own stop timer", () => {
    for (const service of ['ingestor', 'server', 'flusher']) {
      const entry = Object.values(compose.services).find((s) => serviceOf(s.command) === service);
      assert.ok(entry, `compose runs ${service}`);
      const grace = composeSeconds(entry.stop_grace_period);
      assert.ok(
        grace > codeGraceSeconds(service),
        `${service}: stop_grace_period ${grace} s <= ${codeGraceSeconds(service)} s`,
      );
    }
  });
});

describe('deploy/docker/Dockerfile', () => {
  const dockerfile = readFileSync('deploy/docker/Dockerfile', 'utf8');
  /** Repository paths the image copies into WORKDIR, each under the same name. */
  const copied: string[] = [];
  for (const [, args] of dockerfile.matchAll(/^COPY (.+)$/gm)) {
    const parts = args!.trim().split(/\s+/);
    const dest = parts.pop()!;
    for (const src of parts) {
      assert.ok(dest === './' || dest === `./${src}`, `COPY ${src} ${dest}: keeps the repository layout`);
      copied.push(src);
    }
  }
  const ignored = readFileSync('.dockerignore', 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((p) => new RegExp(`^${p.replaceAll('.', '\\.').replaceAll('*', '[^/]*')}(/|$)`));
  const inImage = (file: string) =>
    copied.some((c) => file === c || file.startsWith(`${c}/`)) && !ignored.some((re) => re.test(file));

  /** Every file a module loads: relative imports (static and dynamic) and `new URL(..., import.meta.url)` assets. */
  function loadedFiles(entry: string): Set<string> {
    const seen = new Set<string>();
    const queue = [entry];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      if (!file.endsWith('.ts')) continue;
      const text = readFileSync(file, 'utf8');
      const specs = [
        ...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*'(\.{1,2}\/[^']+)'/g),
        ...text.matchAll(/new URL\('(\.{1,2}\/[^']+)',\s*import\.meta\.url\)/g),
      ].map((m) => m[1]!);
      for (const spec of specs) {
        const target = normalize(join(dirname(file), spec));
        assert.ok(existsSync(target) && statSync(target).isFile(), `${file} loads ${spec}, which is missing`);
        queue.push(target);
      }
    }
    return seen;
  }

  it('holds every file the services it runs load, and the definitions and schemas they read', () => {
    const entries = new Set<string>();
    for (const file of [...manifests, 'deploy/docker/Dockerfile', 'docker-compose.yml'])
      for (const [path] of readFileSync(file, 'utf8').matchAll(/services\/[a-z-]+\/main\.ts/g))
        entries.add(path);
    assert.ok(entries.size >= 3, [...entries].join(' '));
    const needed = new Set<string>(['package.json', 'package-lock.json', 'tsconfig.json']);
    for (const entry of entries) for (const file of loadedFiles(entry)) needed.add(file);
    // The lua scripts and flusher's package.json read are assets, not imports: the walk found them.
    assert.ok(needed.has('shared/state-store/cas-state.lua') && needed.has('package.json'));
    const definitions = loadDefinitionsFile(DEFAULTS.definitions);
    needed.add(DEFAULTS.definitions);
    for (const source of definitions.sources)
      if (source.avroSchema) needed.add(normalize(join(dirname(DEFAULTS.definitions), source.avroSchema)));
    for (const file of needed) assert.ok(inImage(file), `the image lacks ${file}`);
  });

  it('runs as a non-root user that may write the local offline store', () => {
    const user = [...dockerfile.matchAll(/^USER (\S+)/gm)].at(-1)?.[1];
    assert.ok(user !== undefined && user !== 'root' && user !== '0', `USER ${user}`);
    assert.match(dockerfile, new RegExp(`chown ${user}:${user} [^\\n]*/app/offline-store`));
  });
});
