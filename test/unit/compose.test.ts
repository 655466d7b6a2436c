import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { z } from 'zod';
import { DEFAULTS, ENV_NAMES, loadConfig } from '../../shared/config/index.ts';

// docker-compose.yml cannot run here (no Docker engine): this keeps it honest against the config
// schema and the versions scripts/stack runs.
const text = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8');
const compose = z
  .object({
    'x-tessera-env': z.record(z.string(), z.union([z.string(), z.number()])),
    services: z.record(
      z.string(),
      z.object({
        image: z.string().optional(),
        command: z.array(z.string()).optional(),
        environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
        ports: z.array(z.string()).optional(),
        profiles: z.array(z.string()).optional(),
        depends_on: z.record(z.string(), z.object({ condition: z.string() })).optional(),
      }),
    ),
  })
  .parse(parse(text, { merge: true })); // compose applies YAML merge keys (<<: *anchor)

function hostPort(service: string, containerPort: number): number {
  const spec = compose.services[service]?.ports?.find((p) => p.endsWith(`:${containerPort}`));
  assert.ok(spec, `${service} publishes container port ${containerPort}`);
  const [ip, host] = spec.split(':');
  assert.equal(ip, '127.0.0.1', `${service} is published on 127.0.0.1 only`);
  return Number(host);
}

describe('docker-compose.yml', () => {
  it('describes kafka, redis and s3 with the versions the scripts run', () => {
    for (const name of ['kafka', 'redis', 's3']) assert.ok(compose.services[name], `${name} service`);
    assert.equal(compose.services.kafka?.image, 'apache/kafka:4.1.1');
    assert.match(compose.services.redis?.image ?? '', /^redis:7/);
    assert.equal(compose.services.s3?.image, 'andrewgaul/s3proxy:s3proxy-2.6.0');
  });

  it('publishes each service on the port the config defaults point at', () => {
    assert.equal(hostPort('kafka', 9092), Number(DEFAULTS.kafkaBrokers[0]?.split(':')[1]));
    assert.equal(hostPort('redis', 6379), Number(new URL(DEFAULTS.redisUrl).port));
    assert.equal(hostPort('s3', 80), Number(new URL(DEFAULTS.s3Endpoint).port));
  });

  it('runs redis with AOF and noeviction', () => {
    const cmd = (compose.services.redis?.command ?? []).join(' ');
    assert.match(cmd, /--appendonly yes/);
    assert.match(cmd, /--appendfsync everysec/);
    assert.match(cmd, /--maxmemory-policy noeviction/);
  });

  it('gives S3Proxy the credentials the config defaults use', () => {
    const env = compose.services.s3?.environment ?? {};
    assert.equal(env.S3PROXY_IDENTITY, DEFAULTS.s3AccessKeyId);
    assert.equal(env.S3PROXY_CREDENTIAL, DEFAULTS.s3SecretAccessKey);
    // The provider scripts/lib/s3proxy.sh runs (the older `filesystem` lists directory
    // placeholders as objects), with the identity it insists on.
    assert.equal(env.JCLOUDS_PROVIDER, 'filesystem-nio2');
    assert.ok(env.JCLOUDS_IDENTITY && env.JCLOUDS_CREDENTIAL);
  });

  it('creates the offline store bucket the config defaults name', () => {
    const init = compose.services['s3-init'];
    assert.deepEqual(init?.command, ['mkdir', '-p', `/data/${DEFAULTS.s3Bucket}`]);
    assert.equal(compose.services.s3?.environment?.JCLOUDS_FILESYSTEM_BASEDIR, '/data');
  });

  it('starts the stack alone by default and Tessera under the "tessera" profile', () => {
    for (const name of ['kafka', 'redis', 's3', 's3-init'])
      assert.equal(compose.services[name]?.profiles, undefined, `${name} runs without a profile`);
    for (const name of ['ingestor', 'server', 'flusher', 'kafka-init'])
      assert.deepEqual(compose.services[name]?.profiles, ['tessera'], name);
    // Compose checks a `${VAR:?}` for every command (`down` and the stack-only `up` too).
    assert.doesNotMatch(text.replace(/#.*$/gm, ''), /\$\{[A-Z_]+:?\?/);
  });

  it('creates the reference source topic before the ingestor starts, where Kafka keeps its data', async () => {
    const { loadDefinitionsFile } = await import('../../shared/definitions/load.ts');
    const topic = loadDefinitionsFile('definitions/fraud.yaml').sources[0]!.topic;
    const init = compose.services['kafka-init']?.command ?? [];
    assert.equal(init[init.indexOf('--topic') + 1], topic);
    assert.ok(init.includes('--if-not-exists'));
    assert.deepEqual(compose.services.ingestor?.depends_on?.['kafka-init'], {
      condition: 'service_completed_successfully',
    });
    // The image's default log dir is inside the container: a `down` lost every topic.
    const kafka = compose.services.kafka!;
    assert.equal(kafka.environment?.KAFKA_LOG_DIRS, '/var/lib/kafka/data');
    assert.ok(text.includes('kafka-data:/var/lib/kafka/data'));
  });

  it('mentions only TESSERA_* variables the config schema knows', () => {
    const known = new Set(Object.values(ENV_NAMES));
    const mentioned = new Set(text.match(/\bTESSERA_[A-Z0-9_]+/g) ?? []);
    assert.ok(mentioned.size >= 5, 'the shared tessera env block is present');
    for (const name of mentioned) assert.ok(known.has(name), `${name} is not a config variable`);
  });

  it('points the shared tessera env block at the compose services', () => {
    const env = compose['x-tessera-env'];
    assert.equal(env.TESSERA_KAFKA_BROKERS, 'kafka:19092');
    assert.match(String(env.TESSERA_KAFKA_BROKERS), /^kafka:/);
    assert.equal(new URL(String(env.TESSERA_REDIS_URL)).hostname, 'redis');
    assert.equal(new URL(String(env.TESSERA_S3_ENDPOINT)).hostname, 's3');
    assert.match(compose.services.kafka?.environment?.KAFKA_ADVERTISED_LISTENERS as string, /kafka:19092/);
  });

  it('runs each Tessera service from the repository with the shared tessera environment', () => {
    for (const name of ['ingestor', 'server', 'flusher']) {
      const service = compose.services[name];
      assert.ok(service, `${name} service`);
      assert.deepEqual(service.command, ['node', '--import', 'tsx', `services/${name}/main.ts`]);
      assert.ok(existsSync(`services/${name}/main.ts`));
      const env = service.environment as Record<string, unknown>;
      for (const [key, value] of Object.entries(compose['x-tessera-env']))
        assert.equal(env[key], value, `${name} ${key}`);
    }
    assert.equal(hostPort('server', 8080), DEFAULTS.httpPort);
    // From the shell; the server refuses to start without a token (auth is on).
    assert.match(
      String(compose.services.server?.environment?.TESSERA_AUTH_TOKEN),
      /^\$\{TESSERA_AUTH_TOKEN:-\}$/,
    );
    assert.equal(compose.services.server?.environment?.TESSERA_DEV_NO_AUTH, undefined);
  });

  it('gives the Tessera services an environment the config module accepts', () => {
    const env = Object.fromEntries(Object.entries(compose['x-tessera-env']).map(([k, v]) => [k, String(v)]));
    const config = loadConfig({ env, argv: [] });
    assert.deepEqual(config.kafkaBrokers, ['kafka:19092']);
    assert.equal(config.s3Bucket, DEFAULTS.s3Bucket);
  });
});

describe('docker-compose.yml wiring', () => {
  const raw = parse(text, { merge: true }) as {
    services: Record<
      string,
      {
        image?: string;
        healthcheck?: { test?: unknown };
        restart?: string;
        command?: string[];
        depends_on?: Record<string, { condition: string }>;
        environment?: Record<string, string | number>;
      }
    >;
  };

  it('waits only on conditions the services can meet: a healthcheck to be healthy, a one-shot to complete', () => {
    for (const [name, service] of Object.entries(raw.services))
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = raw.services[dep];
        assert.ok(target, `${name} depends on ${dep}, which is no service`);
        if (condition === 'service_healthy') assert.ok(target.healthcheck?.test, `${dep} has no healthcheck`);
        if (condition === 'service_completed_successfully')
          assert.ok(
            target.restart === undefined || target.restart === 'no',
            `${dep} is restarted: never completes`,
          );
      }
    // Both consumers of the source topic wait for it (the flusher exits if it is missing).
    for (const name of ['ingestor', 'flusher'])
      assert.equal(
        raw.services[name]?.depends_on?.['kafka-init']?.condition,
        'service_completed_successfully',
        name,
      );
  });

  it('gives Kafka listeners that the host and the compose network each reach', () => {
    const env = raw.services.kafka?.environment ?? {};
    const listeners = (s: unknown) =>
      new Map(
        String(s)
          .split(',')
          .map((l) => l.match(/^([A-Z_]+):\/\/([^:]*):(\d+)$/)!)
          .map((m) => [m[1]!, { host: m[2]!, port: Number(m[3]) }]),
      );
    const bound = listeners(env.KAFKA_LISTENERS);
    const advertised = listeners(env.KAFKA_ADVERTISED_LISTENERS);
    const protocols = new Set(
      String(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP)
        .split(',')
        .map((p) => p.split(':')[0]),
    );
    for (const [name, { port }] of advertised) {
      assert.equal(bound.get(name)?.port, port, `${name} is advertised on the port it listens on`);
      assert.ok(protocols.has(name), `${name} has a security protocol`);
    }
    for (const name of bound.keys()) assert.ok(protocols.has(name), `${name} has a security protocol`);
    // The host's clients: 127.0.0.1 on the published port; the services: the name and port they use.
    assert.ok(
      [...advertised.values()].some((l) => l.host === '127.0.0.1' && l.port === hostPort('kafka', l.port)),
      'a listener advertised to the host on its published port',
    );
    const inside = String(compose['x-tessera-env'].TESSERA_KAFKA_BROKERS);
    assert.ok(
      [...advertised.values()].some((l) => `${l.host}:${l.port}` === inside),
      `${inside} is an advertised listener`,
    );
    assert.ok(
      advertised.has(String(env.KAFKA_INTER_BROKER_LISTENER_NAME)),
      'inter-broker listener is advertised',
    );
    // KRaft: the controller listens where the quorum voters say, and is not advertised to clients.
    const controller = String(env.KAFKA_CONTROLLER_LISTENER_NAMES);
    assert.equal(
      bound.get(controller)?.port,
      Number(String(env.KAFKA_CONTROLLER_QUORUM_VOTERS).split(':').pop()),
    );
    assert.ok(!advertised.has(controller));
    assert.match(String(env.KAFKA_PROCESS_ROLES), /broker/);
    assert.match(String(env.KAFKA_PROCESS_ROLES), /controller/);
    // The topic tool and the healthcheck reach the broker on listeners it has.
    const init = raw.services['kafka-init']?.command ?? [];
    assert.equal(init[init.indexOf('--bootstrap-server') + 1], inside);
  });

  it('runs S3Proxy, not MinIO, as the S3 server', () => {
    for (const [name, service] of Object.entries(raw.services))
      assert.doesNotMatch(service.image ?? '', /minio/i, `${name} runs MinIO`);
    assert.match(raw.services.s3?.image ?? '', /^andrewgaul\/s3proxy:/);
  });
});

describe('docker-compose.yml monitoring profile', () => {
  const raw = parse(text, { merge: true }) as {
    services: Record<
      string,
      {
        image?: string;
        profiles?: string[];
        ports?: string[];
        volumes?: string[];
        configs?: { source: string; target: string }[];
        command?: string[];
        environment?: Record<string, string>;
        depends_on?: Record<string, { condition: string }>;
      }
    >;
    configs?: Record<string, { content?: string; file?: string }>;
  };
  const prometheus = raw.services.prometheus;
  const grafana = raw.services.grafana;
  /** Bind mounts (`./host:/container[:ro]`) as host path -> container path. */
  const binds = (service: { volumes?: string[] } | undefined) =>
    new Map(
      (service?.volumes ?? [])
        .filter((v) => v.startsWith('./'))
        .map((v) => v.split(':') as [string, string])
        .map(([host, container]) => [container, host]),
    );

  it('runs Prometheus and Grafana only under the "monitoring" profile, from pinned images', () => {
    for (const [name, service] of [
      ['prometheus', prometheus],
      ['grafana', grafana],
    ] as const) {
      assert.ok(service, `${name} service`);
      assert.deepEqual(service.profiles, ['monitoring'], name);
      // A version, not latest: the dashboard's schemaVersion and promtool's version follow it.
      assert.match(service.image ?? '', /^[a-z/-]+:v?\d+\.\d+\.\d+$/, `${name} image ${service.image}`);
    }
    assert.match(prometheus?.image ?? '', /^prom\/prometheus:/);
    // The OSS image (grafana/grafana-oss is no longer published from 12.4; -enterprise is not OSS).
    assert.match(grafana?.image ?? '', /^grafana\/grafana:/);
    assert.equal(hostPort('prometheus', 9090), 9090);
    assert.equal(hostPort('grafana', 3000), 3000);
  });

  it('mounts files that exist', () => {
    for (const name of ['prometheus', 'grafana']) {
      const mounted = binds(raw.services[name]);
      assert.ok(mounted.size > 0, `${name} mounts files of this repository`);
      for (const host of mounted.values()) assert.ok(existsSync(host), `${name} mounts ${host}`);
    }
  });

  it('scrapes the Tessera services where they serve /metrics and evaluates alerts.yml', () => {
    const source = prometheus?.configs?.find((c) => c.target === '/etc/prometheus/prometheus.yml')?.source;
    const content = raw.configs?.[source ?? '']?.content;
    assert.ok(content, 'an inline Prometheus config mounted at /etc/prometheus/prometheus.yml');
    assert.ok(prometheus?.command?.includes('--config.file=/etc/prometheus/prometheus.yml'));
    const config = parse(content) as {
      rule_files: string[];
      scrape_configs: { dns_sd_configs?: { names: string[]; port: number }[] }[];
    };
    // Rule files are relative to the config's folder: each is a mounted file of this repository.
    const mounted = binds(prometheus);
    for (const file of config.rule_files)
      assert.ok(mounted.has(`/etc/prometheus/${file}`), `${file} is mounted`);
    assert.ok(
      [...mounted.values()].includes('./deploy/prometheus/alerts.yml'),
      'the alert rules are deploy/prometheus/alerts.yml',
    );
    const targets = new Map(
      config.scrape_configs
        .flatMap((s) => s.dns_sd_configs ?? [])
        .flatMap((d) => d.names.map((n) => [n, d.port])),
    );
    // Where the services listen with the shared environment (TESSERA_HTTP_HOST=0.0.0.0): the
    // ingestor and the flusher on the metrics port, the server on its API port.
    assert.deepEqual(Object.fromEntries(targets), {
      ingestor: DEFAULTS.metricsPort,
      flusher: DEFAULTS.metricsPort,
      server: DEFAULTS.httpPort,
    });
    for (const name of targets.keys()) assert.deepEqual(raw.services[name]?.profiles, ['tessera'], name);
    assert.equal(compose['x-tessera-env'].TESSERA_HTTP_HOST, '0.0.0.0');
  });

  it('provisions the Prometheus data source and the deploy/grafana dashboard into Grafana', () => {
    const mounted = binds(grafana);
    const datasources = mounted.get('/etc/grafana/provisioning/datasources');
    const providers = mounted.get('/etc/grafana/provisioning/dashboards');
    assert.equal(datasources, './deploy/grafana/provisioning/datasources');
    assert.equal(providers, './deploy/grafana/provisioning/dashboards');
    const source = (
      parse(readFileSync(`${datasources}/prometheus.yml`, 'utf8')) as {
        datasources: { type: string; url: string }[];
      }
    ).datasources[0]!;
    assert.equal(source.type, 'prometheus');
    const url = new URL(source.url);
    assert.ok(prometheus, 'the data source is a service of this file');
    assert.equal(url.hostname, 'prometheus');
    assert.ok(
      prometheus.ports?.some((p) => p.endsWith(`:${url.port}`)),
      `Prometheus listens on ${url.port}`,
    );
    // The provider reads the folder the dashboard file is mounted in, and the home page is that file.
    const provider = (
      parse(readFileSync(`${providers}/tessera.yml`, 'utf8')) as {
        providers: { options: { path: string } }[];
      }
    ).providers[0]!;
    const dashboard = [...mounted].find(([, host]) => host === './deploy/grafana/tessera.json')?.[0];
    assert.ok(dashboard, 'deploy/grafana/tessera.json is mounted');
    assert.equal(dashboard, `${provider.options.path}/tessera.json`);
    assert.equal(grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, dashboard);
    assert.deepEqual(grafana?.depends_on?.prometheus, { condition: 'service_healthy' });
  });

  it('lets anonymous users view, not edit', () => {
    const env = grafana?.environment ?? {};
    assert.equal(env.GF_AUTH_ANONYMOUS_ENABLED, 'true');
    assert.equal(env.GF_AUTH_ANONYMOUS_ORG_ROLE, 'Viewer');
    assert.equal(env.GF_USERS_ALLOW_SIGN_UP, 'false');
  });
});
