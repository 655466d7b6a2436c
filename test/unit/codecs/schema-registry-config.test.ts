// The schema registry's login settings are checked at start: one way of logging in (the URL's
// user:pass@, TESSERA_SCHEMA_REGISTRY_USERNAME with _PASSWORD or _PASSWORD_FILE, or
// _BEARER_TOKEN_FILE), never half of one or two at once; each refusal names the variables and
// shows no secret. A service refuses such a configuration with its exit code.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../shared/config/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';

const URL_SECRET = 'url-s3cret';
const PASSWORD = 'pw-s3cret';
const REGISTRY = 'https://psrc-abc.eu-west-1.aws.confluent.cloud';
const WITH_CREDENTIALS = `https://KEY1:${URL_SECRET}@psrc-abc.eu-west-1.aws.confluent.cloud`;

function refusal(env: Record<string, string>): Error & { context?: Record<string, unknown> } {
  try {
    loadConfig({ env, argv: [] });
  } catch (error) {
    assert.ok(isTesseraError(error, 'CONFIG_INVALID'), String(error));
    assert.ok(!error.message.includes(URL_SECRET) && !error.message.includes(PASSWORD), error.message);
    return error;
  }
  return assert.fail(`accepted ${JSON.stringify(Object.keys(env))}`);
}

/** The refusal's message names every variable of `names`, on one line. */
function assertNames(error: Error, names: readonly string[], what: RegExp) {
  const line = error.message.split('\n').find((l) => names.every((n) => l.includes(n)) && what.test(l));
  assert.ok(line, `a line naming ${names.join(', ')} and ${what}:\n${error.message}`);
}

/** The producer CLI (a service that talks to the registry) started with only `env`. */
function producerWith(env: Record<string, string>) {
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', 'services/producer/main.ts', '--events', '1', '--format', 'avro-confluent'],
    { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, ...env } },
  );
}

describe('schema registry login settings', () => {
  it('refuses credentials in TESSERA_SCHEMA_REGISTRY_URL together with USERNAME and PASSWORD, naming both, without the secrets', () => {
    const error = refusal({
      TESSERA_SCHEMA_REGISTRY_URL: WITH_CREDENTIALS,
      TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1',
      TESSERA_SCHEMA_REGISTRY_PASSWORD: PASSWORD,
    });
    assertNames(
      error,
      ['TESSERA_SCHEMA_REGISTRY_USERNAME', 'TESSERA_SCHEMA_REGISTRY_PASSWORD', 'TESSERA_SCHEMA_REGISTRY_URL'],
      /give the login one way/,
    );
    assert.deepEqual(error.context?.invalid, ['TESSERA_SCHEMA_REGISTRY_USERNAME']);
  });

  it('refuses credentials in the URL together with PASSWORD_FILE or BEARER_TOKEN_FILE', () => {
    for (const name of ['TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE', 'TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE'])
      assertNames(
        refusal({ TESSERA_SCHEMA_REGISTRY_URL: WITH_CREDENTIALS, [name]: '/run/secrets/registry' }),
        [name, 'TESSERA_SCHEMA_REGISTRY_URL'],
        /holds credentials/,
      );
  });

  it('refuses a USERNAME without a password', () => {
    assertNames(
      refusal({ TESSERA_SCHEMA_REGISTRY_URL: REGISTRY, TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1' }),
      [
        'TESSERA_SCHEMA_REGISTRY_PASSWORD',
        'TESSERA_SCHEMA_REGISTRY_USERNAME',
        'TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE',
      ],
      /is needed with/,
    );
  });

  it('refuses a password without a USERNAME', () => {
    assertNames(
      refusal({ TESSERA_SCHEMA_REGISTRY_URL: REGISTRY, TESSERA_SCHEMA_REGISTRY_PASSWORD: PASSWORD }),
      ['TESSERA_SCHEMA_REGISTRY_USERNAME', 'TESSERA_SCHEMA_REGISTRY_PASSWORD'],
      /is needed with/,
    );
  });

  it('refuses PASSWORD with PASSWORD_FILE', () => {
    assertNames(
      refusal({
        TESSERA_SCHEMA_REGISTRY_URL: REGISTRY,
        TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1',
        TESSERA_SCHEMA_REGISTRY_PASSWORD: PASSWORD,
        TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE: '/run/secrets/registry-password',
      }),
      ['TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE', 'TESSERA_SCHEMA_REGISTRY_PASSWORD '],
      /both set: set one of them/,
    );
  });

  it('refuses a bearer token file together with basic auth', () => {
    assertNames(
      refusal({
        TESSERA_SCHEMA_REGISTRY_URL: REGISTRY,
        TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1',
        TESSERA_SCHEMA_REGISTRY_PASSWORD: PASSWORD,
        TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE: '/run/secrets/registry-token',
      }),
      [
        'TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE',
        'TESSERA_SCHEMA_REGISTRY_USERNAME',
        'TESSERA_SCHEMA_REGISTRY_PASSWORD',
      ],
      /one login/,
    );
  });

  it('refuses a login without TESSERA_SCHEMA_REGISTRY_URL', () => {
    assertNames(
      refusal({ TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1', TESSERA_SCHEMA_REGISTRY_PASSWORD: PASSWORD }),
      ['TESSERA_SCHEMA_REGISTRY_USERNAME', 'TESSERA_SCHEMA_REGISTRY_PASSWORD', 'TESSERA_SCHEMA_REGISTRY_URL'],
      /is not/,
    );
  });

  it('shows an invalid registry URL without its password', () => {
    const error = refusal({ TESSERA_SCHEMA_REGISTRY_URL: `ftp://KEY1:${URL_SECRET}@registry.example.com` });
    assert.match(
      error.message,
      /TESSERA_SCHEMA_REGISTRY_URL = "ftp:\/\/KEY1:(<|%3C)redacted(>|%3E)@registry/,
    );
  });

  it('accepts each single way of logging in', () => {
    for (const env of [
      { TESSERA_SCHEMA_REGISTRY_URL: WITH_CREDENTIALS },
      {
        TESSERA_SCHEMA_REGISTRY_URL: REGISTRY,
        TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1',
        TESSERA_SCHEMA_REGISTRY_PASSWORD: PASSWORD,
      },
      {
        TESSERA_SCHEMA_REGISTRY_URL: REGISTRY,
        TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1',
        TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE: '/run/secrets/registry-password',
      },
      {
        TESSERA_SCHEMA_REGISTRY_URL: REGISTRY,
        TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE: '/run/secrets/token',
      },
    ]) {
      const config = loadConfig({ env, argv: [] });
      assert.equal(config.schemaRegistryUrl, env.TESSERA_SCHEMA_REGISTRY_URL);
    }
  });

  it('a service given two logins refuses to start: exit code and message, no secret', () => {
    const run = producerWith({
      TESSERA_SCHEMA_REGISTRY_URL: WITH_CREDENTIALS,
      TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1',
      TESSERA_SCHEMA_REGISTRY_PASSWORD: PASSWORD,
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(
      run.stderr,
      /TESSERA_SCHEMA_REGISTRY_USERNAME.*TESSERA_SCHEMA_REGISTRY_URL holds credentials/,
    );
    assert.ok(
      !`${run.stdout}${run.stderr}`.includes(URL_SECRET) && !run.stderr.includes(PASSWORD),
      run.stderr,
    );
  });

  it('a service whose password file is missing refuses to start, naming the variable', () => {
    const run = producerWith({
      TESSERA_SCHEMA_REGISTRY_URL: REGISTRY,
      TESSERA_SCHEMA_REGISTRY_USERNAME: 'KEY1',
      TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE: '/nonexistent/tessera-registry-password',
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(
      run.stderr,
      /TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE = \/nonexistent\/tessera-registry-password: cannot read it \(ENOENT\)/,
    );
  });
});
