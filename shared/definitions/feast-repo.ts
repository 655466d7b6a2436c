// `npx tsx shared/definitions/feast-repo.ts <definitions file> --out <dir> [...]`: writes a Feast
// feature repo mirroring the definitions (feast-repo-render.ts), so a Feast user reads the
// flusher's versions offline and the Tessera server online with one `feast apply`. Exit 0 when
// written, 1 when it cannot be (bad definitions, a non-empty --out without --force), 2 for a wrong
// command line.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULTS, loadConfig } from '../config/index.ts';
import { isTesseraError, TesseraError } from '../errors.ts';
import { offlineStoreUri } from '../offline/configured-store.ts';
import { localStorePath, parseS3Uri } from '../offline/object-store.ts';
import { type FeastRepoOptions, renderFeastRepo } from './feast-repo-render.ts';
import { loadDefinitionsFile } from './load.ts';

const DEFAULT_TOKEN_ENV_VAR = 'TESSERA_AUTH_TOKEN';

const USAGE = `usage: npx tsx shared/definitions/feast-repo.ts [<definitions file>] --out <dir> [options]

  Writes a Feast feature repo (feature_store.yaml, tessera_features.py) that mirrors the
  definitions: offline, a FileSource per view over the flusher's versions; online, the Tessera
  server as Feast's remote online store. Then: feast -c <dir> apply.

  <definitions file>       default: TESSERA_DEFINITIONS, else ${DEFAULTS.definitions}
  --out <dir>              where to write; refused if it holds files, unless --force
  --offline-store <root>   s3://bucket[/prefix] or a directory; default: the flusher's
                           (TESSERA_OFFLINE_STORE, else s3://<TESSERA_S3_BUCKET> when an S3
                           endpoint is configured, else offline-store/)
  --s3-endpoint <url>      S3 store only: s3_endpoint_override; default: TESSERA_S3_ENDPOINT
                           (${DEFAULTS.s3Endpoint}); --s3-endpoint '' for AWS itself
  --server <url>           the Tessera server; default http://127.0.0.1:<TESSERA_HTTP_PORT>
  --server-cert <pem>      https --server only: its certificate (self-signed) or its CA, Feast's
                           online_store.cert; default: none (the system CAs)
  --token-env-var <NAME>   variable holding a server token (Feast's oidc auth); default ${DEFAULT_TOKEN_ENV_VAR}
  --no-auth                no auth section (a server started with TESSERA_DEV_NO_AUTH)
  --force                  overwrite the repo's two files in a non-empty --out
  -h, --help               this text`;

/** A wrong command line names what was wrong, then the usage. */
function usage(problem: string): never {
  console.error(`${problem}\n\n${USAGE}`);
  process.exit(2);
}

const OPTIONS = {
  out: { type: 'string' },
  'offline-store': { type: 'string' },
  's3-endpoint': { type: 'string' },
  server: { type: 'string' },
  'server-cert': { type: 'string' },
  'token-env-var': { type: 'string' },
  'no-auth': { type: 'boolean' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

let parsed: ReturnType<typeof parseArgs<{ allowPositionals: true; options: typeof OPTIONS }>>;
try {
  parsed = parseArgs({ allowPositionals: true, options: OPTIONS });
} catch (error) {
  usage((error as Error).message);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (positionals.length > 1) usage(`one definitions file at a time, got ${positionals.join(' ')}`);
if (values.out === undefined || values.out === '') usage('--out <dir> is required');
if (values['no-auth'] && values['token-env-var'] !== undefined)
  usage('--no-auth and --token-env-var contradict each other: give one');
const tokenEnvVar = values['no-auth'] ? null : (values['token-env-var'] ?? DEFAULT_TOKEN_ENV_VAR);
if (tokenEnvVar !== null && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(tokenEnvVar))
  usage(
    `--token-env-var must be an environment variable name (letters, digits, _), not ${JSON.stringify(tokenEnvVar)}`,
  );
if (values.server !== undefined && !isHttpUrl(values.server))
  usage(`--server must be an http:// or https:// URL, not ${JSON.stringify(values.server)}`);
const serverCert = values['server-cert'];
if (serverCert !== undefined) {
  if (serverCert === '') usage('--server-cert must not be empty');
  // Feast hands it to requests as `verify`, which only an https request reads: with http it would
  // be ignored, and the repo would seem to use TLS when it does not.
  if (!values.server?.startsWith('https://'))
    usage('--server-cert is for an https:// server: give --server https://<host>:<port> too');
}
if (values['s3-endpoint'] && !isHttpUrl(values['s3-endpoint']))
  usage(`--s3-endpoint must be an http:// or https:// URL, not ${JSON.stringify(values['s3-endpoint'])}`);
if (values['offline-store'] === '') usage('--offline-store must not be empty');

try {
  // The same resolution as the flusher's: flags given here win, the rest comes from TESSERA_*.
  const config = loadConfig({ argv: [] });
  const file = positionals[0] ?? config.definitions;
  const defs = loadDefinitionsFile(file);
  const offlineStore = storeRoot(values['offline-store'] ?? offlineStoreUri(config));
  const onS3 = offlineStore.startsWith('s3://');
  if (!onS3 && values['s3-endpoint'] !== undefined)
    usage(`--s3-endpoint is for an s3:// offline store; ${offlineStore} is a directory`);
  // On S3 the flusher's own endpoint, unless given; '' for AWS itself (no override).
  const endpoint = values['s3-endpoint'] ?? config.s3Endpoint;
  const s3Endpoint = onS3 && endpoint !== '' ? endpoint : null;
  const options: FeastRepoOptions = {
    definitionsFile: file,
    out: values.out,
    offlineStore,
    s3Endpoint,
    server: (values.server ?? `http://127.0.0.1:${config.httpPort || DEFAULTS.httpPort}`).replace(/\/+$/, ''),
    // Absolute: Feast reads it from whatever directory it runs in.
    serverCert: serverCert === undefined ? null : certPath(serverCert),
    tokenEnvVar,
  };
  const files = renderFeastRepo(defs, options);
  writeRepo(values.out, files, values.force === true);
  console.log(
    `wrote ${Object.keys(files).join(', ')} to ${values.out} (project ${defs.project}, definitions hash ${defs.hash}); next: feast -c ${values.out} apply`,
  );
} catch (error) {
  console.error(isTesseraError(error) ? error.message : error);
  process.exit(1);
}

/** The certificate's absolute path, once it is there: a typo would surface only at Feast's first lookup. */
function certPath(path: string): string {
  const absolute = resolve(path);
  if (!existsSync(absolute) || !statSync(absolute).isFile())
    throw new TesseraError('CONFIG_INVALID', `--server-cert ${path}: no such file`);
  return absolute;
}

function isHttpUrl(value: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

/**
 * The store's root as Feast must see it: `s3://bucket[/prefix]`, or an absolute directory (the
 * flusher resolves a relative one against its working directory, Feast would against the repo's).
 */
function storeRoot(uri: string): string {
  let root: string;
  if (uri.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Uri(uri);
    root = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
  } else {
    // Where the flusher writes for this URI (the same conversion), made absolute.
    const dir = localStorePath(uri);
    root = (isAbsolute(dir) ? dir : resolve(dir)).replace(/(.)\/+$/, '$1');
  }
  // The path is a glob to dask: these characters would match other directories, or none.
  if (/[*?[\]]/.test(root))
    throw new TesseraError(
      'CONFIG_INVALID',
      `offline store ${root} contains a glob character (* ? [ ]), which Feast would expand: move the store`,
    );
  return root;
}

/** Writes the files, refusing a directory that already holds anything unless `force`. */
function writeRepo(out: string, files: Record<string, string>, force: boolean): void {
  if (existsSync(out)) {
    if (!statSync(out).isDirectory())
      throw new TesseraError('CONFIG_INVALID', `--out ${out} is a file, not a directory`);
    if (!force && readdirSync(out).length > 0)
      throw new TesseraError(
        'CONFIG_INVALID',
        `--out ${out} is not empty: pass --force to overwrite ${Object.keys(files).join(' and ')} there (other files are kept)`,
      );
  }
  mkdirSync(out, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(out, name), text);
}
