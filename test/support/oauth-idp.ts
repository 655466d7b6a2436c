// A tiny OAuth 2 identity provider for the OAUTHBEARER tests, on loopback: it signs RS256 JWTs with a
// key of its own (node:crypto), serves that key as a JWKS (what the broker's
// OAuthBearerValidatorCallbackHandler checks tokens against) and a client credentials token endpoint
// (RFC 6749 §4.4) that checks the client's id and secret, as Keycloak's or Okta's would.
// It runs as a child process: the private broker starts (and fetches the JWKS) while the test's own
// event loop is blocked in execFileSync.
import { type ChildProcess, spawn } from 'node:child_process';
import { createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { trackChild } from './process-guard.ts';

export interface IdpSettings {
  clientId: string;
  clientSecret: string;
  audience: string;
  /** Lifetime of the tokens the endpoint issues, in seconds (expires_in and the JWT's exp). */
  expiresInSeconds: number;
}

/** The running IdP, seen from the test. */
export class OauthIdp {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly settings: IdpSettings,
  ) {}

  static async start(settings: IdpSettings): Promise<OauthIdp> {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, OAUTH_IDP_SETTINGS: JSON.stringify(settings) },
    });
    trackChild(child, 'OAuth test IdP');
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^listening (\d+)$/m.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`the OAuth test IdP exited (${code}) before listening`)));
    });
    return new OauthIdp(child, `http://127.0.0.1:${port}`, settings);
  }

  get issuer(): string {
    return this.url;
  }
  get jwksUrl(): string {
    return `${this.url}/jwks`;
  }
  get tokenUrl(): string {
    return `${this.url}/token`;
  }

  /** A signed token for `sub`, valid for `seconds` (e.g. for a token file); `audience` overrides the IdP's. */
  async mint(sub: string, seconds: number, audience?: string): Promise<string> {
    const q = new URLSearchParams({ sub, seconds: String(seconds), ...(audience ? { audience } : {}) });
    const response = await fetch(`${this.url}/mint?${q}`, { method: 'POST' });
    return response.text();
  }

  /** Tokens the token endpoint issued, and requests it refused, so far. */
  async stats(): Promise<{ issued: number; refused: number }> {
    return (await (await fetch(`${this.url}/stats`)).json()) as { issued: number; refused: number };
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

function serve(settings: IdpSettings): void {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const jwks = JSON.stringify({
    keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }],
  });
  let issuer = '';
  const stats = { issued: 0, refused: 0 };
  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const sign = (sub: string, seconds: number, audience: string, scope: string) => {
    const now = Math.floor(Date.now() / 1000);
    const head = b64({ alg: 'RS256', typ: 'JWT', kid });
    // Kafka's validator refuses an empty scope claim: none at all, then.
    const body = b64({
      iss: issuer,
      sub,
      aud: audience,
      iat: now,
      nbf: now,
      exp: now + seconds,
      ...(scope === '' ? {} : { scope }),
    });
    const signature = createSign('RSA-SHA256').update(`${head}.${body}`).sign(privateKey, 'base64url');
    return `${head}.${body}.${signature}`;
  };
  const send = (res: ServerResponse, status: number, body: string | object) => {
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let data = '';
      req.on('data', (d: Buffer) => {
        data += d.toString();
      });
      req.on('end', () => resolve(data));
    });
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    if (req.method === 'GET' && url.pathname === '/jwks') return send(res, 200, JSON.parse(jwks));
    if (req.method === 'GET' && url.pathname === '/stats') return send(res, 200, stats);
    if (req.method === 'POST' && url.pathname === '/mint') {
      const q = url.searchParams;
      return send(
        res,
        200,
        sign(q.get('sub') ?? 'nobody', Number(q.get('seconds')), q.get('audience') ?? settings.audience, ''),
      );
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const form = new URLSearchParams(await read(req));
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      const decoded = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      if (
        colon < 0 ||
        decoded.slice(0, colon) !== settings.clientId ||
        decoded.slice(colon + 1) !== settings.clientSecret
      ) {
        stats.refused += 1;
        return send(res, 401, { error: 'invalid_client', error_description: 'Invalid client credentials' });
      }
      if (form.get('grant_type') !== 'client_credentials')
        return send(res, 400, { error: 'unsupported_grant_type' });
      stats.issued += 1;
      const seconds = settings.expiresInSeconds;
      return send(res, 200, {
        access_token: sign(settings.clientId, seconds, settings.audience, form.get('scope') ?? ''),
        token_type: 'Bearer',
        expires_in: seconds,
      });
    }
    send(res, 404, 'not found');
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    issuer = `http://127.0.0.1:${port}`;
    process.stdout.write(`listening ${port}\n`);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  serve(JSON.parse(process.env.OAUTH_IDP_SETTINGS ?? '{}') as IdpSettings);
