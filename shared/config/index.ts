// Tessera's configuration: read from TESSERA_* environment variables and --flags (flags win),
// validated at start, printable without secrets. Defaults and docs live in defaults.ts.

import { TesseraError } from '../errors.ts';
import {
  CONFIG_KEYS,
  type ConfigKey,
  DEFAULTS,
  ENV_NAMES,
  flagName,
  LOCAL_OFFLINE_STORE,
  SECRET_KEYS,
} from './defaults.ts';
import { REDACTED, redactUrl } from './redact.ts';
import { type Config, configSchema, type RawConfig } from './schema.ts';

export { CONFIG_KEYS, DEFAULTS, ENV_NAMES, flagName, LOG_LEVELS, type LogLevel } from './defaults.ts';
export type { Config } from './schema.ts';

export interface LoadConfigOptions {
  /** Environment to read; defaults to process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Command-line arguments to read; defaults to process.argv.slice(2). Non-flag arguments are ignored. */
  argv?: readonly string[];
}

/**
 * Reads and validates the configuration. Throws a TesseraError with code CONFIG_INVALID whose
 * message names every bad variable or flag. An empty environment variable counts as unset.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const argv = options.argv ?? process.argv.slice(2);
  const raw: RawConfig = {};
  const source: Partial<Record<ConfigKey, string>> = {};
  for (const key of CONFIG_KEYS) {
    const value = env[ENV_NAMES[key]];
    if (value !== undefined && value !== '') {
      raw[key] = value;
      source[key] = ENV_NAMES[key];
    }
  }
  for (const [key, value] of Object.entries(parseFlags(argv)) as [ConfigKey, string][]) {
    // As an empty variable: unset (--offline-store= took the S3 guess an empty variable avoids).
    if (value === '') {
      delete raw[key];
      delete source[key];
      continue;
    }
    raw[key] = value;
    source[key] = flagName(key);
  }
  const result = configSchema.safeParse(raw);
  if (result.success) {
    // No S3 configured at all: the offline store is an embedded local directory, not a guess at
    // an S3 server on the default endpoint.
    if (raw.offlineStore === undefined && raw.s3Endpoint === undefined)
      return { ...result.data, offlineStore: LOCAL_OFFLINE_STORE };
    return result.data;
  }
  const problems = result.error.issues.map((issue) => {
    const key = issue.path[0] as ConfigKey;
    const name = source[key] ?? `${ENV_NAMES[key]} (default)`;
    // A URL's password is a secret too (TESSERA_SCHEMA_REGISTRY_URL's user:pass@, a Redis URL's).
    const value = raw[key] ?? DEFAULTS[key];
    const shown = SECRET_KEYS.has(key)
      ? ''
      : ` = ${JSON.stringify(typeof value === 'string' ? redactUrl(value) : value)}`;
    return { name, message: `${name}${shown}: ${issue.message}` };
  });
  throw new TesseraError(
    'CONFIG_INVALID',
    `invalid configuration:\n  ${problems.map((p) => p.message).join('\n  ')}`,
    { context: { invalid: problems.map((p) => p.name) } },
  );
}

/** Parses `--name=value` and `--name value`; unknown flags are an error listing the known ones. */
export function parseFlags(argv: readonly string[]): RawConfig {
  const byFlag = new Map(CONFIG_KEYS.map((key) => [flagName(key), key]));
  const out: RawConfig = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const key = byFlag.get(name);
    if (key === undefined) {
      throw new TesseraError(
        'CONFIG_INVALID',
        `unknown flag ${name}; known flags: ${[...byFlag.keys()].join(' ')}`,
        { context: { invalid: [name] } },
      );
    }
    let value: string | undefined;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) {
      throw new TesseraError('CONFIG_INVALID', `flag ${name} needs a value: ${name}=<value>`, {
        context: { invalid: [name] },
      });
    }
    out[key] = value;
  }
  return out;
}

/** The config as plain data with secrets replaced and passwords removed from URLs. */
export function redactConfig(config: Config): Record<ConfigKey, unknown> {
  const out = { ...config } as Record<ConfigKey, unknown>;
  for (const key of SECRET_KEYS) {
    out[key] = config[key] === '' ? '' : REDACTED;
  }
  out.redisUrl = redactUrl(config.redisUrl);
  out.s3Endpoint = redactUrl(config.s3Endpoint);
  // A registry that needs basic auth (Confluent Cloud) carries it in the URL: user:pass@.
  out.schemaRegistryUrl = redactUrl(config.schemaRegistryUrl);
  out.kafkaSaslOauthbearerTokenEndpointUrl = redactUrl(config.kafkaSaslOauthbearerTokenEndpointUrl);
  return out;
}

/**
 * When the command line asks for the usage (`--help` or `-h`) instead of a run: prints
 * configUsage and returns true, so the service's main returns before reading its configuration.
 */
export function printedUsage(argv: readonly string[], command: string, summary: string): boolean {
  if (!argv.includes('--help') && !argv.includes('-h')) return false;
  console.log(configUsage(command, summary));
  return true;
}

/**
 * A service's usage: what it does, then every option as a flag, its environment variable and its
 * default (secrets not shown). What each means: the configuration tables in docs/.
 */
export function configUsage(command: string, summary: string): string {
  const rows = CONFIG_KEYS.map((key) => {
    const value = DEFAULTS[key];
    const shown = SECRET_KEYS.has(key)
      ? '(secret)'
      : Array.isArray(value)
        ? value.join(',')
        : value === ''
          ? '(none)'
          : String(value);
    return [`${flagName(key)} <value>`, ENV_NAMES[key], shown] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  const envWidth = Math.max(...rows.map(([, env]) => env.length));
  return [
    `usage: ${command} [--<option> <value> ...]`,
    '',
    `  ${summary}`,
    '',
    '  Every option is a flag or an environment variable (a flag wins); default in the last column.',
    "  What each means: README.md's Configuration, which points at each service's doc.",
    '',
    ...rows.map(([flag, env, shown]) => `  ${flag.padEnd(width)}  ${env.padEnd(envWidth)}  ${shown}`),
  ].join('\n');
}

/** One line per option, `TESSERA_X = value`, secrets redacted: for start-up logs. */
export function renderConfig(config: Config): string {
  const shown = redactConfig(config);
  return CONFIG_KEYS.map((key) => {
    const v = shown[key];
    return `${ENV_NAMES[key]} = ${Array.isArray(v) ? v.join(',') : String(v)}`;
  }).join('\n');
}
