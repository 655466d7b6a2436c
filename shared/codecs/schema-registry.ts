// Where Confluent schema ids are resolved: a schema registry over HTTP (GET /schemas/ids/<id>) or
// a local directory of <id>.avsc files. Unknown ids resolve to undefined (the message is
// undecodable); an unreachable registry throws a retriable error instead, so that callers pause
// rather than dead-letter good events. A registry that needs a login (Confluent Cloud) gets basic
// auth from the URL's user:pass@ or from its own settings, or a bearer token read from a file at
// each request; the login is sent as an Authorization header and never shown in a message.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TesseraError } from '../errors.ts';

/** Schema JSON text of an id, or undefined when the id is unknown. */
export type SchemaLookup = (id: number) => Promise<string | undefined>;

export const DEFAULT_REGISTRY_TIMEOUT_MS = 5000;

const REGISTRY_JSON = 'application/vnd.schemaregistry.v1+json';

/**
 * A registry login configured apart from its URL: basic auth (TESSERA_SCHEMA_REGISTRY_USERNAME and
 * _PASSWORD or _PASSWORD_FILE, Confluent's basic.auth.user.info), or a bearer token in a file that
 * something else keeps fresh (TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE), read again at each request.
 */
export type RegistryAuth =
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer-file'; path: string };

/** A registry's URL and its login, when that is not in the URL. A plain string: the URL alone. */
export interface RegistryEndpoint {
  url: string;
  auth?: RegistryAuth;
}

/** A registry's base URL without credentials (the one messages show), and how to log in, if at all. */
interface Registry {
  base: string;
  /** The Authorization header of the next request, if any. */
  authorization: () => Promise<string | undefined>;
}

const noLogin = async () => undefined;

function basic(username: string, password: string): () => Promise<string> {
  const header = `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
  return async () => header;
}

/**
 * fetch refuses a URL with credentials (and its error would repeat them): they leave the URL for
 * an Authorization header. Percent-encoded (a secret with `/` or `@` in it) they are decoded first.
 * A login given apart from the URL as well is refused: the configuration refuses it at start.
 */
export function registryAt(registry: string | RegistryEndpoint): Registry {
  const { url, auth } = typeof registry === 'string' ? { url: registry, auth: undefined } : registry;
  const login =
    auth === undefined
      ? noLogin
      : auth.kind === 'basic'
        ? basic(auth.username, auth.password)
        : () => bearerToken(auth.path);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { base: url.replace(/\/+$/, ''), authorization: login };
  }
  if (parsed.username === '' && parsed.password === '')
    return { base: url.replace(/\/+$/, ''), authorization: login };
  if (auth !== undefined)
    throw new TesseraError(
      'CONFIG_INVALID',
      'TESSERA_SCHEMA_REGISTRY_URL holds credentials (user:pass@) and a login is configured apart from it as well (TESSERA_SCHEMA_REGISTRY_USERNAME, _PASSWORD, _PASSWORD_FILE or _BEARER_TOKEN_FILE): give the login one way',
      { context: { invalid: ['TESSERA_SCHEMA_REGISTRY_URL'] } },
    );
  const username = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  parsed.username = '';
  parsed.password = '';
  return { base: parsed.toString().replace(/\/+$/, ''), authorization: basic(username, password) };
}

/** RFC 6750's b64token: what an Authorization header may carry (a JWT is one). */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The token file as it is now (a sidecar or a projected volume replaces it while the process
 * runs). Missing or empty it may be in the middle of a replacement: a retriable error, so callers
 * pause instead of dead-lettering. The token itself never reaches a message.
 */
async function bearerToken(path: string): Promise<string> {
  const problem = (what: string, cause?: unknown) =>
    new TesseraError(
      'SERVICE_UNAVAILABLE',
      `schema registry bearer token: TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE = ${path} ${what}; check that whatever writes the token (a sidecar, a projected volume) is running`,
      { retriable: true, ...(cause === undefined ? {} : { cause }), context: { tokenFile: path } },
    );
  let text: string;
  try {
    text = (await readFile(path, 'utf8')).trim();
  } catch (cause) {
    throw problem(`cannot be read (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`, cause);
  }
  if (text === '') throw problem('is empty');
  if (!BEARER_TOKEN.test(text))
    throw problem('does not hold a bearer token (one line: a JWT or another RFC 6750 token, nothing else)');
  return `Bearer ${text}`;
}

/** A status a retry can change: the registry failing, throttling, or timing out the request (408). */
function retriableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** What an unexpected status says; a refused login names where the credentials come from. */
function statusProblem(target: string, status: number): string {
  return status === 401 || status === 403
    ? `schema registry ${target} answered HTTP ${status} (not authorized): check the login, given one way: ` +
        'TESSERA_SCHEMA_REGISTRY_USERNAME with TESSERA_SCHEMA_REGISTRY_PASSWORD or TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE ' +
        '(Confluent Cloud: the Schema Registry API key and secret), the credentials in TESSERA_SCHEMA_REGISTRY_URL ' +
        '(https://<user>:<password>@host, percent-encoded), or the token in TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE' +
        (status === 403 ? '; 403: the login is known but may not read or register this subject' : '')
    : `schema registry ${target} answered HTTP ${status}`;
}

/** One request to the registry; no answer within the timeout is a retriable SERVICE_UNAVAILABLE. */
async function askRegistry(
  registry: Registry,
  target: string,
  timeoutMs: number,
  context: Record<string, unknown>,
  body?: string,
): Promise<Response> {
  const authorization = await registry.authorization();
  try {
    return await fetch(target, {
      headers: {
        accept: `${REGISTRY_JSON}, application/json`,
        ...(body === undefined ? {} : { 'content-type': REGISTRY_JSON }),
        ...(authorization === undefined ? {} : { authorization }),
      },
      ...(body === undefined ? {} : { method: 'POST', body }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (cause) {
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `schema registry ${target} unreachable (timeout ${timeoutMs} ms): ${(cause as Error).message}; check TESSERA_SCHEMA_REGISTRY_URL`,
      { retriable: true, cause, context: { url: target, ...context } },
    );
  }
}

export function registryLookup(
  endpoint: string | RegistryEndpoint,
  timeoutMs = DEFAULT_REGISTRY_TIMEOUT_MS,
): SchemaLookup {
  const registry = registryAt(endpoint);
  return async (id) => {
    const target = `${registry.base}/schemas/ids/${id}`;
    const response = await askRegistry(registry, target, timeoutMs, { schemaId: id });
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new TesseraError('SERVICE_UNAVAILABLE', statusProblem(target, response.status), {
        retriable: retriableStatus(response.status),
        context: { url: target, schemaId: id, status: response.status },
      });
    }
    // A body cut off or stalled past the timeout (the abort lands in json()), or a page that is not
    // the registry's (a proxy's): retriable, so the ingestor pauses the partitions and asks again,
    // where a permanent error restarted its consumer and rebalanced the group.
    let failure: unknown;
    const body = (await response.json().catch((error: unknown) => {
      failure = error;
      return null;
    })) as { schema?: unknown; schemaType?: unknown } | null;
    if (body === null || typeof body.schema !== 'string') {
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `schema registry ${target} answered without a "schema" string${failure === undefined ? '' : ` (${(failure as Error).message})`}; is TESSERA_SCHEMA_REGISTRY_URL the registry?`,
        {
          retriable: true,
          ...(failure === undefined ? {} : { cause: failure }),
          context: { url: target, schemaId: id },
        },
      );
    }
    // Protobuf and JSON-schema ids are not Avro: for an Avro source they are as good as unknown.
    if (body.schemaType !== undefined && body.schemaType !== 'AVRO') return undefined;
    return body.schema;
  };
}

export function directoryLookup(dir: string): SchemaLookup {
  return async (id) => {
    try {
      return await readFile(join(dir, `${id}.avsc`), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      // Another error than a missing file (EMFILE, EACCES) can pass: the partitions pause, not dead-letter.
      throw new TesseraError('SERVICE_UNAVAILABLE', `cannot read schema file ${join(dir, `${id}.avsc`)}`, {
        retriable: true,
        cause: error,
        context: { dir, schemaId: id },
      });
    }
  };
}

/** Tries each lookup in order; the first that knows the id wins. */
export function chainLookups(lookups: readonly SchemaLookup[]): SchemaLookup {
  return async (id) => {
    for (const lookup of lookups) {
      const text = await lookup(id);
      if (text !== undefined) return text;
    }
    return undefined;
  };
}

/**
 * Registers an Avro schema under a subject (POST <url>/subjects/<subject>/versions) and returns its
 * id. A registry answers the existing id for a schema it already holds, so registering at every
 * start is idempotent. An unreachable registry or a 5xx is retriable; a refusal (409: incompatible
 * with the subject's latest version, 422: invalid) is not, and names the subject.
 */
export async function registerSchema(
  endpoint: string | RegistryEndpoint,
  subject: string,
  schema: string,
  timeoutMs = DEFAULT_REGISTRY_TIMEOUT_MS,
): Promise<number> {
  const registry = registryAt(endpoint);
  const target = `${registry.base}/subjects/${encodeURIComponent(subject)}/versions`;
  const response = await askRegistry(registry, target, timeoutMs, { subject }, JSON.stringify({ schema }));
  const text = await response.text().catch(() => '');
  if (!response.ok) {
    const refused = response.status === 409 || response.status === 422;
    throw new TesseraError(
      refused ? 'CONFIG_INVALID' : 'SERVICE_UNAVAILABLE',
      refused
        ? `schema registry refused the schema of subject ${subject} (HTTP ${response.status}: ${text.slice(0, 300)}); ` +
            'a changed feature type is incompatible with the registered version: change the subject compatibility or its consumers first'
        : statusProblem(target, response.status),
      {
        retriable: !refused && retriableStatus(response.status),
        context: { url: target, subject, status: response.status },
      },
    );
  }
  let id: unknown;
  try {
    id = (JSON.parse(text) as { id?: unknown }).id;
  } catch {
    id = undefined;
  }
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw new TesseraError('SERVICE_UNAVAILABLE', `schema registry ${target} answered without a schema id`, {
      context: { url: target, subject },
    });
  }
  return id;
}

/**
 * The latest schema of a subject (GET <url>/subjects/<subject>/versions/latest), or undefined when
 * the registry has no such subject; unreachable or failing: a retriable error.
 */
export async function latestSchema(
  endpoint: string | RegistryEndpoint,
  subject: string,
  timeoutMs = DEFAULT_REGISTRY_TIMEOUT_MS,
): Promise<{ id: number; schema: string } | undefined> {
  const registry = registryAt(endpoint);
  const target = `${registry.base}/subjects/${encodeURIComponent(subject)}/versions/latest`;
  const response = await askRegistry(registry, target, timeoutMs, { subject });
  if (response.status === 404) {
    await response.body?.cancel();
    return undefined;
  }
  const body = (await response.json().catch(() => null)) as {
    id?: unknown;
    schema?: unknown;
    schemaType?: unknown;
  } | null;
  if (!response.ok || body === null || typeof body.id !== 'number' || typeof body.schema !== 'string') {
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      response.ok
        ? `schema registry ${target} answered HTTP ${response.status} without an id and a schema`
        : statusProblem(target, response.status),
      { retriable: retriableStatus(response.status), context: { url: target, subject } },
    );
  }
  if (body.schemaType !== undefined && body.schemaType !== 'AVRO') return undefined;
  return { id: body.id, schema: body.schema };
}
