// Where Confluent schema ids are resolved: a schema registry over HTTP (GET /schemas/ids/<id>) or
// a local directory of <id>.avsc files. Unknown ids resolve to undefined (the message is
// undecodable); an unreachable registry throws a retriable error instead, so that callers pause
// rather than dead-letter good events. A registry that needs basic auth (Confluent Cloud) gets it
// from the URL's user:pass@, sent as an Authorization header and never shown in a message.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TesseraError } from '../errors.ts';

/** Schema JSON text of an id, or undefined when the id is unknown. */
export type SchemaLookup = (id: number) => Promise<string | undefined>;

export const DEFAULT_REGISTRY_TIMEOUT_MS = 5000;

const REGISTRY_JSON = 'application/vnd.schemaregistry.v1+json';

/** A registry's base URL without credentials (the one messages show), and its basic auth if any. */
interface Registry {
  base: string;
  authorization?: string;
}

/**
 * fetch refuses a URL with credentials (and its error would repeat them): they leave the URL for
 * an Authorization header. Percent-encoded (a secret with `/` or `@` in it) they are decoded first.
 */
export function registryAt(url: string): Registry {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { base: url.replace(/\/+$/, '') };
  }
  if (parsed.username === '' && parsed.password === '') return { base: url.replace(/\/+$/, '') };
  const credentials = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
  parsed.username = '';
  parsed.password = '';
  return {
    base: parsed.toString().replace(/\/+$/, ''),
    authorization: `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`,
  };
}

/** What an unexpected status says; a refused login names where the credentials come from. */
function statusProblem(target: string, status: number): string {
  return status === 401 || status === 403
    ? `schema registry ${target} answered HTTP ${status} (not authorized): check the credentials in TESSERA_SCHEMA_REGISTRY_URL (https://<user>:<password>@host, percent-encoded)`
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
  try {
    return await fetch(target, {
      headers: {
        accept: `${REGISTRY_JSON}, application/json`,
        ...(body === undefined ? {} : { 'content-type': REGISTRY_JSON }),
        ...(registry.authorization === undefined ? {} : { authorization: registry.authorization }),
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

export function registryLookup(url: string, timeoutMs = DEFAULT_REGISTRY_TIMEOUT_MS): SchemaLookup {
  const registry = registryAt(url);
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
        retriable: response.status >= 500 || response.status === 429,
        context: { url: target, schemaId: id, status: response.status },
      });
    }
    const body = (await response.json().catch(() => null)) as {
      schema?: unknown;
      schemaType?: unknown;
    } | null;
    if (body === null || typeof body.schema !== 'string') {
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `schema registry ${target} answered without a "schema" string`,
        {
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
      throw new TesseraError('SERVICE_UNAVAILABLE', `cannot read schema file ${join(dir, `${id}.avsc`)}`, {
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
  url: string,
  subject: string,
  schema: string,
  timeoutMs = DEFAULT_REGISTRY_TIMEOUT_MS,
): Promise<number> {
  const registry = registryAt(url);
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
        retriable: !refused && (response.status >= 500 || response.status === 429),
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
  url: string,
  subject: string,
  timeoutMs = DEFAULT_REGISTRY_TIMEOUT_MS,
): Promise<{ id: number; schema: string } | undefined> {
  const registry = registryAt(url);
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
      { retriable: response.status >= 500 || response.status === 429, context: { url: target, subject } },
    );
  }
  if (body.schemaType !== undefined && body.schemaType !== 'AVRO') return undefined;
  return { id: body.id, schema: body.schema };
}
