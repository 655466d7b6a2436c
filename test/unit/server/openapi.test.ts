// The OpenAPI document the server serves at /openapi.json, against what the routes do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openApiDocument } from '../../../services/server/openapi.ts';
import { pushSchema } from '../../../services/server/push.ts';
import { parseOnlineRequest } from '../../../services/server/request.ts';
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
      '408',
      '413',
      '415',
      '431',
      '500',
      '503',
    ]);
    assert.deepEqual(statuses('/push'), [
      '200',
      '400',
      '401',
      '404',
      '408',
      '413',
      '415',
      '431',
      '500',
      '503',
    ]);
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
      type: string[];
    };
    assert.deepEqual(bare.type, ['string', 'null']);
  });

  it('describes the push body as strictly as the server checks it', () => {
    const push = doc.components.schemas.PushRequest!;
    assert.equal(push.additionalProperties, false, 'unknown fields are refused');
    assert.deepEqual(Object.keys(push.properties).sort(), Object.keys(pushSchema.shape).sort());
  });
});
