// SASL/OAUTHBEARER for kafkajs: the token at every authentication (a new connection, or a
// re-authentication when the broker's session ends, KIP-368) from an OAuth 2 token endpoint with
// the client credentials grant (RFC 6749 §4.4), cached until shortly before it expires, or from a
// file that something else keeps fresh; and the SASL exchange itself (oauthBearerMechanism).
// Neither the client secret nor a token ever enters a message or a log line.
import { readFileSync } from 'node:fs';
import kafkajs, { type Mechanism } from 'kafkajs';
import type { Logger } from 'pino';
import { TesseraError } from '../errors.ts';
import { ENV_NAMES } from './defaults.ts';

export interface OauthBearerToken {
  value: string;
  extensions?: Record<string, string>;
}

export type TokenSource =
  | {
      kind: 'endpoint';
      url: string;
      clientId: string;
      clientSecret: string;
      scope: string;
      audience: string;
    }
  | { kind: 'file'; path: string };

export interface ProviderOptions {
  /** Warnings (a refresh that failed while the cached token is still good) go here. */
  logger?: Logger;
  /** SASL extensions sent with every token (Confluent Cloud: logicalCluster, identityPoolId). */
  extensions?: Record<string, string>;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
  /** How long a token request may take; default 10 s. */
  timeoutMs?: number;
}

/**
 * A token is handed out again until 80% of its lifetime has passed (Kafka's Java client refreshes
 * at the same point, sasl.login.refresh.window.factor), and never with less than this left:
 * kafkajs re-authenticates a connection 10 s before the broker's session ends
 * (`reauthenticationThreshold`), and the broker ends the session when the token expires, so a
 * token with less left would be re-sent before every request.
 */
const MIN_REMAINING_MS = 15_000;
const REFRESH_FACTOR = 0.8;

/** kafkajs' `oauthBearerProvider`: resolves a token, or rejects with an error that says what to fix. */
export function oauthBearerProvider(
  source: TokenSource,
  options: ProviderOptions = {},
): () => Promise<OauthBearerToken> {
  const now = options.now ?? Date.now;
  const withExtensions = (value: string): OauthBearerToken =>
    options.extensions && Object.keys(options.extensions).length > 0
      ? { value, extensions: options.extensions }
      : { value };
  if (source.kind === 'file') return async () => withExtensions(readTokenFile(source.path));

  let cached: { value: string; refreshAt: number; expiresAt: number } | undefined;
  let inFlight: Promise<OauthBearerToken> | undefined;
  const refresh = async (): Promise<OauthBearerToken> => {
    try {
      const fetchedAt = now();
      const token = await requestToken(source, options.timeoutMs ?? 10_000);
      const lifetime = token.expiresInMs;
      cached =
        lifetime === undefined
          ? undefined // no lifetime known: asked again at the next authentication
          : {
              value: token.value,
              expiresAt: fetchedAt + lifetime,
              refreshAt: fetchedAt + Math.min(lifetime * REFRESH_FACTOR, lifetime - MIN_REMAINING_MS),
            };
      return withExtensions(token.value);
    } catch (error) {
      // The IdP briefly down: a token that has not expired yet still logs in.
      if (cached && cached.expiresAt - now() > 1000 && isRetriable(error)) {
        options.logger?.warn(
          { err: (error as Error).message, expiresInMs: cached.expiresAt - now() },
          'could not refresh the Kafka OAuth token; the current one is used until it expires',
        );
        return withExtensions(cached.value);
      }
      throw error;
    } finally {
      inFlight = undefined;
    }
  };
  return async () => {
    if (cached && now() < cached.refreshAt) return withExtensions(cached.value);
    // Connections to several brokers authenticate at once: one request serves them all.
    inFlight ??= refresh();
    return inFlight;
  };
}

function isRetriable(error: unknown): boolean {
  return error instanceof TesseraError && error.retriable;
}

const URL_KEY = ENV_NAMES.kafkaSaslOauthbearerTokenEndpointUrl;
const CLIENT_KEYS = `${ENV_NAMES.kafkaSaslOauthbearerClientId} and ${ENV_NAMES.kafkaSaslOauthbearerClientSecret} (or ${ENV_NAMES.kafkaSaslOauthbearerClientSecretFile})`;

/**
 * POSTs the client credentials grant. The client authenticates with HTTP basic auth, its id and
 * secret not form-encoded first: what Kafka's Java client sends by default
 * (sasl.oauthbearer.header.urlencode=false), so an IdP that works with it works here.
 */
async function requestToken(
  source: Extract<TokenSource, { kind: 'endpoint' }>,
  timeoutMs: number,
): Promise<{ value: string; expiresInMs: number | undefined }> {
  const body = new URLSearchParams({ grant_type: 'client_credentials' });
  if (source.scope !== '') body.set('scope', source.scope);
  if (source.audience !== '') body.set('audience', source.audience);
  const basic = Buffer.from(`${source.clientId}:${source.clientSecret}`).toString('base64');
  let response: Response;
  try {
    response = await fetch(source.url, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (cause) {
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `SASL OAUTHBEARER: cannot reach the token endpoint ${source.url} (${describeFetchError(cause)}); check ${URL_KEY} and that the identity provider is up`,
      { retriable: true, cause, context: { tokenEndpoint: source.url } },
    );
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) throw endpointError(source.url, response.status, text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const answer = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const value = answer.access_token;
  if (typeof value !== 'string' || !isBearerToken(value))
    throw refused(
      `the token endpoint ${source.url} answered HTTP ${response.status} without an access_token; is ${URL_KEY} the identity provider's token endpoint (OpenID discovery's "token_endpoint")?`,
    );
  const expiresIn = Number(answer.expires_in);
  return {
    value,
    expiresInMs: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : jwtLifetimeMs(value),
  };
}

/** What the IdP said (its `error` and `error_description`, RFC 6749 §5.2) and which option decides it. */
function endpointError(url: string, status: number, body: string): Error {
  let error = '';
  let description = '';
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    if (typeof parsed.error === 'string') error = clean(parsed.error);
    if (typeof parsed.error_description === 'string') description = clean(parsed.error_description);
  } catch {
    // not JSON: the status says enough
  }
  const said = [error, description].filter((s) => s !== '').join(': ');
  const answer = `HTTP ${status}${said === '' ? '' : ` ${said}`}`;
  if (status >= 500 || status === 429 || status === 408)
    return new TesseraError(
      'SERVICE_UNAVAILABLE',
      `SASL OAUTHBEARER: the token endpoint ${url} failed (${answer}); it is retried, check that the identity provider is healthy`,
      { retriable: true, context: { tokenEndpoint: url, status } },
    );
  const fix =
    error === 'invalid_scope'
      ? `check ${ENV_NAMES.kafkaSaslOauthbearerScope} (a scope the client may ask for)`
      : error === 'unauthorized_client' || error === 'unsupported_grant_type'
        ? `the client may not use the client credentials grant: allow it at the identity provider (Keycloak: "Service accounts roles" on the client), or check ${ENV_NAMES.kafkaSaslOauthbearerClientId}`
        : error === 'invalid_request' || error === 'invalid_target'
          ? `check ${ENV_NAMES.kafkaSaslOauthbearerScope} and ${ENV_NAMES.kafkaSaslOauthbearerAudience}`
          : status === 404 || status === 405
            ? `check ${URL_KEY} (the identity provider's token endpoint)`
            : `check ${CLIENT_KEYS}`;
  return refused(`the token endpoint ${url} refused the token request (${answer}); ${fix}`);
}

/**
 * A refusal that retries cannot fix, as kafkajs' own for a refused login: kafkajs gives up at once
 * (it is not retriable), the producer CLI exits with a usage error, the ingestor stops.
 */
function refused(message: string): Error {
  return new SaslAuthenticationError(`SASL OAUTHBEARER: ${message}`);
}

// kafkajs' error classes are spread into its CommonJS exports, which no named ESM import finds;
// its typings give this one no constructor argument, though it takes the message as the others do.
const SaslAuthenticationError = kafkajs.KafkaJSSASLAuthenticationError as unknown as new (
  message: string,
) => Error;

/** Printable and short: an IdP's description goes into one log line. */
function clean(text: string): string {
  return text.replace(/[^\x20-\x7E]/g, ' ').slice(0, 200);
}

function describeFetchError(cause: unknown): string {
  const error = cause as Error & { cause?: { code?: string; message?: string } };
  if (error.name === 'TimeoutError') return 'no answer in time';
  return error.cause?.code ?? error.cause?.message ?? error.message;
}

/** RFC 6750's b64token: what kafkajs can put after "auth=Bearer " unchanged. */
function isBearerToken(value: string): boolean {
  return /^[A-Za-z0-9\-._~+/]+=*$/.test(value);
}

/** A token without expires_in lives until its JWT `exp`, if it is a JWT with one. */
function jwtLifetimeMs(token: string): number | undefined {
  const now = Date.now();
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && exp * 1000 > now ? exp * 1000 - now : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The token file as it is now: a sidecar or a projected service-account token replaces it while
 * the process runs. A missing or empty file may be one being replaced, so it is retried.
 */
function readTokenFile(path: string): string {
  const key = ENV_NAMES.kafkaSaslOauthbearerTokenFile;
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (cause) {
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `SASL OAUTHBEARER: cannot read the token file ${key} = ${path} (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); check that whatever writes the token (a sidecar, a projected volume) is running`,
      { retriable: true, cause, context: { tokenFile: path } },
    );
  }
  if (text === '')
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `SASL OAUTHBEARER: the token file ${key} = ${path} is empty; check that whatever writes the token is running`,
      { retriable: true, context: { tokenFile: path } },
    );
  if (!isBearerToken(text))
    throw refused(
      `${key} = ${path} does not hold a bearer token (one line, a JWT or another RFC 6750 token, nothing else)`,
    );
  return text;
}

/**
 * The OAUTHBEARER exchange (RFC 7628), in place of kafkajs' own: a broker that refuses a token does
 * not fail the SaslAuthenticate request but answers with an error challenge
 * (`{"status":"invalid_token"}`), which kafkajs 2 takes for success; the broker then closes the
 * connection at the next request and all kafkajs reports is "No brokers in the broker pool". Here
 * the challenge is answered as RFC 7628 §3.2.3 asks (one 0x01 byte, the broker then ends the
 * exchange) and becomes a refused login that says what to check.
 */
export function oauthBearerMechanism(provider: () => Promise<OauthBearerToken>): Mechanism {
  return {
    mechanism: 'oauthbearer',
    authenticationProvider: ({ host, port, logger, saslAuthenticate }) => ({
      authenticate: async () => {
        const token = await provider();
        const challenge = await saslAuthenticate<Buffer>({
          request: { encode: () => saslBytes(initialResponse(token)) },
          response: { decode: saslPayload, parse: (bytes) => bytes },
        }).catch((cause: Error) => {
          throw refused(`the broker ${host}:${port} refused the login (${cause.message})`);
        });
        if (!challenge || challenge.length === 0) return;
        await saslAuthenticate({ request: { encode: () => saslBytes(SOH) } }).catch(() => undefined);
        const error = new SaslAuthenticationError(
          `SASL OAUTHBEARER: the broker ${host}:${port} refused the token (${challengeStatus(challenge)}): its audience, issuer, expiry or signing key is not what the listener expects (sasl.oauthbearer.expected.audience, expected.issuer, jwks.endpoint.url; the broker's log names the claim); check the token endpoint or token file Tessera gets it from (TESSERA_KAFKA_SASL_OAUTHBEARER_*)`,
        );
        logger.error(error.message, { broker: `${host}:${port}` });
        throw error;
      },
    }),
  };
}

const SOH = '\u0001';

/** RFC 7628 §3.1: GS2 header, then `auth=Bearer <token>` and the extensions, each ended by 0x01. */
function initialResponse(token: OauthBearerToken): string {
  const extensions = Object.entries(token.extensions ?? {}).map(([k, v]) => `${k}=${v}${SOH}`);
  return `n,,${SOH}auth=Bearer ${token.value}${SOH}${extensions.join('')}${SOH}`;
}

/** Kafka's BYTES: a 32-bit big-endian length, then the bytes. */
function saslBytes(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length);
  return Buffer.concat([length, body]);
}

/** kafkajs hands over the answer's bytes with their BYTES length still in front. */
function saslPayload(bytes: Buffer): Buffer {
  return bytes.length < 4 ? Buffer.alloc(0) : bytes.subarray(4, 4 + Math.max(0, bytes.readInt32BE(0)));
}

function challengeStatus(challenge: Buffer): string {
  try {
    const status = (JSON.parse(challenge.toString('utf8')) as { status?: unknown }).status;
    return typeof status === 'string' ? clean(status) : 'no status';
  } catch {
    return 'an unreadable answer';
  }
}

/** `key=value,key=value` (checked by the config schema) as kafkajs' extensions object. */
export function parseExtensions(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === '') return out;
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}
