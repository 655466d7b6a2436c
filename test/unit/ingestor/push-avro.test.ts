// The Avro form of features.updates: each view's schema from the definitions (types as in
// features.parquet), values in the Confluent wire format, and the same vector as the JSON form,
// read back with avsc from the schema's JSON text alone (as a consumer with the registry would).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import avro from 'avsc';
import {
  createAvroUpdateEncoder,
  UPDATE_NAMESPACE,
  updateSchema,
  updateSubject,
} from '../../../services/ingestor/push-avro.ts';
import { createPushEncoder } from '../../../services/ingestor/push-json.ts';
import { loadDefinitionsFile, parseDefinitions } from '../../../shared/definitions/load.ts';
import type { FeatureValue } from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';

const defs = parseDefinitions(`
version: 1
project: a
entities: [{ name: user, join_key: user_id, type: string }]
sources:
  - { name: tx, topic: tx, format: json, key_field: user_id, timestamp_field: ts,
      schema: { user_id: string, ts: timestamp, amount: double, n: int64, merchant: string, card: bool } }
views:
  - name: every_kind
    entity: user
    source: tx
    features:
      - { name: c, aggregation: count, window: 1h }
      - { name: s, aggregation: sum, column: amount, window: 1h }
      - { name: a, aggregation: avg, column: n, window: 1h }
      - { name: mx, aggregation: max, column: n, window: 1h }
      - { name: mn, aggregation: min, column: amount, window: 1h }
      - { name: d, aggregation: count_distinct, column: merchant, window: 1h }
      - { name: h, aggregation: approx_count_distinct, column: merchant, window: 1h }
      - { name: lm, aggregation: last, column: merchant, window: 1h }
      - { name: lc, aggregation: last, column: card, window: 1h }
      - { name: ft, aggregation: first, column: ts, window: 1h }
      - { name: ln, aggregation: last_n, column: amount, window: 1h, n: 3 }
      - { name: lb, aggregation: last_n, column: card, window: 1h, n: 2 }
      - { name: sd, aggregation: stddev, column: amount, window: 1h }
`);
const view = defs.views[0]!;

/** The features record's field types, by name. */
function featureTypes(schema: avro.Schema): Record<string, unknown> {
  const features = (
    schema as { fields: { name: string; type: { fields: { name: string; type: unknown }[] } }[] }
  ).fields.find((f) => f.name === 'features')!.type.fields;
  return Object.fromEntries(features.map((f) => [f.name, f.type]));
}

describe('Avro feature updates', () => {
  it("types every feature as features.parquet does, nullable, and last_n as an array of its column's type", () => {
    const schema = updateSchema(view);
    assert.equal((schema as { name: string }).name, 'every_kind');
    assert.equal((schema as { namespace: string }).namespace, UPDATE_NAMESPACE);
    const ts = { type: 'long', logicalType: 'timestamp-millis' };
    assert.deepEqual(featureTypes(schema), {
      c: ['null', 'long'],
      s: ['null', 'double'],
      a: ['null', 'double'],
      mx: ['null', 'long'],
      mn: ['null', 'double'],
      d: ['null', 'long'],
      h: ['null', 'long'],
      lm: ['null', 'string'],
      lc: ['null', 'boolean'],
      ft: ['null', ts],
      ln: ['null', { type: 'array', items: 'double' }],
      lb: ['null', { type: 'array', items: 'boolean' }],
      sd: ['null', 'double'],
    });
    assert.equal(updateSubject('features.updates', view), 'features.updates-tessera.updates.every_kind');
    // The reference view compiles too.
    avro.Type.forSchema(updateSchema(loadDefinitionsFile('definitions/fraud.yaml').views[0]!));
  });

  it("writes the JSON form's vector, Confluent-framed, readable from the schema text alone", () => {
    const encoder = createAvroUpdateEncoder([view], new Map([['every_kind', 258]]), 'sha256:h');
    const json = createPushEncoder(new Map([['every_kind', view.features.map((f) => f.name)]]), 'sha256:h');
    const reader = avro.Type.forSchema(JSON.parse(JSON.stringify(updateSchema(view))) as avro.Schema);
    const samples: FeatureValue[][] = [
      [3, 12.5, 7.25, 9, -1.5, 2, 2, 'm1', true, Date.UTC(2026, 0, 1), [1.5, 2, 3.25], [false, true], 0.5],
      [0, 0, null, null, null, 0, 0, null, null, null, [], [], null],
      [1, -0.1, 2, -4, 1e21, 1, 1, 'm"é', false, 0, [5e-324], [true], null],
    ];
    for (const values of samples) {
      const u = {
        view: 'every_kind',
        entity: 'u"1',
        asOf: Date.UTC(2026, 0, 3, 4, 5, 6, 7),
        version: 73_000_000_001,
        values,
      };
      const bytes = encoder.update(u);
      assert.equal(bytes[0], 0, 'magic byte');
      assert.equal(bytes.readUInt32BE(1), 258, 'schema id');
      const got = reader.fromBuffer(bytes.subarray(5)) as Record<string, unknown>;
      const want = JSON.parse(json.update(u)) as Record<string, unknown>;
      assert.equal(got.as_of, u.asOf);
      assert.equal(new Date(got.as_of as number).toISOString(), want.as_of);
      assert.deepEqual(
        { ...got, as_of: want.as_of, features: { ...(got.features as object) } },
        want,
        JSON.stringify(values),
      );
    }
  });

  it('reads vectors written before state_version as version 0 (a compatible change for the registry)', () => {
    const schema = updateSchema(view) as { fields: { name: string }[] };
    const older = { ...schema, fields: schema.fields.filter((f) => f.name !== 'state_version') };
    const writer = avro.Type.forSchema(older as avro.Schema);
    const reader = avro.Type.forSchema(schema as avro.Schema);
    const features = Object.fromEntries(view.features.map((f) => [f.name, null]));
    const old = writer.toBuffer({
      view: 'every_kind',
      entity: 'u',
      as_of: 5,
      features,
      definitions_hash: 'h',
    });
    const got = reader.fromBuffer(old, reader.createResolver(writer)) as {
      state_version: number;
      as_of: number;
    };
    assert.equal(got.state_version, 0);
    assert.equal(got.as_of, 5);
  });

  it('refuses a value its type cannot hold, and a view without a schema id', () => {
    const encoder = createAvroUpdateEncoder([view], new Map([['every_kind', 1]]), 'h');
    const values: FeatureValue[] = view.features.map(() => null);
    values[0] = 'many';
    assert.throws(() => encoder.update({ view: 'every_kind', entity: 'u', asOf: 0, version: 1, values }));
    assert.throws(() => createAvroUpdateEncoder([view], new Map(), 'h'), /no schema id for view every_kind/);
  });

  it("refuses a view named after an Avro primitive type by name, as avsc's raw error did not", () => {
    const view = loadDefinitionsFile('definitions/fraud.yaml').views[0]!;
    for (const name of ['string', 'long', 'bytes'])
      assert.throws(
        () => updateSchema({ ...view, name }),
        (e) =>
          isTesseraError(e, 'CONFIG_INVALID') &&
          e.message.startsWith(`view ${name}: an Avro primitive type's name cannot name the Avro record`),
      );
    // Avro's complex type names are not reserved: a view may be called `record`.
    avro.Type.forSchema(updateSchema({ ...view, name: 'record' }));
  });
});
