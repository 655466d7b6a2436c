// The online server's HTTP surface (fastify): routes, auth, request ids, error mapping. No process
// wiring here (that is main.ts), so tests build the app around their own Redis and definitions.
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, maxHeaderSize, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, {
  type ConnectionError,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { describe } from '../../shared/codecs/timestamp.ts';
import type { Definitions } from '../../shared/definitions/schema.ts';
import { isTesseraError, TesseraError } from '../../shared/errors.ts';
import { allKeyNodes, type RedisClient } from '../../shared/state-store/redis-client.ts';
import type { Authenticator } from './auth.ts';
import { quoteBigIntegers } from './big-integers.ts';
import { OnlineReader } from './lookup.ts';
import type { LatencyProbe, ServerMetrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import type { Pusher } from './push.ts';
import { parseOnlineRequest } from './request.ts';
import type { ServerTls } from './tls.ts';

export interface AppOptions {
  definitions: Definitions;
  redis: RedisClient;
  redisKeyPrefix: string;
  /** null = auth off (dev flag, loopback only; enforced by createAuthenticator). */
  authenticate: Authenticator | null;
  metrics: ServerMetrics;
  logger: Logger;
  maxEntities: number;
  bodyLimitBytes: number;
  /** How long a request may take to arrive whole, ms (TESSERA_SERVER_REQUEST_TIMEOUT_MS); default 30 s. */
  requestTimeoutMs?: number;
  /** /push is served only with a producer. */
  pusher?: Pusher;
  clock?: () => number;
  /** Latency diagnostics (TESSERA_SERVER_LATENCY_PROBE): samples lookups, serves GET /debug/latency. */
  probe?: LatencyProbe;
  /** Serve HTTPS with this certificate and key (TESSERA_SERVER_TLS_*; tls.ts); plain HTTP without. */
  tls?: ServerTls;
}

/** Routes open without a token: probes, metrics scrapes and the API document. */
const PUBLIC_ROUTES = new Set(['/health', '/ready', '/metrics', '/openapi.json']);
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SEE_LOG = 'the server log has the details under this request id';
/** Methods a route may take; fastify adds HEAD to every GET route. */
const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
/**
 * Routes of Feast's feature server that Tessera does not have, with what to do instead: a Feast
 * SDK call to one (`write_to_online_store`, `materialize` into a remote store) got a bare 404.
 */
function feastRoutesNotServed(push: boolean): ReadonlyMap<string, string> {
  const events = push
    ? "POST them to /push (Feast's push body) or produce them to the source topic"
    : 'produce them to the source topic (this server has /push off: TESSERA_SERVER_PUSH=false)';
  const fresh =
    'the ingestor keeps the online store fresh from Kafka continuously: there is nothing to materialize (a training set comes from the offline store: docs/offline-retrieval.md)';
  return new Map([
    [
      '/write-to-online-store',
      `writes feature values computed elsewhere; Tessera computes every feature from events, with one engine online and offline, so it takes events, not values: ${events}`,
    ],
    ['/materialize', fresh],
    ['/materialize-incremental', fresh],
    ['/retrieve-online-documents', 'Tessera serves aggregate features, not vector search'],
  ]);
}
/** How long a whole request may take to arrive (headers and body), unless configured. */
export const REQUEST_TIMEOUT_MS = 30_000;

export function buildApp(options: AppOptions): FastifyInstance {
  const { definitions, metrics, logger, probe } = options;
  const clock = options.clock ?? Date.now;
  const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const reader = new OnlineReader(options.redis, definitions, options.redisKeyPrefix, probe?.redis ?? null);
  const openapi = JSON.stringify(
    openApiDocument(
      definitions,
      options.maxEntities,
      options.pusher ? options.pusher.pushable() : null,
      options.authenticate !== null,
    ),
  );
  // One bound histogram per view: an observe with a labels object rebuilt the label set and its
  // closure for every entity row (a batch observes 100 ages).
  const ageOf = new Map(
    definitions.views.map((v) => [v.name, metrics.featureAgeSeconds.labels({ view: v.name })]),
  );

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One log line per request would cost more than the lookup at thousands of QPS; errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    // No pino child per request (1.4 % of a lookup's CPU): request.log is the server's logger, and
    // the few lines logged per request carry the request id themselves.
    childLoggerFactory: (logger) => logger,
    bodyLimit: options.bodyLimitBytes,
    // A request must arrive whole within this (fastify's default 0 turned off Node's own 300 s):
    // a body sent a byte at a time once held a connection and its buffer for good. Node checks the
    // deadlines every `connectionsCheckingInterval` (30 s by default, which would let a 1 s timeout
    // run to 31 s): a tenth of the timeout keeps a late request's 408 within 10 % of it.
    requestTimeout,
    // fastify hands `https` (not `http`) to the server it creates: the timeouts go in both.
    ...(options.tls
      ? { https: { ...httpTimeouts(requestTimeout), cert: options.tls.cert, key: options.tls.key } }
      : { http: httpTimeouts(requestTimeout) }),
    requestIdHeader: false,
    genReqId: (req) => {
      const id = requestIdOf(req.headers['x-request-id']);
      // Kept for a 408 of this request, answered by the HTTP layer without fastify's request.
      assignedIds.set(req, id);
      return id;
    },
    // What Node's HTTP parser refuses, and requests that do not arrive whole in time: the error
    // shape and request id of every other answer, not fastify's own body.
    clientErrorHandler: (error, socket) => refuseConnection(error, socket, requestTimeout, metrics, logger),
    // What fastify refuses before routing (a path with malformed percent-encoding): the same
    // error shape and request id as everything else, not fastify's own body.
    frameworkErrors: (error, request, reply) => {
      const plain = reply as unknown as FastifyReply;
      plain.header('x-request-id', request.id);
      // Refused before routing: no onResponse hook runs for it, so it is counted here (with 0 s:
      // fastify starts its reply timer only for routed requests).
      metrics.requestSeconds.observe({ route: 'unmatched', status: '400' }, plain.elapsedTime / 1000);
      plain
        .code(400)
        .send(errorBody(request, 'INVALID_ARGUMENT', `${error.message}; see GET /openapi.json`, 'url'));
    },
  });
  // JSON only: fastify would otherwise parse text/plain bodies too (and refuse them as a string
  // with a 400); without a parser for it they get the 415 the docs promise.
  app.removeContentTypeParser('text/plain');
  // fastify's JSON parser, saying why it refused a body: it answers "Body is not valid JSON" for
  // valid JSON holding a "__proto__" key too (refused on purpose, as prototype poisoning).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string; // parseAs: 'string'
    parseJson(request, text, (error, value) => {
      if (error) done(poisonRefusal(text) ?? error, undefined);
      else {
        // Integers beyond 2^53 (Feast's SDK sends int64 ids as bare numbers) as exact strings:
        // parsed again only for a body that has one, after fastify's checks passed on the text.
        const exact = quoteBigIntegers(text);
        done(null, exact === text ? value : JSON.parse(exact));
      }
    });
  });

  // Callback-style hooks: an async hook costs a promise per request and hook.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    const url = request.url;
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    if (
      options.authenticate &&
      !PUBLIC_ROUTES.has(path) &&
      !options.authenticate(request.headers.authorization)
    ) {
      metrics.authFailures.inc();
      reply.header('www-authenticate', 'Bearer');
      // Node would otherwise keep reading (and dropping) the rest of an unauthenticated body.
      reply.header('connection', 'close');
      reply
        .code(401)
        .send(
          errorBody(
            request,
            'UNAUTHENTICATED',
            'missing or wrong bearer token: send "Authorization: Bearer <token>"',
          ),
        );
      return;
    }
    done();
  });

  // Bound histograms per route and status (a few of each), made on first use: observing with a
  // labels object built a label set and a closure per request.
  const durations = new Map<string, Map<number, ReturnType<ServerMetrics['requestSeconds']['labels']>>>();
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched');
    const status = reply.statusCode;
    let byStatus = durations.get(route);
    if (byStatus === undefined) {
      byStatus = new Map();
      durations.set(route, byStatus);
    }
    let histogram = byStatus.get(status);
    if (histogram === undefined) {
      histogram = metrics.requestSeconds.labels({ route, status: String(status) });
      byStatus.set(status, histogram);
    }
    histogram.observe(reply.elapsedTime / 1000);
    if (probe && route === '/get-online-features') probe.request(reply.elapsedTime);
    done();
  });

  app.setErrorHandler((error: FastifyError | TesseraError, request, reply) => {
    if (isTesseraError(error)) {
      const status = statusOf(error);
      if (status >= 500)
        request.log.warn(
          { err: error.message, code: error.code, cause: causeOf(error), reqId: request.id },
          'request failed',
        );
      const field = typeof error.context?.field === 'string' ? error.context.field : undefined;
      // A 500's message is for the operator (a key's name, Redis' reply, a script's digest): it
      // went to the log above; the client gets what it can act on and the request id.
      const message =
        status !== 500
          ? error.message
          : typeof error.context.clientMessage === 'string'
            ? `${error.context.clientMessage}; ${SEE_LOG}`
            : `the server could not answer this request; ${SEE_LOG}`;
      return reply.code(status).send(errorBody(request, error.code, message, field));
    }
    // fastify's own refusals (malformed JSON, body too large, wrong content type) carry a 4xx status.
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    if (status < 500) {
      const code =
        status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'INVALID_ARGUMENT';
      const message =
        status === 413
          ? `request body over ${options.bodyLimitBytes} bytes (TESSERA_SERVER_BODY_LIMIT_BYTES); ask for fewer entities per request`
          : status === 415
            ? 'send the body as JSON with "Content-Type: application/json"'
            : `body: ${error.message}`;
      return reply.code(status).send(errorBody(request, code, message, 'body'));
    }
    // Never a stack trace to the client: the log has it, the client gets the request id.
    request.log.error({ err: error, reqId: request.id }, 'unexpected error');
    return reply.code(500).send(errorBody(request, 'INTERNAL', `internal error; ${SEE_LOG}`));
  });

  const feastRoutes = feastRoutesNotServed(options.pusher !== undefined);
  app.setNotFoundHandler((request, reply) => {
    // A route's path asked with another method is a 405 naming those it takes (HTTP requires the
    // Allow header there): a 404 told a client that asked GET /get-online-features that the route
    // did not exist.
    const url = request.url;
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    const feast = feastRoutes.get(path);
    if (feast !== undefined)
      return reply
        .code(501)
        .send(
          errorBody(
            request,
            'NOT_IMPLEMENTED',
            `${path} is a route of Feast's feature server that Tessera does not serve: it ${feast}`,
          ),
        );
    const allowed = ROUTE_METHODS.filter((method) => app.hasRoute({ url: path, method }));
    if (allowed.length > 0)
      return reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send(
          errorBody(
            request,
            'METHOD_NOT_ALLOWED',
            `${path} does not take ${request.method}; it takes ${allowed.join(', ')} (see GET /openapi.json)`,
          ),
        );
    return reply
      .code(404)
      .send(
        errorBody(request, 'NOT_FOUND', `no route ${request.method} ${request.url}; see GET /openapi.json`),
      );
  });

  // Node answers an Expect header other than 100-continue itself, with a bare 417 (no body, no
  // request id) and without routing it: answered here in the error shape instead.
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const id = requestIdOf(request.headers['x-request-id']);
    metrics.requestSeconds.observe({ route: 'unmatched', status: '417' }, 0);
    const body = JSON.stringify(
      errorShape(
        id,
        'EXPECTATION_FAILED',
        `Expect: ${describe(request.headers.expect)} is not supported; send the request without an Expect header (or with "Expect: 100-continue")`,
        'expect',
      ),
    );
    // The body was not read: the connection cannot be trusted to start the next request.
    response
      .writeHead(417, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'x-request-id': id,
        connection: 'close',
      })
      .end(body);
  });

  app.post('/get-online-features', async (request, reply) => {
    const parsed = parseOnlineRequest(request.body, definitions, options.maxEntities);
    metrics.entitiesPerRequest.observe(parsed.rows);
    let result: Awaited<ReturnType<OnlineReader['lookup']>>;
    try {
      result = await reader.lookup(parsed, clock());
    } catch (error) {
      // An outage, or Redis refusing the read: lookup.ts marks both.
      if (isTesseraError(error) && error.context.redis === true) metrics.redisErrors.inc();
      throw error;
    }
    // Served freshness is about reads at now: an `as_of` lookup (debugging, history) would add
    // its distance from now to the histogram.
    if (parsed.asOf === undefined)
      for (const { view, ms } of result.stats.ages) {
        const ages = ageOf.get(view)!;
        for (const age of ms) ages.observe(age / 1000);
      }
    if (result.stats.clamped > 0) metrics.clampedReads.inc(result.stats.clamped);
    if (result.stats.decoded > 0) metrics.decodedReads.inc(result.stats.decoded);
    // Already JSON: fastify sends a string with a content type as it is.
    return reply.header('content-type', 'application/json').send(result.body);
  });

  app.post('/push', async (request) => {
    if (!options.pusher)
      throw new TesseraError(
        'NOT_FOUND',
        '/push is off on this server (TESSERA_SERVER_PUSH=false); push to a server that serves it',
      );
    const result = await options.pusher.push(request.body);
    metrics.pushedRows.inc({ source: result.source }, result.rows);
    return { status: 'ok', ...result };
  });

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/ready', async (_request, reply) => {
    const problems: string[] = [];
    try {
      // On a Cluster every master answers, and every slot has one: one PING reached one random
      // node, and /ready said ready while a dead master failed every batch that touched it.
      await Promise.all((await allKeyNodes(options.redis)).map((node) => node.ping()));
    } catch (error) {
      // The detail (hosts, auth errors) to the log; /ready is open to anyone who can reach it.
      logger.warn({ err: String((error as Error).message ?? error) }, 'readiness: redis does not answer');
      problems.push('redis: not answering');
    }
    if (definitions.views.length === 0) problems.push('definitions: no feature views loaded');
    return reply
      .code(problems.length === 0 ? 200 : 503)
      .send({ ready: problems.length === 0, problems, definitions: definitions.hash });
  });

  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()),
  );

  if (probe) {
    app.addHook('onClose', (_instance, done) => {
      probe.stop();
      done();
    });
    // Behind auth like lookups: ?reset=1 starts a new measurement window (one per benchmark cell).
    app.get('/debug/latency', async (request) => {
      const query = request.query as Record<string, string | undefined>;
      return probe.snapshot(query.reset === '1');
    });
  }

  app.get('/openapi.json', async (_request, reply) =>
    reply.header('content-type', 'application/json').send(openapi),
  );

  return app;
}

/** Node's HTTP server timeouts (http.createServer's and https.createServer's options alike). */
function httpTimeouts(requestTimeout: number) {
  return {
    requestTimeout,
    headersTimeout: requestTimeout,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 10))),
  };
}

/** The underlying error of a failure (Redis' own message, a decode problem), for the log only. */
function causeOf(error: TesseraError): string | undefined {
  const cause = error.cause;
  if (cause === undefined) return undefined;
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
}

function statusOf(error: TesseraError): number {
  switch (error.code) {
    case 'INVALID_ARGUMENT':
    case 'AS_OF_OUT_OF_RANGE':
      return 400;
    case 'NOT_FOUND':
      return 404;
    case 'SERVICE_UNAVAILABLE':
      return 503;
    default:
      return 500;
  }
}

function errorBody(request: FastifyRequest, code: string, message: string, field?: string) {
  return errorShape(request.id, code, message, field);
}

/** The documented error body, also for what is answered without a fastify request (id given). */
function errorShape(id: string, code: string, message: string, field?: string) {
  return { error: { code, message, ...(field === undefined ? {} : { field }) }, request_id: id };
}

/**
 * The id fastify gave each request it saw, by Node's request object: a request timed out after its
 * headers (408) is answered by refuseConnection, which sees only the socket, and must carry the id
 * the log already has for it, not a new one. Weak: gone with the request.
 */
const assignedIds = new WeakMap<object, string>();

/** The caller's own request id when it sends a sane one, else a new one. */
function requestIdOf(given: string | string[] | undefined): string {
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Answers what never became a request fastify could route (Node's 'clientError': a malformed
 * request line or header, headers over Node's limit, a request not whole within the timeout) in the
 * standard error shape with a request id, then closes the connection, as Node does: after such an
 * error the rest of the stream cannot be trusted to start a request.
 */
function refuseConnection(
  error: ConnectionError,
  socket: Socket,
  requestTimeoutMs: number,
  metrics: ServerMetrics,
  logger: Logger,
): void {
  // A reset or a socket already gone: nobody is left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [
          408,
          'REQUEST_TIMEOUT',
          `the request did not arrive whole within ${requestTimeoutMs} ms (TESSERA_SERVER_REQUEST_TIMEOUT_MS); the connection is closed: send the request again, without pauses`,
        ]
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [
            431,
            'HEADERS_TOO_LARGE',
            `request headers over ${maxHeaderSize} bytes (Node's --max-http-header-size); send fewer or shorter headers`,
          ]
        : error.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
          ? [
              413,
              'PAYLOAD_TOO_LARGE',
              'chunk extensions over 16 KiB (as Node limits them); send chunks without extensions',
            ]
          : [400, 'INVALID_ARGUMENT', `not a valid HTTP/1.1 request (${error.code}: ${error.message})`];
  // Node's own caution: a response already begun on this socket must not be corrupted.
  const inFlight = (
    socket as Socket & {
      _httpMessage?: {
        headersSent?: boolean;
        req?: { headers?: Record<string, string | string[] | undefined> };
      };
    }
  )._httpMessage;
  const id =
    (inFlight?.req && assignedIds.get(inFlight.req)) ?? requestIdOf(inFlight?.req?.headers?.['x-request-id']);
  // Debug, not info: junk traffic is one refusal per connection, and the metric below counts them.
  logger.debug(
    { err: error.message, code: error.code, status, reqId: id },
    'request refused by the HTTP layer',
  );
  // Never routed (or, timed out, never answered by its route): counted here as route `unmatched`,
  // with 0 s, as the refusals of frameworkErrors are.
  metrics.requestSeconds.observe({ route: 'unmatched', status: String(status) }, 0);
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify(errorShape(id, code, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nx-request-id: ${id}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Why valid JSON was refused by fastify's parser (a "__proto__" key, or "constructor" holding
 * "prototype": both refused, as they could change prototypes downstream); undefined for a body
 * that is not JSON at all. Runs only for refused bodies.
 */
function poisonRefusal(body: string): TesseraError | undefined {
  try {
    JSON.parse(body);
  } catch {
    return undefined;
  }
  return new TesseraError(
    'INVALID_ARGUMENT',
    'body: an object key "__proto__", or a "constructor" key holding "prototype", is refused (they can alter objects\' prototypes); no field of this API has such a name: remove it',
    { context: { field: 'body' } },
  );
}
