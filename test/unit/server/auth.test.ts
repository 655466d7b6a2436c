// Bearer-token checks of the online API (pure): right and wrong headers, and the cache of accepted
// header values never accepting anything the digest compare would refuse.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAuthenticator, loadTokens } from '../../../services/server/auth.ts';
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

describe('loadTokens', () => {
  it('refuses at start a token no Authorization header can carry (a blank inside it)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tessera-tokens-')), 'tokens');
    writeFileSync(file, '# comment\nfile-token-0123456789abcdef\nspaced token 0123456789abcdef\n');
    const withFile = loadConfig({ argv: [], env: { TESSERA_AUTH_TOKENS_FILE: file } });
    assert.throws(() => loadTokens(withFile), /token #2 contains whitespace/);
    // Accepted once, then never matched: Node reads a UTF-8 header as latin1.
    writeFileSync(file, 'pässwörd-pässwörd-1234\n');
    assert.throws(() => loadTokens(withFile), /token #1 has characters outside printable ASCII/);
    writeFileSync(file, 'file-token-0123456789abcdef\n');
    const env = { TESSERA_AUTH_TOKENS_FILE: file, TESSERA_AUTH_TOKEN: ' env-token-0123456789abcdef , x ' };
    assert.throws(() => loadTokens(loadConfig({ argv: [], env })), /token #2 is shorter than 16/);
    const ok = { TESSERA_AUTH_TOKENS_FILE: file, TESSERA_AUTH_TOKEN: 'env-token-0123456789abcdef' };
    assert.deepEqual(loadTokens(loadConfig({ argv: [], env: ok })), [
      'env-token-0123456789abcdef',
      'file-token-0123456789abcdef',
    ]);
  });
});
