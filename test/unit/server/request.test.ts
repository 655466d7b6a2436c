// Request parsing of /get-online-features (pure): feature references, entity keys in the form the
// ingestor stores them, and refusals that name the field.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseOnlineRequest } from '../../../services/server/request.ts';
import { loadDefinitionsFile, parseDefinitions } from '../../../shared/definitions/load.ts';
import { isTesseraError } from '../../../shared/errors.ts';

const fraud = loadDefinitionsFile('definitions/fraud.yaml');
const VIEW = 'user_transaction_features';

function refusal(body: unknown, defs = fraud, max = 1000): string {
  try {
    parseOnlineRequest(body, defs, max);
  } catch (error) {
    assert.ok(isTesseraError(error, 'INVALID_ARGUMENT'), String(error));
    return error.message;
  }
  assert.fail('expected a refusal');
}

describe('parseOnlineRequest', () => {
  it('resolves a feature service in its declared order and canonicalizes int64 keys', () => {
    const r = parseOnlineRequest(
      { feature_service: 'fraud_model_v1', entities: { user_id: [7, '9007199254740993', -3] } },
      fraud,
      1000,
    );
    assert.equal(r.views.length, 1);
    assert.deepEqual(r.views[0]!.keys, ['7', '9007199254740993', '-3']);
    assert.deepEqual(
      r.order.map((o) => r.views[o.view]!.features[o.feature]!.outputName),
      fraud.featureServices.get('fraud_model_v1')!.map((ref) => ref.split(':')[1]),
    );
    assert.equal(r.asOf, undefined);
  });

  it('keeps request order, full names, and parses as_of in both forms', () => {
    const r = parseOnlineRequest(
      {
        features: [`${VIEW}:max_transaction_amount_7d`, `${VIEW}:transaction_count_1h`],
        entities: { user_id: [1] },
        full_feature_names: true,
        as_of: '2026-01-10T12:00:00Z',
      },
      fraud,
      1000,
    );
    assert.deepEqual(
      r.views[0]!.features.map((f) => [f.outputName, f.index]),
      [
        [`${VIEW}__max_transaction_amount_7d`, 4],
        [`${VIEW}__transaction_count_1h`, 0],
      ],
    );
    assert.equal(r.asOf, Date.UTC(2026, 0, 10, 12));
    const ms = parseOnlineRequest(
      { features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [1] }, as_of: 1_768_046_400_000 },
      fraud,
      1000,
    );
    assert.equal(ms.asOf, 1_768_046_400_000);
  });

  it('refuses fractional and non-canonical int64 keys, naming the row', () => {
    for (const bad of [1.5, '007', '', null, true])
      assert.match(
        refusal({ features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [1, bad] } }),
        /entities\.user_id\[1\]: .* is not an int64/,
      );
  });

  it('refuses an int64 JSON number beyond 2^53 as unreadable exactly, pointing at decimal strings', () => {
    // Feast's Python SDK writes 9007199254740993 exactly; JSON.parse reads it as 9007199254740992,
    // which the refusal once quoted as if the client had sent it ("... is not an int64").
    const body = JSON.parse(
      `{"features": ["${VIEW}:transaction_count_1h"], "entities": {"user_id": [1, 9007199254740993]}}`,
    );
    const message = refusal(body);
    assert.match(message, /^entities\.user_id\[1\]: a JSON number beyond 2\^53 cannot be read exactly/);
    assert.match(message, /send int64 ids beyond 2\^53 as decimal strings/);
    assert.match(message, /reads as 9007199254740992, which may not be the id sent/);
    for (const big of [-(2 ** 60), 1e300])
      assert.match(
        refusal({ features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [big] } }),
        /beyond 2\^53 cannot be read exactly/,
      );
    // The same id as a decimal string is read exactly.
    const ok = parseOnlineRequest(
      { features: [`${VIEW}:transaction_count_1h`], entities: { user_id: ['9007199254740993'] } },
      fraud,
      10,
    );
    assert.deepEqual(ok.views[0]!.keys, ['9007199254740993']);
  });

  it('refuses a feature asked for twice as such, with or without full_feature_names', () => {
    for (const full_feature_names of [true, false]) {
      const message = refusal({
        features: [`${VIEW}:transaction_count_1h`, `${VIEW}:transaction_count_1h`],
        entities: { user_id: [1] },
        full_feature_names,
      });
      // Once told to "set full_feature_names to true" although it already was.
      assert.equal(
        message,
        `features[1]: "${VIEW}:transaction_count_1h" is asked for twice; ask for each feature once`,
      );
    }
  });

  it('refuses a name clash unless full_feature_names, and both features and a service', () => {
    const two = parseDefinitions(
      `
version: 1
project: t
entities: [{ name: user, join_key: user_id, type: string }]
sources:
  - { name: tx, topic: tx, format: json, key_field: user_id, timestamp_field: ts, schema: { user_id: string, ts: timestamp, amount: double } }
views:
  - { name: a, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 1h }] }
  - { name: b, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 2h }] }
`,
      'inline.yaml',
    );
    assert.match(
      refusal({ features: ['a:n', 'b:n'], entities: { user_id: ['x'] } }, two),
      /features\[1\].*would both be returned as n; set full_feature_names/,
    );
    const ok = parseOnlineRequest(
      { features: ['a:n', 'b:n'], entities: { user_id: ['x'] }, full_feature_names: true },
      two,
      10,
    );
    assert.equal(ok.views.length, 2);
    assert.match(refusal({ features: ['a:n'], entities: { user_id: [5] } }, two), /not a non-empty string/);
    // A lone surrogate has no UTF-8 form: the key would read the state of 'x\ufffd'.
    assert.match(
      refusal({ features: ['a:n'], entities: { user_id: ['x', 'x\ud800'] } }, two),
      /entities\.user_id\[1\]: the string has an unpaired UTF-16 surrogate \(\\ud800 at index 1\)/,
    );
    assert.match(
      refusal({
        features: [`${VIEW}:transaction_count_1h`],
        feature_service: 'fraud_model_v1',
        entities: { user_id: [1] },
      }),
      /either features or feature_service/,
    );
  });

  it('refuses a body of the wrong shape, naming the field and what it expected', () => {
    const f = [`${VIEW}:transaction_count_1h`];
    const cases: [unknown, string][] = [
      [[1], 'body: Expected object, received array'],
      [null, 'body: Expected object, received null'],
      [{ features: 'x', entities: { user_id: [1] } }, 'features: Expected array, received string'],
      [{ features: [f[0], 3], entities: { user_id: [1] } }, 'features.1: Expected string, received number'],
      [
        { feature_service: 1, entities: { user_id: [1] } },
        'feature_service: Expected string, received number',
      ],
      [{ features: f }, 'entities: Required'],
      [{ features: f, entities: [1] }, 'entities: Expected object, received array'],
      [{ features: f, entities: { user_id: 1 } }, 'entities.user_id: Expected array, received number'],
      [
        { features: f, entities: { user_id: [1] }, full_feature_names: 'yes' },
        'full_feature_names: Expected boolean, received string',
      ],
      [{ features: f, entities: { user_id: [1] }, as_of: true }, 'as_of: Invalid input'],
      [
        { features: f, entities: { user_id: [1] }, include_feature_view_version_metadata: 1 },
        'include_feature_view_version_metadata: Expected boolean, received number',
      ],
      [
        { features: f, entities: { user_id: [1] }, bogus: 1, other: 2 },
        'body: unknown field(s) bogus, other; allowed: features, feature_service, entities, full_feature_names, as_of, include_feature_view_version_metadata',
      ],
      // A field of the wrong type is named before fields that are not ours.
      [{ features: 1, entities: { user_id: [1] }, bogus: 1 }, 'features: Expected array, received number'],
    ];
    for (const [body, message] of cases) assert.equal(refusal(body), message, JSON.stringify(body));
    // Feast's SDK sends this flag; it is accepted.
    const ok = parseOnlineRequest(
      { features: f, entities: { user_id: [1] }, include_feature_view_version_metadata: false },
      fraud,
      10,
    );
    assert.equal(ok.rows, 1);
  });

  // Contract fuzzing: a refusal once quoted a client's name in full, so a 1 MiB feature name came
  // back as a 1 MiB message (docs/server.md: messages describe client values boundedly).
  it('quotes client names in refusals boundedly, however long they are', () => {
    const long = 'x'.repeat(100_000);
    const f = [`${VIEW}:transaction_count_1h`];
    const bodies: unknown[] = [
      { features: [long], entities: { user_id: [1] } },
      { features: [`${long}:a`], entities: { user_id: [1] } },
      { features: [`${VIEW}:${long}`], entities: { user_id: [1] } },
      { feature_service: long, entities: { user_id: [1] } },
      { features: f, entities: { user_id: [1], [long]: 1 } },
      { features: f, entities: { user_id: [1] }, [long]: 1 },
      {
        features: f,
        entities: { user_id: [1] },
        ...Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, 1])),
      },
    ];
    for (const body of bodies) {
      const message = refusal(body);
      assert.ok(message.length < 600, `${message.length} characters: ${message.slice(0, 120)}`);
      assert.match(message, /xxxx…|k4 and 4995 more/);
    }
  });

  it('refuses an as_of that is not a definite instant: no zone, a fraction of a ms, out of range', () => {
    const f = [`${VIEW}:transaction_count_1h`];
    for (const asOf of ['2026-01-10T12:00:00', 'Jan 10 2026', 1.5, -1e16, 9e15])
      assert.match(
        refusal({ features: f, entities: { user_id: [1] }, as_of: asOf }),
        /^as_of: /,
        String(asOf),
      );
    assert.equal(
      parseOnlineRequest(
        { features: f, entities: { user_id: [1] }, as_of: '2026-01-10T13:00:00+01:00' },
        fraud,
        10,
      ).asOf,
      Date.UTC(2026, 0, 10, 12),
    );
  });

  it("reads a join key two entities declare with different types as the requested view's", () => {
    const shared = parseDefinitions(
      `
version: 1
project: t
entities: [{ name: user, join_key: id, type: int64 }, { name: shop, join_key: id, type: string }]
sources:
  - { name: tx, topic: tx, format: json, key_field: id, timestamp_field: ts, schema: { id: int64, ts: timestamp } }
  - { name: sx, topic: sx, format: json, key_field: id, timestamp_field: ts, schema: { id: string, ts: timestamp } }
views:
  - { name: u, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 1h }] }
  - { name: s, entity: shop, source: sx, features: [{ name: m, aggregation: count, window: 1h }] }
`,
      'inline.yaml',
    );
    // Before, the last entity declared (shop, string) decided: 7 was refused as "not a non-empty
    // string", and "007" read the key 007 of a view whose keys are stored as 7.
    const user = parseOnlineRequest({ features: ['u:n'], entities: { id: [7, '9'] } }, shared, 10);
    assert.deepEqual(user.views[0]!.keys, ['7', '9']);
    assert.equal(user.entityColumns[0]!.type, 'int64');
    const shop = parseOnlineRequest({ features: ['s:m'], entities: { id: ['007'] } }, shared, 10);
    assert.deepEqual(shop.views[0]!.keys, ['007']);
    assert.match(refusal({ features: ['s:m'], entities: { id: [7] } }, shared), /not a non-empty string/);
    assert.equal(
      refusal({ features: ['u:n', 's:m'], entities: { id: [7] } }, shared),
      'entities.id: views u and s are both keyed by id, as int64 and as string; ask for them in separate requests',
    );
  });

  it('refuses mismatched entity columns and too many rows; ignores columns Feast ignores', () => {
    const two = parseDefinitions(
      `
version: 1
project: t
entities: [{ name: user, join_key: user_id, type: int64 }, { name: merchant, join_key: merchant_id, type: string }]
sources:
  - { name: tx, topic: tx, format: json, key_field: user_id, timestamp_field: ts, schema: { user_id: int64, ts: timestamp, merchant_id: string } }
views:
  - { name: a, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 1h }] }
`,
      'inline.yaml',
    );
    assert.match(
      refusal({ features: ['a:n'], entities: { user_id: [1, 2], merchant_id: ['m'] } }, two),
      /entities\.merchant_id: has 1 values/,
    );
    // As Feast's server: a declared join key no requested view uses is echoed, an unknown column
    // ignored (once a 400), and feature_service null is no service.
    const ok = parseOnlineRequest(
      {
        features: ['a:n'],
        feature_service: null,
        entities: { user_id: [1, 2], merchant_id: ['m', 'n'], foo: [true] },
      },
      two,
      10,
    );
    assert.deepEqual(
      ok.entityColumns.map((c) => c.name),
      ['user_id', 'merchant_id'],
    );
    // Deeply nested values, as keys or in an echoed column: a 400, not a stack overflow (500).
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    assert.match(
      refusal({ features: ['a:n'], entities: { user_id: [deep] } }, two),
      /user_id\[0\]: an array is not an int64/,
    );
    assert.match(
      refusal({ features: ['a:n'], entities: { user_id: [1], merchant_id: [deep] } }, two),
      /entities\.merchant_id\[0\]: an array is not a non-empty string/,
    );
    assert.match(
      refusal({ features: ['a:n'], entities: { user_id: [1], merchant_id: [{ any: 'thing' }] } }, two),
      /merchant_id\[0\]: a object is not a non-empty string/,
    );
    // A misspelt needed column is still refused: the view's key is then missing.
    assert.match(
      refusal({ features: ['a:n'], entities: { userid: [1] } }, two),
      /give the requested views' entity columns, e.g. \{"user_id"/,
    );
    assert.match(
      refusal({ features: ['a:n'], entities: { userid: [1], merchant_id: ['m'] } }, two),
      /view a is keyed by user_id, which the request does not give/,
    );
    assert.match(
      refusal({ features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [1, 2, 3] } }, fraud, 2),
      /3 entity rows is over the limit of 2/,
    );
    assert.match(
      refusal({ features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [] } }),
      /at least one entity row/,
    );
  });
});

describe('parseOnlineRequest: resolutions shared between requests', () => {
  const names = (r: ReturnType<typeof parseOnlineRequest>) =>
    r.order.map((o) => r.views[o.view]!.features[o.feature]!.outputName);
  const features = [`${VIEW}:transaction_count_1h`, `${VIEW}:avg_transaction_amount_7d`];

  it('answers a repeated feature list as the first time, keys its own, names unaffected by the body changing after', () => {
    const body = { features: [...features], entities: { user_id: [1] } };
    const first = parseOnlineRequest(body, fraud, 1000);
    body.features[0] = `${VIEW}:max_transaction_amount_7d`; // the caller's array, changed after parsing
    const second = parseOnlineRequest(
      { features: [...features], entities: { user_id: [2, 3] } },
      fraud,
      1000,
    );
    assert.deepEqual(names(first), ['transaction_count_1h', 'avg_transaction_amount_7d']);
    assert.deepEqual(names(second), names(first));
    assert.equal(second.featureNamesJson, '"transaction_count_1h","avg_transaction_amount_7d"');
    assert.deepEqual(first.views[0]!.keys, ['1'], "a later request's keys do not reach an earlier one's");
    assert.deepEqual(second.views[0]!.keys, ['2', '3']);
    const changed = parseOnlineRequest(body, fraud, 1000);
    assert.deepEqual(names(changed), ['max_transaction_amount_7d', 'avg_transaction_amount_7d']);
  });

  it('tells apart the same list with full names, in another order, or from a service; and other definitions', () => {
    const full = parseOnlineRequest(
      { features, full_feature_names: true, entities: { user_id: [1] } },
      fraud,
      1000,
    );
    assert.deepEqual(
      names(full),
      features.map((f) => f.replace(':', '__')),
    );
    const reversed = parseOnlineRequest(
      { features: [...features].reverse(), entities: { user_id: [1] } },
      fraud,
      1000,
    );
    assert.deepEqual(names(reversed), ['avg_transaction_amount_7d', 'transaction_count_1h']);
    const other = parseDefinitions(
      readFileSync('definitions/fraud.yaml', 'utf8').replaceAll('transaction_count_1h', 'tx_count_1h'),
    );
    assert.match(
      refusal({ features, entities: { user_id: [1] } }, other),
      /has no feature "transaction_count_1h"/,
    );
  });

  it('refuses a bad list every time it comes (a refusal is not kept), and stays right past the lists it keeps', () => {
    const bad = { features: [`${VIEW}:nope`], entities: { user_id: [1] } };
    assert.match(refusal(bad), /has no feature "nope"/);
    assert.match(refusal(bad), /has no feature "nope"/);
    const all = fraud.views[0]!.features.map((f) => `${VIEW}:${f.name}`);
    // Every ordered pair of features: more lists than are kept, each answered in its own order.
    for (let round = 0; round < 2; round++)
      for (const a of all)
        for (const b of all) {
          if (a === b) continue;
          const r = parseOnlineRequest({ features: [a, b], entities: { user_id: [1] } }, fraud, 1000);
          assert.deepEqual(names(r), [a.split(':')[1], b.split(':')[1]]);
        }
  });
});
