// The OpenAPI 3.1 document of the online API, served at GET /openapi.json. Feature and service
// names are filled in from the loaded definitions, so the document lists what this server serves.
import { MAX_DATE_MS } from '../../shared/codecs/timestamp.ts';
import type { Definitions } from '../../shared/definitions/schema.ts';

/** Object keys the body parser refuses anywhere (prototype poisoning): app.ts poisonRefusal. */
const NO_PROTO = { not: { const: '__proto__' } };

/** The date-times the codecs' parser takes (and RFC 3339 allows). */
const AS_OF_PATTERN =
  '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-]((0[0-9]|1[0-7]):[0-5][0-9]|18:00))$';

/**
 * An int64 entity key: a JSON integer (read exactly, beyond 2^53 too: big-integers.ts), or a
 * canonical decimal string (no '+', no leading zeros, within int64), as request.ts canonicalKey
 * takes them. The integer's int64 bounds are in words: written as JSON numbers here they would
 * round to 2^63.
 */
const INT64_KEY = {
  oneOf: [
    {
      type: 'integer',
      format: 'int64',
      description: 'read exactly, also beyond 2^53 (as Feast clients send int64 ids); within int64',
    },
    {
      type: 'string',
      pattern: `^(0|${decimalsUpTo('9223372036854775807')}|-${decimalsUpTo('9223372036854775808')})$`,
    },
  ],
};

/**
 * A regular expression (without anchors) for the positive decimals without leading zeros up to
 * `max`: shorter numbers, then per digit of `max` a smaller digit there followed by any digits.
 */
function decimalsUpTo(max: string): string {
  const shorter = max.length > 1 ? [`[1-9][0-9]{0,${max.length - 2}}`] : [];
  const same: string[] = [];
  for (let i = 0; i < max.length; i++) {
    const digit = Number(max[i]);
    const lowest = i === 0 ? 1 : 0;
    if (digit > lowest) {
      const rest = max.length - i - 1;
      same.push(`${max.slice(0, i)}[${lowest}-${digit - 1}]${rest > 0 ? `[0-9]{${rest}}` : ''}`);
    }
  }
  same.push(max);
  return `(?:${[...shorter, ...same].join('|')})`;
}

/**
 * `pushable`: the sources /push takes (avro-confluent ones only with a schema registry), or null
 * when /push is off (TESSERA_SERVER_PUSH=false); default every source of another format.
 */
export function openApiDocument(
  definitions: Definitions,
  maxEntities: number,
  push: readonly string[] | null = definitions.sources
    .filter((s) => s.format !== 'avro-confluent')
    .map((s) => s.name),
  /** False for a server run with TESSERA_DEV_NO_AUTH: no bearer requirement, no 401. */
  auth = true,
): Record<string, unknown> {
  const pushable = push ?? [];
  const sourceColumns = definitions.sources
    .filter((source) => pushable.includes(source.name))
    .map((source) => `${source.name}: ${Object.keys(source.schema).join(', ')}`)
    .join('; ');
  const featureRefs = definitions.views.flatMap((v) => v.features.map((f) => f.ref));
  const joinKeys = [...new Set(definitions.views.map((v) => v.entity.joinKey))];
  const keyTypes = new Map(definitions.entities.map((e) => [e.joinKey, e.keyType]));
  const error = { $ref: '#/components/schemas/Error' };
  // Every answer carries it (app.ts onRequest, frameworkErrors, refuseConnection): a client can
  // quote it, and the server log has the request under it.
  const requestIdHeader = {
    'x-request-id': {
      description: "The request's id: the caller's own when it sent a sane one, else a new one",
      required: true,
      schema: { type: 'string' },
    },
  };
  const errorResponse = (description: string, headers: Record<string, unknown> = {}) => ({
    description,
    headers: { ...requestIdHeader, ...headers },
    content: { 'application/json': { schema: error } },
  });
  const jsonResponse = (description: string, schema: unknown) => ({
    description,
    headers: requestIdHeader,
    content: { 'application/json': { schema } },
  });
  const unauthenticated = errorResponse('Missing or wrong bearer token', {
    'www-authenticate': { required: true, schema: { type: 'string', const: 'Bearer' } },
  });
  // Answered by the HTTP layer on any route, before the route runs (app.ts refuseConnection).
  const protocolErrors = {
    408: errorResponse(
      'The request did not arrive whole within TESSERA_SERVER_REQUEST_TIMEOUT_MS; the connection is closed',
    ),
    431: errorResponse('Request headers over the server limit; the connection is closed'),
    417: errorResponse('An Expect header other than 100-continue'),
  };
  // A known path asked with another method (an unknown path is a 404).
  const wrongMethod = errorResponse(
    'This path does not take this method; the Allow header lists those it takes',
    {
      allow: { required: true, schema: { type: 'string' } },
    },
  );
  return {
    openapi: '3.1.0',
    info: {
      title: 'Tessera online feature server',
      version: '1',
      description:
        "Feast-compatible online feature lookups. Values are computed at read time from each entity's state in Redis: window [t - W, t). " +
        'Any route may answer 400 (not valid HTTP), 408 (the request did not arrive whole in time) or 431 (headers too large) before it runs, with the Error schema, and closes the connection. ' +
        `Definitions ${definitions.hash}.`,
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error', 'request_id'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: {
                  type: 'string',
                  examples: ['INVALID_ARGUMENT', 'UNAUTHENTICATED', 'REQUEST_TIMEOUT', 'SERVICE_UNAVAILABLE'],
                },
                message: { type: 'string', description: 'What was wrong, naming the field.' },
                field: { type: 'string' },
              },
            },
            request_id: { type: 'string' },
          },
        },
        // The parser refuses a "__proto__" key anywhere in a body (app.ts poisonRefusal).
        AnyJson: {
          description: 'Any JSON value without an object key "__proto__"',
          type: ['null', 'boolean', 'number', 'string', 'array', 'object'],
          items: { $ref: '#/components/schemas/AnyJson' },
          propertyNames: NO_PROTO,
          additionalProperties: { $ref: '#/components/schemas/AnyJson' },
        },
        GetOnlineFeaturesRequest: {
          type: 'object',
          required: ['entities'],
          additionalProperties: false,
          description:
            'Either `features` (at least one) or `feature_service`, not both. `as_of` earlier than the state can answer exactly is refused (400 AS_OF_OUT_OF_RANGE).',
          // Either a feature list (feature_service absent or null), or a service (features absent
          // or empty): request.ts resolveFeatureRefs.
          oneOf: [
            {
              required: ['features'],
              properties: { features: { minItems: 1 }, feature_service: { type: 'null' } },
            },
            {
              required: ['feature_service'],
              properties: { feature_service: { type: 'string' }, features: { maxItems: 0 } },
            },
          ],
          properties: {
            features: {
              type: 'array',
              uniqueItems: true,
              items: { type: 'string', enum: featureRefs },
              description: '`view:feature` references, each once.',
            },
            // null as Feast's SDK sends it beside a feature list: no feature service.
            feature_service:
              definitions.featureServices.size > 0
                ? {
                    type: ['string', 'null'],
                    enum: [...definitions.featureServices.keys(), null],
                    description: 'A feature service of the definitions, or null (none).',
                  }
                : { type: 'null', description: 'No feature services are defined: null (none).' },
            entities: {
              type: 'object',
              description: `Entity columns (${joinKeys.join(', ')}), one value per row, every join-key column the same length, and the join key of every requested view given; at most ${maxEntities} rows. A column that is not a join key is ignored.`,
              properties: Object.fromEntries(
                joinKeys.map((key) => [
                  key,
                  {
                    type: 'array',
                    minItems: 1,
                    maxItems: maxEntities,
                    items: keyTypes.get(key) === 'int64' ? INT64_KEY : { type: 'string', minLength: 1 },
                  },
                ]),
              ),
              // At least one join key (request.ts: columns that are none are ignored).
              ...(joinKeys.length === 1
                ? { required: joinKeys }
                : { anyOf: joinKeys.map((key) => ({ required: [key] })) }),
              propertyNames: NO_PROTO,
              additionalProperties: { type: 'array', items: { $ref: '#/components/schemas/AnyJson' } },
            },
            full_feature_names: {
              type: 'boolean',
              default: false,
              description: 'Name results `view__feature`.',
            },
            as_of: {
              description:
                'Tessera extension for debugging: read as of this time instead of now: ISO 8601 with a zone, or integer epoch milliseconds within the range of a JavaScript Date.',
              oneOf: [
                // RFC 3339 as shared/codecs/timestamp.ts reads it: at most 9 fraction digits, no
                // leap second, offsets within ±18:00 (RFC 3339 alone allows +23:59).
                { type: 'string', format: 'date-time', pattern: AS_OF_PATTERN },
                { type: 'integer', minimum: -MAX_DATE_MS, maximum: MAX_DATE_MS },
              ],
            },
            include_feature_view_version_metadata: {
              type: 'boolean',
              description: 'Accepted for Feast clients; ignored.',
            },
          },
        },
        GetOnlineFeaturesResponse: {
          type: 'object',
          required: ['metadata', 'results'],
          properties: {
            metadata: {
              type: 'object',
              required: ['feature_names'],
              properties: { feature_names: { type: 'array', items: { type: 'string' } } },
            },
            results: {
              type: 'array',
              description:
                'Column-major: one entry per name in metadata.feature_names (entity columns first), one value per entity row.',
              items: {
                type: 'object',
                required: ['values', 'statuses', 'event_timestamps'],
                properties: {
                  values: { type: 'array', description: 'null where the status is not PRESENT' },
                  statuses: {
                    type: 'array',
                    items: {
                      type: 'string',
                      enum: ['PRESENT', 'NULL_VALUE', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'],
                    },
                  },
                  event_timestamps: { type: 'array', items: { type: 'string', format: 'date-time' } },
                },
              },
            },
          },
        },
        PushRequest: {
          type: 'object',
          required: ['push_source_name', 'df'],
          additionalProperties: false,
          properties: {
            // Avro-Confluent sources are pushable only with a schema registry (for the schema id).
            push_source_name: { type: 'string', enum: [...pushable] },
            df: {
              type: 'object',
              minProperties: 1,
              propertyNames: NO_PROTO,
              additionalProperties: {
                type: 'array',
                minItems: 1,
                items: { $ref: '#/components/schemas/AnyJson' },
              },
              description: `Columns of rows, as Feast sends them: every column the same length, each row valid for the source's schema (${sourceColumns}); one invalid row refuses the push (400).`,
            },
            to: {
              type: 'string',
              enum: ['online', 'offline', 'online_and_offline'],
              description: 'Accepted; pushes always reach both stores through Kafka.',
            },
            allow_registry_cache: { type: 'boolean', description: 'Accepted for Feast clients; no effect.' },
            transform_on_write: { type: 'boolean', description: 'Accepted for Feast clients; no effect.' },
          },
        },
        Readiness: {
          type: 'object',
          required: ['ready', 'problems', 'definitions'],
          properties: {
            ready: { type: 'boolean' },
            problems: { type: 'array', items: { type: 'string' } },
            definitions: { type: 'string', description: 'The hash of the loaded definitions.' },
          },
        },
        PushResponse: {
          type: 'object',
          required: ['status', 'source', 'topic', 'rows'],
          properties: {
            status: { type: 'string', enum: ['ok'] },
            source: { type: 'string' },
            topic: { type: 'string', description: 'The Kafka topic the rows were produced to.' },
            rows: { type: 'integer' },
          },
        },
      },
    },
    security: auth ? [{ bearer: [] }] : [],
    paths: {
      '/get-online-features': {
        post: {
          summary: 'Feature values of entities as of now (or as_of)',
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/GetOnlineFeaturesRequest' } },
            },
          },
          responses: {
            200: jsonResponse('Values', { $ref: '#/components/schemas/GetOnlineFeaturesResponse' }),
            400: errorResponse('Bad request: the message names the field'),
            ...(auth ? { 401: unauthenticated } : {}),
            405: wrongMethod,
            413: errorResponse('Body over the size limit'),
            ...protocolErrors,
            415: errorResponse('The body is not application/json'),
            500: errorResponse(
              'A stored state could not be read, or Redis refused the read; the server log has the details under the request id',
            ),
            503: errorResponse('Redis unavailable; retry'),
          },
        },
      },
      '/push': {
        post: {
          summary:
            push === null
              ? 'Off: this server runs with TESSERA_SERVER_PUSH=false; answers 404'
              : pushable.length > 0
                ? "Validate rows and produce them to the source's Kafka topic"
                : 'No source can be pushed (avro-confluent sources need TESSERA_SCHEMA_REGISTRY_URL); answers 400',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/PushRequest' } } },
          },
          responses: {
            200: jsonResponse('Produced', { $ref: '#/components/schemas/PushResponse' }),
            400: errorResponse(
              "A row does not fit the source schema, or its record is over the source topic's max.message.bytes (nothing written)",
            ),
            ...(auth ? { 401: unauthenticated } : {}),
            404: errorResponse('/push is off on this server (TESSERA_SERVER_PUSH=false)'),
            405: wrongMethod,
            413: errorResponse('Body over the size limit'),
            ...protocolErrors,
            415: errorResponse('The body is not application/json'),
            500: errorResponse(
              'Kafka refused the push for good (rows before the refused one may be written already); the server log has the details under the request id',
            ),
            503: errorResponse(
              'Kafka did not acknowledge the push (some rows may be written already), or did not answer for the source topic before any was sent',
            ),
          },
        },
      },
      '/health': {
        get: {
          summary: 'Liveness',
          security: [],
          responses: {
            200: jsonResponse('Alive', {
              type: 'object',
              required: ['status'],
              properties: { status: { type: 'string', const: 'ok' } },
            }),
            405: wrongMethod,
          },
        },
      },
      '/ready': {
        get: {
          summary: 'Readiness: Redis answers and definitions are loaded',
          security: [],
          responses: {
            200: jsonResponse('Ready', { $ref: '#/components/schemas/Readiness' }),
            405: wrongMethod,
            503: jsonResponse('Not ready, with the reasons', { $ref: '#/components/schemas/Readiness' }),
          },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          security: [],
          responses: {
            200: {
              description: 'Prometheus text format',
              headers: requestIdHeader,
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
            405: wrongMethod,
          },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          security: [],
          responses: {
            200: jsonResponse('OpenAPI 3.1', { type: 'object' }),
            405: wrongMethod,
          },
        },
      },
    },
  };
}
