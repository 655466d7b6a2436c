// Renewed TLS files (shared/config/cert-reload.ts) on the client side: kafkajs' next connection
// shows the renewed client certificate (to a TLS listener that records what each connection
// shows: kafkajs' own socket code, no broker needed), a broken renewal is refused and counted once
// while the files in use stay, and the expiry times are those openssl reads.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createServer, type TLSSocket } from 'node:tls';
import { Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { createIngestorMetrics } from '../../services/ingestor/metrics.ts';
import {
  certificateNotAfter,
  forgetTlsFiles,
  startCertificateReload,
} from '../../shared/config/cert-reload.ts';
import { kafkaSecurityOptions } from '../../shared/config/kafka-security.ts';
import { privateCa, selfSignedCert, signedCert } from '../support/tls-certs.ts';

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8' });
}
const notAfterOf = (certFile: string) =>
  Date.parse(/notAfter=(.*)/.exec(openssl(['x509', '-in', certFile, '-noout', '-enddate']))![1]!) / 1000;
const fingerprintOf = (certFile: string) =>
  /Fingerprint=([0-9A-Fa-f:]+)/
    .exec(openssl(['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256']))![1]!
    .toUpperCase();

describe('renewed client certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cert-reload-'));
  const ca = privateCa(dir, 'ca');
  const first = signedCert(dir, ca, 'client-1');
  const second = signedCert(dir, ca, 'client-2');
  const server = signedCert(dir, ca, 'broker');
  after(() => {
    forgetTlsFiles();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reaches kafkajs' next connection; a broken renewal is refused once and the files in use stay", async () => {
    forgetTlsFiles();
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    copyFileSync(first.cert, cert);
    copyFileSync(first.key, key);
    // Each connection's client certificate, then the connection is dropped (no Kafka protocol).
    const shown: string[] = [];
    const listener = createServer(
      {
        cert: readFileSync(server.cert),
        key: readFileSync(server.key),
        ca: readFileSync(ca.cert),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket: TLSSocket) => {
        shown.push(socket.getPeerCertificate().fingerprint256);
        socket.destroy();
      },
    );
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as AddressInfo).port;
    const metrics = createIngestorMetrics();
    const stop = startCertificateReload({
      logger: pino({ level: 'silent' }),
      intervalMs: 0, // SIGHUP only: the test decides when
      metrics: { expiry: metrics.tlsCertificateExpiry, reloads: metrics.tlsReloads },
    });
    const sample = async (series: string) => {
      const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const buildSsl = async () => {
      const { ssl } = kafkaSecurityOptions({
        kafkaTls: true,
        kafkaTlsCaFile: ca.cert,
        kafkaTlsCertFile: cert,
        kafkaTlsKeyFile: key,
        kafkaSaslMechanism: '',
        kafkaSaslUsername: '',
        kafkaSaslPassword: '',
        kafkaSaslPasswordFile: '',
      });
      return ssl;
    };
    try {
      // One options object, built once, as a service builds its Kafka client at start.
      const ssl = await buildSsl();
      const kafka = new Kafka({
        brokers: [`127.0.0.1:${port}`],
        ssl,
        connectionTimeout: 2000,
        retry: { retries: 0 },
        logLevel: logLevel.NOTHING,
      });
      const attempt = async () => {
        const admin = kafka.admin();
        await admin.connect().catch(() => {});
        await admin.disconnect().catch(() => {});
      };
      await attempt();
      assert.equal(shown.at(-1), fingerprintOf(first.cert));
      const expiry = 'tessera_ingestor_tls_certificate_expiry_timestamp_seconds';
      assert.equal(await sample(`${expiry}{use="kafka_client"}`), notAfterOf(first.cert));
      assert.equal(await sample(`${expiry}{use="kafka_ca"}`), notAfterOf(ca.cert));

      copyFileSync(second.cert, cert);
      copyFileSync(second.key, key);
      process.emit('SIGHUP', 'SIGHUP');
      await attempt();
      assert.equal(shown.at(-1), fingerprintOf(second.cert), 'the next connection shows the new certificate');
      const reloads = 'tessera_ingestor_tls_reloads_total';
      assert.equal(await sample(`${reloads}{use="kafka_client",outcome="reloaded"}`), 1);
      assert.equal(await sample(`${expiry}{use="kafka_client"}`), notAfterOf(second.cert));

      // The first key beside the second certificate: refused, and the second pair stays in use.
      writeFileSync(key, readFileSync(first.key));
      process.emit('SIGHUP', 'SIGHUP');
      await attempt();
      assert.equal(shown.at(-1), fingerprintOf(second.cert));
      assert.equal(await sample(`${reloads}{use="kafka_client",outcome="refused"}`), 1);
      assert.equal(await sample(`${reloads}{use="kafka_client",outcome="reloaded"}`), 1);
    } finally {
      stop();
      listener.close();
    }
  });

  it('dates a file by its first certificate, and a CA bundle by its earliest', () => {
    const bundle = join(dir, 'bundle.crt');
    // The CA (made with 2 days) and a longer-lived one after it.
    const longer = selfSignedCert(dir, 'longer', 30).cert;
    writeFileSync(bundle, Buffer.concat([readFileSync(longer), readFileSync(ca.cert)]));
    const pem = readFileSync(bundle);
    assert.equal(certificateNotAfter(pem, 'first'), notAfterOf(longer));
    assert.equal(certificateNotAfter(pem, 'earliest'), notAfterOf(ca.cert));
    assert.ok(notAfterOf(ca.cert) < notAfterOf(longer));
    assert.equal(certificateNotAfter(Buffer.from('no certificate here'), 'first'), undefined);
  });
});
