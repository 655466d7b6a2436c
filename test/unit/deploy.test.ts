// Keeps deploy/ true to the code: every TESSERA_* variable in the manifests is a config option,
// every command runs a file that exists, and every tessera_* metric an alert uses is defined by a
// service. (No cluster here: this checks what can drift, not that Kubernetes accepts it.)
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { ENV_NAMES } from '../../shared/config/defaults.ts';
import { declaredMetrics } from '../support/declared-metrics.ts';

const known = new Set(Object.values(ENV_NAMES));
const manifests = readdirSync('deploy/k8s')
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => join('deploy/k8s', f));

/** Metric names the services define (their registries). */
function definedMetrics(): Set<string> {
  return new Set(declaredMetrics().keys());
}

describe('deploy/', () => {
  it('k8s manifests parse and mention only TESSERA_* variables the config knows', () => {
    assert.ok(manifests.length >= 3);
    for (const file of manifests) {
      const text = readFileSync(file, 'utf8');
      for (const doc of parseAllDocuments(text)) assert.deepEqual(doc.errors, [], file);
      for (const [name] of text.matchAll(/TESSERA_[A-Z0-9_]+/g))
        assert.ok(known.has(name), `${file}: ${name} is not a config variable`);
    }
  });

  it('k8s manifests ship no Secret: an apply must never overwrite real credentials with placeholders', () => {
    for (const file of manifests)
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8')))
        assert.notEqual((doc.toJS() as { kind?: string } | null)?.kind, 'Secret', `${file} defines a Secret`);
    // What the Deployments read from Secrets is created by hand (deploy/k8s/README.md says how).
    const guide = readFileSync('deploy/k8s/README.md', 'utf8');
    for (const file of manifests)
      for (const [, name] of readFileSync(file, 'utf8').matchAll(/secretRef: \{ name: ([a-z0-9-]+)[ ,]/g))
        assert.match(guide, new RegExp(`create secret generic ${name} `), `${file} reads Secret ${name}`);
  });

  it('every Deployment reads the shared config and the S3 credentials; the config loads with a real S3', async () => {
    const { loadConfig } = await import('../../shared/config/index.ts');
    const data = (
      parseAllDocuments(readFileSync('deploy/k8s/config.yaml', 'utf8'))[0]!.toJS() as {
        data: Record<string, string>;
      }
    ).data;
    for (const file of manifests.filter((f) => !f.endsWith('config.yaml'))) {
      const text = readFileSync(file, 'utf8');
      assert.match(text, /configMapRef: \{ name: tessera-config \}/, file);
      // With an https S3 in the ConfigMap, the local default key is refused in every service.
      assert.match(text, /secretRef: \{ name: tessera-s3 \}/, file);
    }
    const env = {
      ...data,
      TESSERA_S3_ENDPOINT: 'https://s3.eu-west-1.amazonaws.com',
      TESSERA_S3_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      TESSERA_S3_SECRET_ACCESS_KEY: 'example-secret-key-0123456789',
      TESSERA_AUTH_TOKEN: 'a-token-of-32-hex-0123456789abcdef',
    };
    const config = loadConfig({ argv: [], env });
    assert.equal(config.redisCluster, false);
    assert.equal(config.httpHost, '0.0.0.0');
    for (const name of [
      'TESSERA_REDIS_CLUSTER',
      'TESSERA_SCHEMA_REGISTRY_URL',
      'TESSERA_UPDATES_FORMAT',
      'TESSERA_S3_REGION',
    ])
      assert.ok(name in data, `config.yaml sets ${name}`);
    // The image listens on every interface; the code's default is loopback.
    assert.match(readFileSync('deploy/docker/Dockerfile', 'utf8'), /TESSERA_HTTP_HOST=0\.0\.0\.0/);
  });

  it('k8s and the Dockerfile run files that exist', () => {
    for (const file of [...manifests, 'deploy/docker/Dockerfile']) {
      for (const [path] of readFileSync(file, 'utf8').matchAll(/services\/[a-z-]+\/[a-z-]+\.ts/g))
        assert.ok(existsSync(path), `${file} runs ${path}, which does not exist`);
    }
    for (const [, path] of readFileSync('deploy/docker/Dockerfile', 'utf8').matchAll(/^COPY (\S+)/gm))
      for (const p of path!.split(' '))
        assert.ok(existsSync(p), `Dockerfile copies ${p}, which does not exist`);
  });

  it('the image has every package the services load: their imports and --import are runtime dependencies', () => {
    // The Dockerfile installs with NODE_ENV=production, i.e. without devDependencies.
    assert.match(
      readFileSync('deploy/docker/Dockerfile', 'utf8'),
      /NODE_ENV=production[\s\S]*npm ci --omit=dev/,
    );
    const runtime = new Set(Object.keys(JSON.parse(readFileSync('package.json', 'utf8')).dependencies));
    const needed = new Map<string, string>();
    for (const file of [...manifests, 'deploy/docker/Dockerfile', 'docker-compose.yml'])
      for (const [, pkg] of readFileSync(file, 'utf8').matchAll(/--import[", ]+([a-z@][\w@/.-]*)/g))
        needed.set(pkg!, file);
    for (const dir of ['services', 'shared'])
      for (const file of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
        if (!file.endsWith('.ts')) continue;
        const text = readFileSync(join(dir, file), 'utf8');
        // Value imports only: `import type` is erased, so it needs no package at run time.
        for (const [, spec] of text.matchAll(/^import\s+(?!type\s)(?:[^;']*?\s+from\s+)?'([^'.][^']*)'/gm))
          if (!spec!.startsWith('node:')) needed.set(spec!, join(dir, file));
      }
    assert.ok(
      needed.has('tsx') && needed.has('kafkajs') && needed.has('fastify'),
      [...needed.keys()].join(' '),
    );
    for (const [spec, file] of needed) {
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      assert.ok(runtime.has(pkg), `${file} loads ${pkg}, which is not in package.json "dependencies"`);
    }
  });

  it('alert rules use only metrics that a service defines', () => {
    const defined = definedMetrics();
    const rules = parseAllDocuments(readFileSync('deploy/prometheus/alerts.yml', 'utf8'))[0]!.toJS() as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const alerts = rules.groups.flatMap((g) => g.rules);
    assert.ok(alerts.length >= 4);
    for (const rule of alerts)
      for (const [name] of rule.expr.matchAll(/tessera_[a-z0-9_]+/g)) {
        // Histograms are scraped as _bucket/_count/_sum series of the defined name.
        const base = name.replace(/_(bucket|count|sum)$/, '');
        assert.ok(defined.has(name) || defined.has(base), `${rule.alert}: ${name} is defined by no service`);
      }
    for (const seed of [
      'TesseraStaleFeatures',
      'TesseraServingSlow',
      'TesseraRedisMemoryHigh',
      'TesseraIngestorRedisErrors',
    ])
      assert.ok(
        alerts.some((a) => a.alert === seed),
        `${seed} is missing`,
      );
  });
});
