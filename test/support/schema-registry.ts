// A small Confluent-compatible schema registry on loopback for integration tests: registers schemas
// under subjects (POST /subjects/<subject>/versions, the same id again for a schema it holds) and
// serves them by id (GET /schemas/ids/<id>) and a subject's latest
// (GET /subjects/<subject>/versions/latest). Only what Tessera's services call.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestRegistry {
  url: string;
  /** Registered schema text by id. */
  schemas: Map<number, string>;
  /** Subject -> schema ids, in registration order. */
  subjects: Map<string, number[]>;
  close(): Promise<void>;
}

export async function startTestRegistry(): Promise<TestRegistry> {
  const schemas = new Map<number, string>();
  const subjects = new Map<string, number[]>();
  const server: Server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
      res.end(JSON.stringify(body));
    };
    const byId = /^\/schemas\/ids\/(\d+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && byId) {
      const schema = schemas.get(Number(byId[1]));
      if (schema === undefined) reply(404, { error_code: 40403, message: 'Schema not found' });
      else reply(200, { schema });
      return;
    }
    const latest = /^\/subjects\/([^/]+)\/versions\/latest$/.exec(req.url ?? '');
    if (req.method === 'GET' && latest) {
      const ids = subjects.get(decodeURIComponent(latest[1]!));
      if (ids === undefined) reply(404, { error_code: 40401, message: 'Subject not found' });
      else {
        const id = ids[ids.length - 1]!;
        reply(200, {
          subject: decodeURIComponent(latest[1]!),
          version: ids.length,
          id,
          schema: schemas.get(id),
        });
      }
      return;
    }
    const versions = /^\/subjects\/([^/]+)\/versions$/.exec(req.url ?? '');
    if (req.method === 'POST' && versions) {
      let text = '';
      req.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      req.on('end', () => {
        let schema: unknown;
        try {
          schema = (JSON.parse(text) as { schema?: unknown }).schema;
          JSON.parse(String(schema));
        } catch {
          reply(422, { error_code: 42201, message: 'Invalid schema' });
          return;
        }
        const subject = decodeURIComponent(versions[1]!);
        let id = [...schemas].find(([, s]) => s === schema)?.[0];
        if (id === undefined) {
          id = schemas.size + 1;
          schemas.set(id, String(schema));
        }
        const list = subjects.get(subject) ?? [];
        if (!list.includes(id)) list.push(id);
        subjects.set(subject, list);
        reply(200, { id });
      });
      return;
    }
    reply(404, { error_code: 404, message: 'Not found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    schemas,
    subjects,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
