// The pure parts of `tessera keys`: how a key names its view and entity, and which keys a choice of
// flags deletes (foreign keys never). Scanning and deleting on real Redis: test/integration/keys-cli.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chosen, type DeleteChoice, type KeyStatus, parseStateKey } from '../../services/keys/inventory.ts';
import { stateKey } from '../../shared/state-store/redis-state-store.ts';

describe('parseStateKey', () => {
  it('reads back what stateKey writes, entities with : and } included', () => {
    for (const entity of ['42', 'a:b', 'x}y', '', 'ü:{}']) {
      assert.deepEqual(parseStateKey('p:q', stateKey('p:q', 'user_view', entity)), {
        view: 'user_view',
        entity,
      });
    }
  });

  it('refuses keys of another prefix or without a {view:entity} tag', () => {
    assert.equal(parseStateKey('p', 'p2:{v:1}'), null);
    assert.equal(parseStateKey('p', 'p:{v}'), null);
    assert.equal(parseStateKey('p', 'p:{:1}'), null);
    assert.equal(parseStateKey('p', 'p:v:1'), null);
    assert.equal(parseStateKey('p', 'p:{v:1'), null);
  });
});

describe('chosen', () => {
  const none: DeleteChoice = { undefinedViews: false, otherLayout: false, corrupt: false, views: new Set() };
  const statuses: KeyStatus[] = ['current', 'other-layout', 'corrupt', 'undefined-view', 'foreign'];
  const picked = (choice: DeleteChoice | undefined, view = 'v') =>
    statuses.filter((s) => chosen(choice, view, s));

  it('deletes nothing without a choice', () => {
    assert.deepEqual(picked(undefined), []);
    assert.deepEqual(picked(none), []);
  });

  it('deletes each kind only under its own flag', () => {
    assert.deepEqual(picked({ ...none, undefinedViews: true }), ['undefined-view']);
    assert.deepEqual(picked({ ...none, otherLayout: true }), ['other-layout']);
    assert.deepEqual(picked({ ...none, corrupt: true }), ['corrupt']);
  });

  it('deletes every state of a named view, never a foreign key, and no other view', () => {
    const choice = { ...none, views: new Set(['v']) };
    assert.deepEqual(picked(choice), ['current', 'other-layout', 'corrupt', 'undefined-view']);
    assert.deepEqual(picked(choice, 'w'), []);
  });
});
