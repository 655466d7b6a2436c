// The small HTTP endpoint the background services (ingestor, flusher) expose: /health (the process
// is alive), /ready (its dependencies answer), /metrics (Prometheus text format).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface OpsServerOptions {
  /** Listen address: loopback by default, 0.0.0.0 in containers so probes and scrapes reach it. */
  host: string;
  port: number;
  registry: Registry;
  /** Resolves to the reasons the service is not ready (empty = ready). */
  readiness: () => Promise<string[]>;
}

export async function startOpsServer(options: OpsServerOptions): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, JSON.stringify({ error: 'use GET' }));
    if (req.url === '/health') return reply(200, JSON.stringify({ status: 'ok' }));
    if (req.url === '/ready') {
      options
        .readiness()
        .then((problems) =>
          reply(
            problems.length === 0 ? 200 : 503,
            JSON.stringify({ ready: problems.length === 0, problems }),
          ),
        )
        .catch((error: unknown) => reply(503, JSON.stringify({ ready: false, problems: [String(error)] })));
      return;
    }
    if (req.url === '/metrics') {
      options.registry
        .metrics()
        .then((text) => reply(200, text, options.registry.contentType))
        .catch((error: unknown) => reply(500, JSON.stringify({ error: String(error) })));
      return;
    }
    reply(404, JSON.stringify({ error: 'not found: try /health, /ready or /metrics' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  return { server, port: (server.address() as AddressInfo).port };
}
