// The one resolver of feature references (shared/definitions/feature-refs.ts) that the online
// server and point-in-time retrieval share: view:feature and bare names, output names, a feature
// service's order, and each refusal handed to the caller's wording with what it needs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type FeatureRefRefusals,
  featureServiceRefs,
  type ResolveOptions,
  resolveFeatureRefs,
} from '../../shared/definitions/feature-refs.ts';
import { parseDefinitions } from '../../shared/definitions/load.ts';

const definitions = parseDefinitions(
  `
version: 1
project: t
entities: [{ name: user, join_key: user_id, type: string }]
sources:
  - { name: tx, topic: tx, format: json, key_field: user_id, timestamp_field: ts, schema: { user_id: string, ts: timestamp, amount: double } }
views:
  - { name: a, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 1h }, { name: s, aggregation: sum, column: amount, window: 1d }] }
  - { name: b, entity: user, source: tx, features: [{ name: n, aggregation: count, window: 2h }] }
feature_services:
  - { name: svc, features: [b:n, a:s] }
`,
  'inline.yaml',
);

/** A refusal as a plain error whose message records what the resolver handed over. */
class Refused extends Error {}
const refusals: FeatureRefRefusals = {
  malformed: (r) => new Refused(`malformed ${r.ref} at ${r.at} service=${r.fromService}`),
  unknownView: (r, view) => new Refused(`unknown view ${view} (${r.ref} at ${r.at})`),
  unknownFeature: (r, view, feature) => new Refused(`unknown feature ${feature} of ${view.name} (${r.ref})`),
  twice: (r, def) => new Refused(`twice ${def.ref} as ${r.ref} at ${r.at}`),
  clash: (r, def, other, name) => new Refused(`clash ${other.ref} ${def.ref} as ${name} at ${r.at}`),
  unknownService: (name, d) => new Refused(`unknown service ${name} of ${d.file}`),
};

function resolve(refs: string[], options: Partial<ResolveOptions> = {}) {
  const out: string[] = [];
  resolveFeatureRefs(
    definitions,
    refs,
    { fullFeatureNames: false, fromService: false, ...options },
    refusals,
    (view, index, name, at) => out.push(`${at}:${view.name}[${index}]=${name}`),
  );
  return out;
}

const refused = (f: () => unknown, message: string) =>
  assert.throws(f, (e) => e instanceof Refused && e.message === message);

describe('feature references', () => {
  it('resolves view:feature and, with a default view, bare names, in order, to the position in the view', () => {
    assert.deepEqual(resolve(['a:s', 'b:n']), ['0:a[1]=s', '1:b[0]=n']);
    assert.deepEqual(resolve(['s', 'b:n'], { defaultView: 'a' }), ['0:a[1]=s', '1:b[0]=n']);
    assert.deepEqual(resolve(['a:n', 'b:n'], { fullFeatureNames: true }), ['0:a[0]=a__n', '1:b[0]=b__n']);
  });

  it('refuses a name without a view where none is the default, and an empty view or feature part', () => {
    refused(() => resolve(['a:n', 'n']), 'malformed n at 1 service=false');
    refused(() => resolve([':n'], { defaultView: 'a' }), 'malformed :n at 0 service=false');
    refused(() => resolve(['a:'], { fromService: true }), 'malformed a: at 0 service=true');
  });

  it('refuses an unknown view or feature, naming the reference', () => {
    refused(() => resolve(['a:n', 'c:n']), 'unknown view c (c:n at 1)');
    refused(() => resolve(['x'], { defaultView: 'c' }), 'unknown view c (x at 0)');
    refused(() => resolve(['b:s']), 'unknown feature s of b (b:s)');
  });

  it('refuses a feature asked for twice, however written, even when full names would differ', () => {
    refused(() => resolve(['a:n', 'a:n']), 'twice a:n as a:n at 1');
    refused(() => resolve(['a:s', 's'], { defaultView: 'a' }), 'twice a:s as s at 1');
    refused(() => resolve(['a:s', 'a:s'], { fullFeatureNames: true }), 'twice a:s as a:s at 1');
  });

  it('refuses two features of one output name unless full names', () => {
    refused(() => resolve(['a:n', 'b:n']), 'clash a:n b:n as n at 1');
    assert.equal(resolve(['a:n', 'b:n'], { fullFeatureNames: true }).length, 2);
  });

  it("gives a feature service's references in their declared order, and refuses an unknown one", () => {
    assert.deepEqual(featureServiceRefs(definitions, 'svc', refusals), ['b:n', 'a:s']);
    refused(() => featureServiceRefs(definitions, 'nope', refusals), 'unknown service nope of inline.yaml');
  });
});
