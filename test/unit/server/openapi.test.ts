// The OpenAPI document the server serves at /openapi.json, against what the routes do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { openApiDocument } from '../../../services/server/openapi.ts';
import { pushSchema } from '../../../services/server/push.ts';
import { parseOnlineRequest } from '../../../services/server/request.ts';
import { isCanonicalInt64String } from '../../../shared/codecs/int64.ts';
import { parseTimestamp } from '../../../shared/codecs/timestamp.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';

type Doc = {
  paths: Record<string, { post?: { responses: Record<string, unknown> } }>;
  components: {
    schemas: Record<string, { additionalProperties?: unknown; properties: Record<string, unknown> }>;
  };
};
const definitions = loadDefinitionsFile('definitions/fraud.yaml');
const doc = openApiDocument(definitions, 1000) as unknown as Doc;

describe('openapi document', () => {
  it('lists every status the POST routes answer (app.ts error handler, auth, body limit, parsers)', () => {
    const statuses = (path: string) => Object.keys(doc.paths[path]!.post!.responses).sort();
    // 408 and 431 from the HTTP layer (app.ts refuseConnection); /push's 500: Kafka refusing for good.
    assert.deepEqual(statuses('/get-online-features'), [
      '200',
      '400',
      '401',
      '405',
      '408',
      '413',
      '415',
      '417',
      '431',
      '500',
      '503',
    ]);
    assert.deepEqual(statuses('/push'), [
      '200',
      '400',
      '401',
      '404',
      '405',
      '408',
      '413',
      '415',
      '417',
      '431',
      '500',
      '503',
    ]);
  });

  it('asks for no bearer token, and lists no 401, for a server run without auth (TESSERA_DEV_NO_AUTH)', () => {
    const open = openApiDocument(definitions, 1000, undefined, false) as unknown as Doc & {
      security: unknown[];
    };
    assert.deepEqual(open.security, []);
    for (const path of ['/get-online-features', '/push'])
      assert.ok(!('401' in open.paths[path]!.post!.responses), path);
    assert.deepEqual((doc as unknown as { security: unknown[] }).security, [{ bearer: [] }]);
  });

  it('declares the x-request-id header on every response, and www-authenticate on 401s', () => {
    const all = doc as unknown as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { headers?: Record<string, unknown> }> }>
      >;
    };
    for (const [path, methods] of Object.entries(all.paths))
      for (const [method, operation] of Object.entries(methods))
        for (const [status, response] of Object.entries(operation.responses)) {
          assert.ok(response.headers?.['x-request-id'], `${method} ${path} ${status}`);
          if (status === '401') assert.ok(response.headers?.['www-authenticate'], `${method} ${path} 401`);
          if (status === '405') assert.ok(response.headers?.allow, `${method} ${path} 405`);
        }
  });

  // Schemathesis found these: the document allowed requests the server refuses.
  it('requires features or a feature service, and a join-key column with at least one row', () => {
    const request = doc.components.schemas.GetOnlineFeaturesRequest as unknown as {
      oneOf: { required: string[] }[];
      properties: {
        features: { uniqueItems: boolean };
        entities: { required: string[]; properties: Record<string, { minItems: number; maxItems: number }> };
      };
    };
    assert.deepEqual(
      request.oneOf.map((branch) => branch.required),
      [['features'], ['feature_service']],
    );
    assert.equal(request.properties.features.uniqueItems, true, 'a feature asked twice is refused');
    assert.deepEqual(request.properties.entities.required, ['user_id']);
    assert.deepEqual(
      [
        request.properties.entities.properties.user_id!.minItems,
        request.properties.entities.properties.user_id!.maxItems,
      ],
      [1, 1000],
    );
    const push = doc.components.schemas.PushRequest!.properties.df as { minProperties: number };
    assert.equal(push.minProperties, 1, 'a push without rows is refused');
  });

  it('documents an int64 key string exactly as the server reads one (canonical, within int64)', () => {
    const entities = doc.components.schemas.GetOnlineFeaturesRequest!.properties.entities as {
      properties: {
        user_id: { items: { oneOf: [{ maximum?: number; format: string }, { pattern: string }] } };
      };
    };
    const [integer, string] = entities.properties.user_id.items.oneOf;
    // Integers beyond 2^53 are read exactly (big-integers.ts): no 2^53 bound any more.
    assert.equal(integer.format, 'int64');
    assert.equal(integer.maximum, undefined);
    const pattern = new RegExp(string.pattern);
    const edges = [
      '0',
      '-0',
      '01',
      '+1',
      '9223372036854775807',
      '9223372036854775808',
      '-9223372036854775808',
    ];
    for (const text of edges) assert.equal(pattern.test(text), isCanonicalInt64String(text), text);
    assert.equal(pattern.test('-9223372036854775809'), false);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String),
          fc.stringMatching(/^-?[0-9]{1,21}$/),
        ),
        (text) => pattern.test(text) === isCanonicalInt64String(text),
      ),
      { numRuns: 5000 },
    );
  });

  it('documents as_of date-times the codecs refuse as invalid (offsets past 18:00, 10 fraction digits, leap seconds)', () => {
    const asOf = doc.components.schemas.GetOnlineFeaturesRequest!.properties.as_of as {
      oneOf: [{ pattern: string }, { minimum: number; maximum: number }];
    };
    const pattern = new RegExp(asOf.oneOf[0].pattern);
    // RFC 3339 date-times all: the document once took them all, the server refuses these.
    for (const text of [
      '0391-11-08T02:42:20.17+22:34',
      '2026-01-10T12:00:00.1234567890Z',
      '2026-01-10T23:59:60Z',
    ]) {
      assert.equal(parseTimestamp(text, 'iso8601').ok, false, text);
      assert.equal(pattern.test(text), false, text);
    }
    for (const text of [
      '2026-01-10T12:00:00Z',
      '2026-01-10t12:00:00.123456789-18:00',
      '1969-12-31T23:59:59+05:30',
    ]) {
      assert.equal(parseTimestamp(text, 'iso8601').ok, true, text);
      assert.equal(pattern.test(text), true, text);
    }
    assert.equal(parseTimestamp(asOf.oneOf[1].maximum, 'epoch_ms').ok, true);
    assert.equal(parseTimestamp(asOf.oneOf[1].maximum + 1, 'epoch_ms').ok, false);
  });

  it("types feature_service as the server takes it: a defined service, or null as Feast's SDK sends it", () => {
    const property = doc.components.schemas.GetOnlineFeaturesRequest!.properties.feature_service as {
      type: string[];
      enum: (string | null)[];
    };
    assert.deepEqual(property.type, ['string', 'null']);
    assert.deepEqual(property.enum, [...definitions.featureServices.keys(), null]);
    // What the schema allows, the server takes.
    const request = parseOnlineRequest(
      {
        features: ['user_transaction_features:transaction_count_1h'],
        feature_service: null,
        entities: { user_id: [1] },
      },
      definitions,
      1000,
    );
    assert.equal(request.rows, 1);
    const none = openApiDocument({ ...definitions, featureServices: new Map() }, 1000) as unknown as Doc;
    const bare = none.components.schemas.GetOnlineFeaturesRequest!.properties.feature_service as {
      type: string;
    };
    // No service to name: any string is refused, so only null is documented.
    assert.deepEqual(bare.type, 'null');
    assert.throws(
      () =>
        parseOnlineRequest(
          { feature_service: 'x', entities: { user_id: [1] } },
          { ...definitions, featureServices: new Map() },
          1000,
        ),
      /unknown feature service "x"; defined: none/,
    );
  });

  it('describes the push body as strictly as the server checks it', () => {
    const push = doc.components.schemas.PushRequest!;
    assert.equal(push.additionalProperties, false, 'unknown fields are refused');
    assert.deepEqual(Object.keys(push.properties).sort(), Object.keys(pushSchema.shape).sort());
  });
});
