// Where Confluent schema ids are resolved: a schema registry over HTTP (GET /schemas/ids/<id>) or
// a local directory of <id>.avsc files. Unknown ids resolve to undefined (the message is
// undecodable); an unreachable registry throws a retriable error instead, so that callers pause
// rather than dead-letter good events.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TesseraError } from '../errors.ts';

/** Schema JSON text of an id, or undefined when the id is unknown. */
export type SchemaLookup = (id: number) => Promise<string | undefined>;

export const DEFAULT_REGISTRY_TIMEOUT_MS = 5000;

export function registryLookup(url: string, timeoutMs = DEFAULT_REGISTRY_TIMEOUT_MS): SchemaLookup {
  const base = url.replace(/\/+$/, '');
  return async (id) => {
    const target = `${base}/schemas/ids/${id}`;
    let response: Response;
    try {
      response = await fetch(target, {
        headers: { accept: 'application/vnd.schemaregistry.v1+json, application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `schema registry ${target} unreachable (timeout ${timeoutMs} ms): ${(cause as Error).message}; check schemaRegistryUrl`,
        { retriable: true, cause, context: { url: target, schemaId: id } },
      );
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `schema registry ${target} answered HTTP ${response.status}`,
        {
          retriable: response.status >= 500 || response.status === 429,
          context: { url: target, schemaId: id, status: response.status },
        },
      );
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
