// The OpenAPI document the server serves at /openapi.json, against what the routes do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openApiDocument } from '../../../services/server/openapi.ts';
import { pushSchema } from '../../../services/server/push.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';

type Doc = {
  paths: Record<string, { post?: { responses: Record<string, unknown> } }>;
  components: {
    schemas: Record<string, { additionalProperties?: unknown; properties: Record<string, unknown> }>;
  };
};
const doc = openApiDocument(loadDefinitionsFile('definitions/fraud.yaml'), 1000) as unknown as Doc;

describe('openapi document', () => {
  it('lists every status the POST routes answer (app.ts error handler, auth, body limit, parsers)', () => {
    const statuses = (path: string) => Object.keys(doc.paths[path]!.post!.responses).sort();
    assert.deepEqual(statuses('/get-online-features'), ['200', '400', '401', '413', '415', '500', '503']);
    assert.deepEqual(statuses('/push'), ['200', '400', '401', '404', '413', '415', '503']);
  });

  it('describes the push body as strictly as the server checks it', () => {
    const push = doc.components.schemas.PushRequest!;
    assert.equal(push.additionalProperties, false, 'unknown fields are refused');
    assert.deepEqual(Object.keys(push.properties).sort(), Object.keys(pushSchema.shape).sort());
  });
});
