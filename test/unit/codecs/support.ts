// Shared fixtures of the codec tests: the reference source in each format, and a tiny schema
// registry speaking the Confluent API on 127.0.0.1:0.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import type { SourceDef } from '../../../shared/definitions/schema.ts';

export const DEFINITIONS_DIR = 'definitions';
export const FIXTURES = 'test/fixtures/codecs';
export const SCHEMA_DIR = `${FIXTURES}/schemas`;

const reference = loadDefinitionsFile('definitions/fraud.yaml').sources[0]!;

/** The reference source `transactions` in the given format (Avro from definitions/schemas). */
export function transactions(
  format: SourceDef['format'] = 'json',
  overrides: Partial<SourceDef> = {},
): SourceDef {
  return { ...reference, format, avroSchema: 'schemas/transaction.avsc', ...overrides };
}

/** Avro's zigzag varint of a long, written byte by byte (bodies built without the codec under test). */
export function avroLong(n: bigint): Buffer {
  let x = n >= 0n ? n * 2n : -n * 2n - 1n;
  const bytes: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    bytes.push(b);
  } while (x > 0n);
  return Buffer.from(bytes);
}

/** The record of the golden files. */
export const KNOWN_RECORD = {
  user_id: 1042,
  event_timestamp: Date.UTC(2026, 0, 1, 12, 30, 0, 250),
  amount: 12.34,
  merchant_id: 'm_7',
};

export interface FakeRegistry {
  url: string;
  /** Schema ids requested so far, in order. */
  requests: number[];
  /** Most requests in flight at once so far (each is answered on the next tick). */
  maxInFlight: number;
  close(): Promise<void>;
}

/** Serves GET /schemas/ids/<id> from `schemas` (id -> schema JSON text); 404 for others. */
export async function startRegistry(schemas: Record<number, string>): Promise<FakeRegistry> {
  const requests: number[] = [];
  let inFlight = 0;
  const fake = { maxInFlight: 0 };
  const server: Server = createServer((req, res) => {
    const m = /^\/schemas\/ids\/(\d+)$/.exec(req.url ?? '');
    if (m) requests.push(Number(m[1]));
    const schema = m ? schemas[Number(m[1])] : undefined;
    inFlight++;
    fake.maxInFlight = Math.max(fake.maxInFlight, inFlight);
    setImmediate(() => {
      inFlight--;
      if (schema === undefined) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
      res.end(JSON.stringify({ schema }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get maxInFlight() {
      return fake.maxInFlight;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const TRANSACTION_SCHEMA = readFileSync('definitions/schemas/transaction.avsc', 'utf8');
