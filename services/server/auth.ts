// Bearer-token auth of the online API: on by default, tokens from the environment and/or a file,
// compared in constant time. Turning it off takes an explicit dev flag and a loopback address.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../../shared/config/index.ts';
import { TesseraError } from '../../shared/errors.ts';

export type Authenticator = (authorization: string | undefined) => boolean;

/** Tokens are at least this long: a short token is guessable whatever the compare. */
const MIN_TOKEN_LENGTH = 16;

export function loadTokens(config: Config): string[] {
  const tokens = config.authToken
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (config.authTokensFile !== '') {
    let text: string;
    try {
      text = readFileSync(config.authTokensFile, 'utf8');
    } catch (cause) {
      throw new TesseraError(
        'CONFIG_INVALID',
        `cannot read the tokens file ${config.authTokensFile} (TESSERA_AUTH_TOKENS_FILE): ${String(cause)}`,
        { cause },
      );
    }
    for (const line of text.split('\n')) {
      const token = line.trim();
      if (token !== '' && !token.startsWith('#')) tokens.push(token);
    }
  }
  // A header value is `Bearer <token>` with no blank inside the token: one with a blank could
  // never match, and the server would run refusing every request.
  const blank = tokens.findIndex((t) => /\s/.test(t));
  if (blank >= 0)
    throw new TesseraError(
      'CONFIG_INVALID',
      `auth token #${blank + 1} contains whitespace, which no "Authorization: Bearer <token>" header can carry; use a random one, e.g. \`openssl rand -hex 32\``,
    );
  // Node reads header values as latin1: a token outside printable ASCII, sent as UTF-8, never matches.
  const nonAscii = tokens.findIndex((t) => !/^[\x21-\x7e]+$/.test(t));
  if (nonAscii >= 0)
    throw new TesseraError(
      'CONFIG_INVALID',
      `auth token #${nonAscii + 1} has characters outside printable ASCII, which an Authorization header does not carry as sent; use a random one, e.g. \`openssl rand -hex 32\``,
    );
  const short = tokens.findIndex((t) => t.length < MIN_TOKEN_LENGTH);
  if (short >= 0)
    throw new TesseraError(
      'CONFIG_INVALID',
      `auth token #${short + 1} is shorter than ${MIN_TOKEN_LENGTH} characters; use a random one, e.g. \`openssl rand -hex 32\``,
    );
  return tokens;
}

/**
 * The request check. With no tokens the server must have been started with the dev flag on a
 * loopback address, else this throws CONFIG_INVALID and the server does not start.
 */
export function createAuthenticator(config: Config, tokens: readonly string[]): Authenticator | null {
  if (tokens.length === 0) {
    if (!config.devNoAuth)
      throw new TesseraError(
        'CONFIG_INVALID',
        'the online API requires bearer-token auth: set TESSERA_AUTH_TOKEN (comma-separated) or TESSERA_AUTH_TOKENS_FILE; ' +
          'for local development only, TESSERA_DEV_NO_AUTH=true turns auth off',
      );
    if (!isLoopback(config.httpHost))
      throw new TesseraError(
        'CONFIG_INVALID',
        `TESSERA_DEV_NO_AUTH is for local development and only allowed on a loopback address, not ${config.httpHost}; set a token instead`,
      );
    return null;
  }
  // Comparing fixed-size digests hides the token length; checking every token hides which matched.
  const digests = tokens.map(digest);
  // Header values already accepted skip the SHA-256 (a client sends the same header on every
  // request). Only accepted values are kept, so wrong guesses cannot fill the set, and a cache hit
  // tells a caller only what the 200 already told it: that its header is right.
  const accepted = new Set<string>();
  return (authorization) => {
    if (authorization === undefined) return false;
    if (accepted.has(authorization)) return true;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) return false;
    const presented = digest(match[1]!);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, presented) || ok;
    if (ok) {
      // Variants of a right header (spacing, the scheme's case) are bounded by the clients' own.
      if (accepted.size >= MAX_ACCEPTED_HEADERS) accepted.clear();
      accepted.add(authorization);
    }
    return ok;
  };
}

/** Distinct accepted Authorization headers remembered; more clears the set (it refills itself). */
const MAX_ACCEPTED_HEADERS = 1024;

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
