import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadDefinitionsFile, parseDefinitions } from '../../shared/definitions/load.ts';
import { isTesseraError } from '../../shared/errors.ts';

const fraud = readFileSync('definitions/fraud.yaml', 'utf8');
const invalid = (text: string, pattern: RegExp) =>
  assert.throws(
    () => parseDefinitions(text, 'fraud.yaml'),
    (e: unknown) => isTesseraError(e, 'DEFINITIONS_INVALID') && pattern.test(e.message),
  );

describe('feature definitions', () => {
  it('loads the six reference features of the fraud model', () => {
    const defs = loadDefinitionsFile('definitions/fraud.yaml');
    const view = defs.views[0]!;
    assert.equal(view.entity.joinKey, 'user_id');
    assert.equal(view.entity.keyType, 'int64');
    assert.deepEqual(
      view.features.map((f) => [f.name, f.aggregation, f.column, f.windowMs, f.default]),
      [
        ['transaction_count_1h', 'count', null, 3_600_000, null],
        ['transaction_count_24h', 'count', null, 86_400_000, null],
        ['avg_transaction_amount_7d', 'avg', 'amount', 604_800_000, 0],
        ['avg_transaction_amount_30d', 'avg', 'amount', 2_592_000_000, 0],
        ['max_transaction_amount_7d', 'max', 'amount', 604_800_000, 0],
        ['distinct_merchant_count_7d', 'count_distinct', 'merchant_id', 604_800_000, null],
      ],
    );
    assert.equal(view.ttlMs, 30 * 86_400_000 + 3_600_000, 'ttl defaults to the longest window plus lateness');
    assert.deepEqual(defs.featureServices.get('fraud_model_v1')?.length, 6);
  });

  it('identifies a definitions version by a content hash that ignores comments', () => {
    const a = parseDefinitions(fraud).hash;
    assert.equal(parseDefinitions(`# a comment\n${fraud}`).hash, a);
    assert.notEqual(parseDefinitions(fraud.replace('window: 1h\n', 'window: 2h\n')).hash, a);
    assert.match(a, /^[0-9a-f]{16}$/);
  });

  it('names the file, line, field and what is allowed', () => {
    invalid(
      fraud.replace('aggregation: max', 'aggregation: maximum'),
      /fraud\.yaml:\d+: views\[0\]\.features\[4\]\.aggregation: must be one of count, sum/,
    );
    invalid(
      fraud.replace(
        'window: 7d\n        tile: 1h\n        default: 0.0\n      - name: avg',
        'window: 7 days\n        tile: 1h\n        default: 0.0\n      - name: avg',
      ),
      /features\[2\]\.window: must be a positive duration such as/,
    );
    invalid(
      fraud.replace('column: merchant_id', 'column: merchant'),
      /features\[5\]\.column: unknown column merchant; transactions has user_id, event_timestamp, amount, merchant_id/,
    );
    invalid(fraud.replace('entity: user', 'entity: customer'), /views\[0\]\.entity: unknown entity customer/);
    invalid(
      fraud.replace(
        '- name: transaction_count_24h\n        aggregation: count',
        '- name: transaction_count_24h\n        aggregation: avg\n        column: merchant_id',
      ),
      /avg needs a numeric column/,
    );
    invalid(
      fraud.replace('user_transaction_features:transaction_count_1h', 'user_transaction_features:nope'),
      /feature_services\[0\]\.features\[0\]: unknown feature/,
    );
    invalid(`${fraud}\nextra_field: 1\n`, /unknown field\(s\) extra_field/);
    invalid('version: 1\nproject: [unclosed', /not valid YAML/);
  });

  it('refuses defaults the feature cannot answer, and names the offline tables hold', () => {
    const last = (column: string, value: string) =>
      fraud.replace(
        '      - name: distinct_merchant_count_7d',
        `      - { name: last_x, aggregation: last, column: ${column}, window: 1h, default: ${value} }\n      - name: distinct_merchant_count_7d`,
      );
    // A default of another type was served as is, then stopped every flush that wrote it.
    invalid(
      fraud.replace('default: 0.0\n      - name: avg', 'default: "n/a"\n      - name: avg'),
      /features\[2\]\.default: avg answers a number: default "n\/a"/,
    );
    invalid(last('merchant_id', '0'), /last of a string column answers a string: default 0 is not one/);
    invalid(last('user_id', '-1.5'), /last of a int64 column answers a int64: default -1\.5/);
    invalid(last('event_timestamp', '"yesterday"'), /answers a timestamp \(epoch ms, an integer within/);
    // Past what a Date holds: every flush writing it failed, retried for good (found by an audit).
    invalid(last('event_timestamp', '9000000000000000'), /default 9000000000000000 is not one/);
    invalid(
      fraud.replace('tile: 1h\n\nfeature_services', 'tile: 1h\n        default: 3\n\nfeature_services'),
      /count_distinct of an empty window is always 0/,
    );
    invalid(
      fraud
        .replace('column: merchant_id\n', 'column: merchant_id\n        n: 3\n')
        .replace('aggregation: count_distinct', 'aggregation: last_n')
        .replace('tile: 1h\n\nfeature_services', 'tile: 1h\n        default: x\n\nfeature_services'),
      /last_n of an empty window is always \[\]; remove default/,
    );
    assert.equal(parseDefinitions(last('merchant_id', 'none')).views[0]!.features[5]!.default, 'none');
    assert.equal(parseDefinitions(last('user_id', '-1')).views[0]!.features[5]!.default, -1);
    for (const name of ['user_id', 'event_timestamp', 'source_offset', 'source_partition', 'as_of', 'state'])
      invalid(
        fraud
          .replace('name: max_transaction_amount_7d', `name: ${name}`)
          .replace(':max_transaction_amount_7d', `:${name}`),
        new RegExp(
          `features\\[4\\]\\.name: ${name} names a column the offline tables hold beside the features`,
        ),
      );
  });

  it('refuses two sources on one topic, which the ingestor read as one', () => {
    const second = `  - name: by_merchant
    topic: transactions
    format: json
    key_field: merchant_id
    timestamp_field: event_timestamp
    schema: { merchant_id: string, event_timestamp: timestamp, amount: double }
`;
    invalid(
      fraud.replace('\nviews:', `\n${second}\nviews:`),
      /sources\[1\]\.topic: source transactions already reads topic transactions; one source per topic/,
    );
  });

  it('names the default tile when a short tiled window has none', () => {
    invalid(
      fraud.replace('window: 1h\n        tile: 5m\n', 'window: 90s\n        mode: tiled\n'),
      /features\[0\]\.window: a tiled window of 90s needs a tile no longer than it: the default \(5m under 12h\) is longer; declare one, e\.g\. tile: 15s/,
    );
  });

  it('refuses a feature service named twice, or listing a feature twice', () => {
    const service = fraud.slice(fraud.indexOf('  - name: fraud_model_v1'));
    invalid(`${fraud}${service}`, /feature_services\[1\]\.name: duplicate feature service fraud_model_v1/);
    invalid(
      `${fraud}      - user_transaction_features:transaction_count_1h\n`,
      /feature_services\[0\]\.features\[6\]: user_transaction_features:transaction_count_1h is listed twice/,
    );
  });

  it('reports the line of the offending field', () => {
    const text = fraud.replace('aggregation: max', 'aggregation: maximum');
    const line = text.split('\n').findIndex((l) => l.includes('maximum')) + 1;
    assert.throws(() => parseDefinitions(text, 'fraud.yaml'), new RegExp(`fraud\\.yaml:${line}:`));
  });

  it('refuses a ttl under the longest window plus its tile plus the lateness, and says the tile counts', () => {
    // Tiled 30d window with 1d tiles and 1h lateness: 31d 1h at least. The message once left the
    // tile out, so its figure did not add up to what it named.
    const tiled = fraud.replace('mode: exact', 'mode: tiled');
    assert.equal(
      parseDefinitions(tiled.replace('max_age: 30d', 'max_age: 30d\n    ttl: 745h')).views[0]!.ttlMs,
      745 * 3_600_000,
    );
    invalid(
      tiled.replace('max_age: 30d', 'max_age: 30d\n    ttl: 744h'),
      /ttl must be at least the longest window plus its tile \(an exact feature has none\) plus allowed_lateness \(745h\)/,
    );
  });

  it('keeps a max_age above the ttl (docs/definitions.md: live reads then see the key expire first)', () => {
    // Not refused: OUTSIDE_MAX_AGE is still reached by states written long after their events (a
    // restore, a catch-up) and by as_of reads; on live reads of an idle entity NOT_FOUND comes first.
    const view = parseDefinitions(fraud.replace('max_age: 30d', 'max_age: 60d\n    ttl: 31d')).views[0]!;
    assert.equal(view.maxAgeMs, 60 * 86_400_000);
    assert.equal(view.ttlMs, 31 * 86_400_000);
  });

  it('refuses a column that is only a JavaScript object key (constructor), and __proto__ names', () => {
    // `constructor` was found on the schema's prototype: the feature loaded over a column no event has.
    invalid(
      fraud.replace('column: merchant_id', 'column: constructor'),
      /features\[5\]\.column: unknown column constructor; transactions has user_id/,
    );
    invalid(
      fraud.replace(
        'column: amount\n        window: 7d\n        tile: 1h\n        default: 0.0\n      - name: distinct',
        'column: constructor\n        window: 7d\n        tile: 1h\n        default: 0.0\n      - name: distinct',
      ),
      // Was: "max needs a numeric column ...; constructor is function Object() { [native code] }".
      /features\[4\]\.column: unknown column constructor/,
    );
    // A `__proto__` column vanished from the parsed schema; a feature of that name loaded.
    invalid(
      fraud.replace('      merchant_id: string\n', '      merchant_id: string\n      __proto__: string\n'),
      /sources\[0\]\.schema\.__proto__: must not be __proto__/,
    );
    invalid(
      fraud.replaceAll('transaction_count_24h', '__proto__'),
      /features\[1\]\.name: must not be __proto__/,
    );
  });

  it('refuses a default that is not a finite number (.inf was served as Infinity and hashed as null)', () => {
    for (const value of ['.inf', '-.inf', '1e400'])
      invalid(
        fraud.replace('default: 0.0', `default: ${value}`),
        /features\[2\]\.default: must be a finite number/,
      );
  });

  it('refuses two features with the same full name view__feature', () => {
    const views = `  - name: a__b
    entity: user
    source: transactions
    features: [{ name: c, aggregation: count, window: 1h }]
  - name: a
    entity: user
    source: transactions
    features: [{ name: b__c, aggregation: count, window: 1h }]
`;
    invalid(
      fraud.replace('\nfeature_services:', `\n${views}\nfeature_services:`),
      /views\[2\]\.features\[0\]\.name: a:b__c and a__b:c have the same full name a__b__c/,
    );
  });

  it('refuses a topic name Kafka refuses', () => {
    invalid(
      fraud.replace('topic: transactions', 'topic: "card transactions"'),
      /sources\[0\]\.topic: must be a Kafka topic name/,
    );
    for (const dots of ['"."', '".."'])
      invalid(
        fraud.replace('topic: transactions', `topic: ${dots}`),
        /sources\[0\]\.topic: must not be \. or \.\./,
      );
  });

  it('refuses join keys and source columns named like the columns the offline tables add', () => {
    // A join key event_timestamp was written into features.parquet where the event time goes.
    for (const key of [
      'event_timestamp',
      'source_offset',
      'source_partition',
      'as_of',
      'state_version',
      'state',
    ])
      invalid(
        fraud
          .replaceAll('user_id', key)
          .replaceAll('event_timestamp: timestamp', 'ts: timestamp')
          .replace('timestamp_field: event_timestamp', 'timestamp_field: ts'),
        new RegExp(
          `entities\\[0\\]\\.join_key: ${key} names a column the offline tables hold beside the join key`,
        ),
      );
    // The raw event log appended the Kafka position under these names over the source's own.
    for (const column of ['source_offset', 'source_partition'])
      invalid(
        fraud.replace('      merchant_id: string\n', `      merchant_id: string\n      ${column}: int64\n`),
        new RegExp(`sources\\[0\\]\\.schema\\.${column}: ${column} names a column the raw event log adds`),
      );
  });

  it("refuses Feast's placeholder entity, which Feast's SDK leaves out", () => {
    invalid(
      fraud.replace('  - name: user\n', '  - name: __dummy\n').replace('entity: user', 'entity: __dummy'),
      /entities\[0\]\.name: __dummy and __dummy_id are Feast's placeholder entity/,
    );
    invalid(fraud.replaceAll('user_id', '__dummy_id'), /entities\[0\]\.join_key: __dummy and __dummy_id/);
  });

  it('names the missing key column once, without a type error about it', () => {
    assert.throws(
      () =>
        parseDefinitions(
          fraud.replace('key_field: user_id', 'key_field: uid').replace('join_key: user_id', 'join_key: uid'),
          'fraud.yaml',
        ),
      (e: unknown) =>
        isTesseraError(e, 'DEFINITIONS_INVALID') &&
        /sources\[0\]\.key_field: uid must be a column of schema/.test(e.message) &&
        !/is undefined/.test(e.message),
    );
  });

  it('reads a view of a few hundred features sharing one merge block (the yaml default allows 100 alias uses)', () => {
    const many = Array.from(
      { length: 300 },
      (_, i) => `      - <<: *counts\n        name: c${i}\n        window: ${i + 1}m\n`,
    ).join('');
    const text = fraud
      .replace(
        '      - name: transaction_count_1h\n        aggregation: count\n',
        `      - &counts\n        name: transaction_count_1h\n        aggregation: count\n`,
      )
      .replace('\nfeature_services:', `\n${many}\nfeature_services:`);
    assert.equal(parseDefinitions(text).views[0]!.features.length, 306);
  });

  it('reports a duplicate source once, not as unknown columns of its views', () => {
    const second = `  - name: transactions
    topic: other
    format: json
    key_field: user_id
    timestamp_field: event_timestamp
    schema: { user_id: int64, event_timestamp: timestamp }
`;
    assert.throws(
      () => parseDefinitions(fraud.replace('\nviews:', `\n${second}\nviews:`), 'fraud.yaml'),
      (e: unknown) =>
        isTesseraError(e, 'DEFINITIONS_INVALID') &&
        /sources\[1\]\.name: duplicate source transactions/.test(e.message) &&
        !/unknown column/.test(e.message),
    );
  });

  it('resolves YAML merge keys', () => {
    const text = fraud.replace(
      '      - name: transaction_count_24h\n        aggregation: count\n        window: 24h\n        tile: 1h\n',
      '      - &day\n        name: transaction_count_24h\n        aggregation: count\n        window: 24h\n        tile: 1h\n      - <<: *day\n        name: transaction_count_48h\n        window: 48h\n',
    );
    const f = parseDefinitions(text).views[0]!.features[2]!;
    assert.deepEqual([f.name, f.aggregation, f.windowMs], ['transaction_count_48h', 'count', 48 * 3_600_000]);
  });

  it('says what to write for an empty file, a wrong version, or a number for a duration', () => {
    invalid('', /fraud\.yaml: the file is empty: write a mapping with version: 1, project/);
    invalid('# nothing yet\n', /the file is empty/);
    invalid(fraud.replace('version: 1', 'version: "1"'), /version: must be 1 \(the only format version\)/);
    invalid(
      fraud.replace('window: 1h\n', 'window: 3600\n'),
      /features\[0\]\.window: must be a positive duration such as 90s/,
    );
    invalid(
      fraud.replace('allowed_lateness: 1h', 'allowed_lateness: 0s'),
      /allowed_lateness: must be a positive duration/,
    );
    invalid(fraud.replace('entity: user', 'entity:'), /views\[0\]\.entity: must be a string, not null/);
    invalid(fraud.replace('project: fraud\n', ''), /fraud\.yaml:\d+: project: is required/);
  });

  it('hashes what the definitions mean, not how they are written', () => {
    const hash = (text: string, mode?: 'exact' | 'tiled') =>
      parseDefinitions(text, 'x', mode ? { mode } : {}).hash;
    const base = hash(fraud);
    // Same meaning: the hash was over the text as parsed, so these changed it.
    for (const same of [
      fraud.replace('window: 1h\n', 'window: 60m\n'),
      fraud.replace('allowed_lateness: 1h', 'allowed_lateness: 3600s'),
      fraud.replace('    entity: user\n', '    entity: user\n    description: per user\n'),
      fraud.replace('tile: 5m', 'tile: 10m'), // an exact feature: no tile
      fraud.replace(
        '        aggregation: count\n        window: 1h\n',
        '        window: 1h\n        aggregation: count\n',
      ),
      fraud.replace('max_age: 30d', 'max_age: 30d\n    ttl: 721h'), // the default ttl, written out
      // A count's empty window is 0 whatever is written: `default: 0` is no default.
      fraud.replace(
        '        aggregation: count\n        window: 1h\n',
        '        aggregation: count\n        window: 1h\n        default: 0\n',
      ),
    ])
      assert.equal(hash(same), base);
    // Other meaning: each changes it.
    const changes = [
      fraud.replace('window: 1h\n', 'window: 2h\n'),
      fraud.replace('aggregation: max', 'aggregation: min'),
      fraud.replace('column: merchant_id', 'column: user_id'),
      fraud.replace('allowed_lateness: 1h', 'allowed_lateness: 2h'),
      fraud.replace('mode: exact', 'mode: tiled'),
      fraud.replace('default: 0.0', 'default: -1'),
      fraud.replace('max_age: 30d', 'max_age: 20d'),
      fraud.replace('max_events_per_entity: 100000', 'max_events_per_entity: 1000'),
      fraud.replace('topic: transactions', 'topic: tx'),
      fraud.replace('timestamp_format: iso8601', 'timestamp_format: epoch_ms'),
      fraud.replace('amount: double', 'amount: int64'),
      fraud.replaceAll('user_id', 'customer_id'),
      fraud.replace('      - user_transaction_features:transaction_count_1h\n', ''),
    ];
    const hashes = changes.map((text) => hash(text));
    assert.equal(new Set([base, ...hashes]).size, changes.length + 1);
    assert.notEqual(hash(fraud, 'tiled'), base);
  });

  it('hashes every field of the compiled form (a new field must be added to definitionsHash)', () => {
    // definitionsHash lists the fields it covers. A field added to the compiled form later would
    // be left out of the hash silently, and two meanings would share a version: this fails first.
    const defs = parseDefinitions(fraud);
    const view = defs.views[0]!;
    const keys = (o: object) => Object.keys(o).sort();
    assert.deepEqual(keys(defs), [
      'entities',
      'featureServices',
      'file',
      'hash',
      'project',
      'sources',
      'views',
    ]);
    assert.deepEqual(keys(defs.entities[0]!), ['joinKey', 'keyType', 'name']);
    assert.deepEqual(keys(view), [
      'allowedLatenessMs',
      'entity',
      'features',
      'maxAgeMs',
      'maxEventsPerEntity',
      'name',
      'source',
      'ttlMs',
    ]);
    // ref is derived from the view's and the feature's names; numericInt64Columns from the views.
    assert.deepEqual(keys(view.features[0]!), [
      'aggregation',
      'column',
      'default',
      'mode',
      'n',
      'name',
      'precision',
      'ref',
      'tileMs',
      'windowMs',
    ]);
    const sourceKeys = keys(defs.sources[0]!).filter(
      (k) => k !== 'numericInt64Columns' && k !== 'avroSchema',
    );
    assert.deepEqual(sourceKeys, [
      'format',
      'keyField',
      'name',
      'schema',
      'timestampField',
      'timestampFormat',
      'topic',
    ]);
  });

  it('fills tiles like Chronon when a tiled feature declares none', () => {
    const text = fraud.replace(/\n\s+tile: \w+/g, '').replace('mode: exact', 'mode: tiled');
    const tiles = parseDefinitions(text).views[0]!.features.map((f) => f.tileMs / 60_000);
    assert.deepEqual(tiles, [5, 60, 60, 1440, 60, 60]);
  });
});
