// A private Kafka broker with the listeners of a managed Kafka, for the TLS and SASL tests: SASL_SSL
// (SCRAM-SHA-256/512 users added when its storage is formatted, PLAIN users in the listener's JAAS
// config, and OAUTHBEARER when started with an IdP: signed JWTs checked against the IdP's JWKS) and
// SSL with client certificates required (mutual TLS). Its CA, server and client
// certificates are made in its temporary directory by tls-certs.ts. Started and stopped by the local
// stack's own shell functions (scripts/lib/kafka.sh), with their extra-properties hooks.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, portOpen } from './flusher-process.ts';
import { newTestRun, type TestRun } from './ingestor-process.ts';
import { trackPid } from './process-guard.ts';
import { privateCa, signedCert } from './tls-certs.ts';

export type KafkaLogin = 'scram-sha-256' | 'scram-sha-512' | 'plain' | 'mtls' | 'oauthbearer';

/**
 * OAUTHBEARER on the SASL_SSL listener: tokens must be signed by a key in `jwksUrl`, for
 * `audience`, from `issuer`. The broker ends a session after `reauthMs` (or when its token
 * expires, if sooner): clients must re-authenticate (KIP-368).
 */
export interface BrokerOauth {
  jwksUrl: string;
  issuer: string;
  audience: string;
  reauthMs: number;
}

/** The broker's users: `ksecscram` for both SCRAM mechanisms, `ksecplain` for PLAIN. */
export const USERS = {
  scram: { username: 'ksecscram', password: `scram-${randomUUID()}` },
  plain: { username: 'ksecplain', password: `plain-${randomUUID()}` },
};

export class KafkaSecurityBroker {
  readonly dir = mkdtempSync(join(tmpdir(), 'tessera-kafka-security-'));

  private constructor(
    /** PLAINTEXT (the stack's readiness check), CONTROLLER, SASL_SSL, SSL with client auth. */
    readonly ports: { plaintext: number; controller: number; saslSsl: number; mtls: number },
    private readonly oauth?: BrokerOauth,
    private readonly acls = false,
  ) {}

  /**
   * Makes the certificates, formats the storage with the SCRAM users and starts the broker.
   * KAFKA_SECURITY_TEST_PORT: the first of four consecutive ports to use (default: free ones).
   * With `acls`, the broker authorizes every request (StandardAuthorizer, nothing allowed without
   * an ACL); the PLAINTEXT listener's clients (User:ANONYMOUS, as is the controller) are super users,
   * so a test grants the SASL users what it wants through an admin client there.
   */
  static async start(oauth?: BrokerOauth, options: { acls?: boolean } = {}): Promise<KafkaSecurityBroker> {
    const base = Number(process.env.KAFKA_SECURITY_TEST_PORT ?? 0);
    const [plaintext, controller, saslSsl, mtls] =
      base > 0 ? [base, base + 1, base + 2, base + 3] : await freePorts(4);
    const broker = new KafkaSecurityBroker(
      { plaintext: plaintext!, controller: controller!, saslSsl: saslSsl!, mtls: mtls! },
      oauth,
      options.acls ?? false,
    );
    try {
      broker.makeCertificates();
      broker.startBroker();
      await broker.waitForListeners();
    } catch (error) {
      // A failed start (kafka_start gave up, a listener never opened) leaves a broker running in a
      // session of its own that the caller, never given this object, could not remove().
      broker.remove();
      throw error;
    }
    return broker;
  }

  file(name: string): string {
    return join(this.dir, name);
  }

  /** TESSERA_* variables of a client that logs in with `login` (over TLS, trusting the test CA). */
  clientEnv(login: KafkaLogin): Record<string, string> {
    const tls = { TESSERA_KAFKA_TLS: 'true', TESSERA_KAFKA_TLS_CA_FILE: this.file('ca.crt') };
    if (login === 'mtls')
      return {
        ...tls,
        TESSERA_KAFKA_BROKERS: `127.0.0.1:${this.ports.mtls}`,
        TESSERA_KAFKA_TLS_CERT_FILE: this.file('client.crt'),
        TESSERA_KAFKA_TLS_KEY_FILE: this.file('client.key'),
      };
    // The token's source (endpoint or file) is the test's to add.
    if (login === 'oauthbearer')
      return {
        ...tls,
        TESSERA_KAFKA_BROKERS: `127.0.0.1:${this.ports.saslSsl}`,
        TESSERA_KAFKA_SASL_MECHANISM: login,
      };
    const user = login === 'plain' ? USERS.plain : USERS.scram;
    return {
      ...tls,
      TESSERA_KAFKA_BROKERS: `127.0.0.1:${this.ports.saslSsl}`,
      TESSERA_KAFKA_SASL_MECHANISM: login,
      TESSERA_KAFKA_SASL_USERNAME: user.username,
      TESSERA_KAFKA_SASL_PASSWORD: user.password,
    };
  }

  /** SIGKILLs the broker and deletes its data and certificates. */
  remove(): void {
    try {
      const pid = Number(readFileSync(join(this.dir, 'kafka', 'kafka.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
    } catch {
      // never started, or already gone
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private makeCertificates(): void {
    // A private CA; the broker's certificate and the client's (mTLS) signed by it, both naming
    // 127.0.0.1, the address the clients dial (Node checks it).
    const ca = privateCa(this.dir, 'ca');
    const server = signedCert(this.dir, ca, 'server');
    signedCert(this.dir, ca, 'client');
    // A PEM key store is the unencrypted PKCS#8 key followed by the certificate.
    writeFileSync(
      this.file('server-keystore.pem'),
      readFileSync(server.key, 'utf8') + readFileSync(server.cert, 'utf8'),
    );
  }

  private startBroker(): void {
    const { plaintext, controller, saslSsl, mtls } = this.ports;
    const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
    const properties = [
      `listeners=PLAINTEXT://127.0.0.1:${plaintext},CONTROLLER://127.0.0.1:${controller},SASL_SSL://127.0.0.1:${saslSsl},SSL://127.0.0.1:${mtls}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${plaintext},SASL_SSL://127.0.0.1:${saslSsl},SSL://127.0.0.1:${mtls}`,
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL',
      'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN',
      `listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=${scram}`,
      `listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${scram}`,
      `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${USERS.plain.username}="${USERS.plain.password}";`,
      'ssl.keystore.type=PEM',
      `ssl.keystore.location=${this.file('server-keystore.pem')}`,
      'ssl.truststore.type=PEM',
      `ssl.truststore.location=${this.file('ca.crt')}`,
      'listener.name.ssl.ssl.client.auth=required',
      ...this.oauthProperties(),
      ...(this.acls
        ? [
            'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
            'super.users=User:ANONYMOUS',
          ]
        : []),
    ].join('\n');
    const { username, password } = USERS.scram;
    const formatArgs = ['SCRAM-SHA-256', 'SCRAM-SHA-512']
      .map((m) => `--add-scram ${m}=[name=${username},password=${password}]`)
      .join(' ');
    const root = new URL('../../', import.meta.url).pathname;
    execFileSync(
      'bash',
      [
        '-c',
        'source scripts/lib/common.sh && source scripts/lib/java.sh && source scripts/lib/kafka.sh && kafka_start',
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          TESSERA_STACK_DIR: this.dir,
          TESSERA_KAFKA_PORT: String(plaintext),
          TESSERA_KAFKA_CONTROLLER_PORT: String(controller),
          TESSERA_KAFKA_EXTRA_PROPERTIES: properties,
          TESSERA_KAFKA_FORMAT_ARGS: formatArgs,
          // Kafka 4 fetches only the URLs this JVM property allows (the JWKS); the JVM reads it
          // from JAVA_TOOL_OPTIONS, which kafka_start passes on.
          ...(this.oauth
            ? {
                JAVA_TOOL_OPTIONS: `-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=${this.oauth.jwksUrl}`,
              }
            : {}),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 120_000,
      },
    );
    trackPid(
      Number(readFileSync(join(this.dir, 'kafka', 'kafka.pid'), 'utf8')),
      `Kafka security broker on ${plaintext} (KafkaSecurityBroker)`,
    );
  }

  /** OAUTHBEARER next to SCRAM and PLAIN on the SASL_SSL listener, validating JWTs (Kafka 4.x). */
  private oauthProperties(): string[] {
    if (!this.oauth) return [];
    const { jwksUrl, issuer, audience, reauthMs } = this.oauth;
    const prefix = 'listener.name.sasl_ssl.oauthbearer';
    return [
      'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN,OAUTHBEARER',
      `${prefix}.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;`,
      `${prefix}.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler`,
      `${prefix}.connections.max.reauth.ms=${reauthMs}`,
      ...[
        `sasl.oauthbearer.jwks.endpoint.url=${jwksUrl}`,
        `sasl.oauthbearer.expected.audience=${audience}`,
        `sasl.oauthbearer.expected.issuer=${issuer}`,
        // An expired token is refused at once, not 30 s later (the default skew).
        'sasl.oauthbearer.clock.skew.seconds=0',
        // Kafka 4.1's default (DefaultJwtValidator), built by class name, gets no key resolver and
        // falls back to ClientJwtValidator, which checks no signature and no audience: named here.
        'sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator',
      ].flatMap((line) => [line, `${prefix}.${line}`]),
    ];
  }

  /** kafka_start waits for the PLAINTEXT port only; the secure listeners open with it, or soon after. */
  private async waitForListeners(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (const port of [this.ports.saslSsl, this.ports.mtls])
      while (!(await portOpen(port))) {
        if (Date.now() > deadline)
          throw new Error(`the private broker does not listen on ${port}: see ${this.dir}/kafka/logs`);
        await new Promise((r) => setTimeout(r, 100));
      }
  }
}

/**
 * A test run (ingestor-process.ts' TestRun: topic prefix, consumer group and Redis key prefix of
 * its own) named `ksec-...`, whose Kafka clients, the test's and the ingestor's, use `env`'s
 * TLS and SASL settings.
 */
export function kafkaSecurityRun(env: Record<string, string>): TestRun {
  return newTestRun(env, 'ksec');
}
