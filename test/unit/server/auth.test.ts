// Bearer-token checks of the online API (pure): right and wrong headers, and the cache of accepted
// header values never accepting anything the digest compare would refuse.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuthenticator } from '../../../services/server/auth.ts';
import { loadConfig } from '../../../shared/config/index.ts';

const TOKEN = 'auth-test-token-0123456789abcdef';
const config = loadConfig({ argv: [], env: {} });

describe('createAuthenticator', () => {
  it('accepts a right header every time it is sent, and its spacing and scheme-case variants', () => {
    const check = createAuthenticator(config, [TOKEN, 'another-token-0123456789'])!;
    for (let i = 0; i < 3; i++) assert.equal(check(`Bearer ${TOKEN}`), true);
    assert.equal(check(`bearer   ${TOKEN} `), true);
    assert.equal(check('Bearer another-token-0123456789'), true);
  });

  it('refuses wrong, truncated and extended tokens even after the right header was accepted', () => {
    const check = createAuthenticator(config, [TOKEN])!;
    assert.equal(check(`Bearer ${TOKEN}`), true);
    for (const header of [
      undefined,
      '',
      TOKEN,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      `Basic ${TOKEN}`,
      `Bearer ${TOKEN} extra`,
    ])
      assert.equal(check(header), false, String(header));
    assert.equal(check(`Bearer ${TOKEN}`), true);
  });
});
