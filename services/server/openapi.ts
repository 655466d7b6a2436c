// The OpenAPI 3.1 document of the online API, served at GET /openapi.json. Feature and service
// names are filled in from the loaded definitions, so the document lists what this server serves.
import type { Definitions } from '../../shared/definitions/schema.ts';

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
): Record<string, unknown> {
  const pushable = push ?? [];
  const featureRefs = definitions.views.flatMap((v) => v.features.map((f) => f.ref));
  const joinKeys = [...new Set(definitions.views.map((v) => v.entity.joinKey))];
  const error = { $ref: '#/components/schemas/Error' };
  const errorResponse = (description: string) => ({
    description,
    content: { 'application/json': { schema: error } },
  });
  // Answered by the HTTP layer on any route, before the route runs (app.ts refuseConnection).
  const protocolErrors = {
    408: errorResponse(
      'The request did not arrive whole within TESSERA_SERVER_REQUEST_TIMEOUT_MS; the connection is closed',
    ),
    431: errorResponse('Request headers over the server limit; the connection is closed'),
  };
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
        GetOnlineFeaturesRequest: {
          type: 'object',
          required: ['entities'],
          additionalProperties: false,
          properties: {
            features: {
              type: 'array',
              items: { type: 'string', enum: featureRefs },
              description: '`view:feature` references.',
            },
            // null as Feast's SDK sends it beside a feature list: no feature service.
            feature_service:
              definitions.featureServices.size > 0
                ? {
                    type: ['string', 'null'],
                    enum: [...definitions.featureServices.keys(), null],
                    description: 'A feature service of the definitions, or null (none).',
                  }
                : { type: ['string', 'null'], description: 'No feature services are defined.' },
            entities: {
              type: 'object',
              description: `Entity columns (${joinKeys.join(', ')}), one value per row; at most ${maxEntities} rows.`,
              additionalProperties: {
                type: 'array',
                maxItems: maxEntities,
                items: { type: ['integer', 'string'] },
              },
            },
            full_feature_names: {
              type: 'boolean',
              default: false,
              description: 'Name results `view__feature`.',
            },
            as_of: {
              type: ['string', 'integer'],
              description:
                'Tessera extension for debugging: read as of this time (ISO 8601 or epoch ms) instead of now.',
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
              properties: { feature_names: { type: 'array', items: { type: 'string' } } },
            },
            results: {
              type: 'array',
              description:
                'Column-major: one entry per name in metadata.feature_names (entity columns first), one value per entity row.',
              items: {
                type: 'object',
                properties: {
                  values: { type: 'array', items: {} },
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
              additionalProperties: { type: 'array' },
              description: 'Columns of rows, as Feast sends them.',
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
    security: [{ bearer: [] }],
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
            200: {
              description: 'Values',
              content: {
                'application/json': { schema: { $ref: '#/components/schemas/GetOnlineFeaturesResponse' } },
              },
            },
            400: errorResponse('Bad request: the message names the field'),
            401: errorResponse('Missing or wrong bearer token'),
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
            200: {
              description: 'Produced',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/PushResponse' } } },
            },
            400: errorResponse('A row does not fit the source schema'),
            401: errorResponse('Missing or wrong bearer token'),
            413: errorResponse('Body over the size limit'),
            404: errorResponse('/push is off on this server (TESSERA_SERVER_PUSH=false)'),
            ...protocolErrors,
            415: errorResponse('The body is not application/json'),
            500: errorResponse(
              'Kafka refused the push for good (rows before the refused one may be written already); the server log has the details under the request id',
            ),
            503: errorResponse('Kafka did not acknowledge the push; some rows may be written already'),
          },
        },
      },
      '/health': { get: { summary: 'Liveness', security: [], responses: { 200: { description: 'Alive' } } } },
      '/ready': {
        get: {
          summary: 'Readiness: Redis answers and definitions are loaded',
          security: [],
          responses: { 200: { description: 'Ready' }, 503: { description: 'Not ready, with the reasons' } },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          security: [],
          responses: { 200: { description: 'Text format' } },
        },
      },
      '/openapi.json': {
        get: { summary: 'This document', security: [], responses: { 200: { description: 'OpenAPI 3.1' } } },
      },
    },
  };
}
