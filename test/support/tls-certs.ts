// Certificates for the TLS tests, made by openssl in the test's own directory (a self-signed one,
// or a private CA and certificates it signs), and an HTTPS client that trusts a given CA, since
// Node's fetch takes no CA of its own.
import { execFileSync } from 'node:child_process';
import { request } from 'node:https';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

/** Names the certificates are valid for: the tests connect to 127.0.0.1. */
const LOOPBACK_SAN = 'subjectAltName=IP:127.0.0.1,DNS:localhost';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed certificate for 127.0.0.1 (its own CA, as `openssl req -x509` makes it), valid `days`. */
export function selfSignedCert(dir: string, name: string, days = 2): CertFiles {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    String(days),
    '-subj',
    `/CN=${name}`,
    '-addext',
    LOOPBACK_SAN,
    '-keyout',
    files.key,
    '-out',
    files.cert,
  ]);
  return files;
}

/** A private CA, as a self-managed Redis or a Kubernetes operator has one. */
export function privateCa(dir: string, name: string): CertFiles {
  return selfSignedCert(dir, name);
}

/** A certificate for 127.0.0.1 signed by `ca` (server and client use alike). */
export function signedCert(dir: string, ca: CertFiles, name: string): CertFiles {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    files.key,
    '-out',
    csr,
  ]);
  execFileSync('sh', ['-c', `printf '%s\\n' "$1" > "$2"`, 'sh', LOOPBACK_SAN, ext]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    files.cert,
  ]);
  return files;
}

export interface HttpsAnswer {
  status: number;
  body: string;
}

/** One HTTPS request that trusts `ca` (a PEM buffer) only. */
export function httpsRequest(
  url: string,
  options: { ca: Buffer; method?: string; headers?: Record<string, string>; body?: string },
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {}, ca: options.ca, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
