// The latency floor of server-bench.ts: a bare node:http server that does only what every HTTP
// lookup server in Node must do. It reads each POST body, parses it as JSON, and answers with a
// fixed response: Tessera's own answer to one single-entity lookup, the same bytes and headers
// shape. It does no auth check, no Redis read and no feature computation.
//
// Loaded beside Tessera's server, at the same rate and by the same loader in the same round, it
// shows what the machine allows at that moment. On this shared 2-core VM, the p99 of this server
// alone at 5,000/s moved from 0.6 to 9.9 ms between three consecutive 10 s runs, so an absolute
// p99 only means something next to it (docs/benchmarks.md, "Online server").
//
//   node --import tsx loadtest/floor-server.ts <port> <response file>
//   GET /health answers 200 once it listens.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [portArg, responseFile] = process.argv.slice(2);
if (portArg === undefined || responseFile === undefined) {
  process.stderr.write('usage: floor-server.ts <port> <response file>\n');
  process.exit(2);
}
const answer = readFileSync(responseFile);
const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': answer.length };

const server = createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(req.url === '/health' ? 200 : 404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    try {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    res.writeHead(200, headers).end(answer);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(portArg), '127.0.0.1');
process.once('SIGTERM', () => server.close(() => process.exit(0)));
