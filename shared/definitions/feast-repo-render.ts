// The Feast feature repo that mirrors a definitions file, as text: feature_store.yaml (the Tessera
// server as a `remote` online store) and one Python module (entities, a FileSource over the
// flusher's versions per view, feature views, feature services). Pure: shared/definitions/feast-repo.ts
// resolves the options and writes the files.

import { EVENT_TIMESTAMP, featureColumnType } from '../offline/feature-columns.ts';
import { type ColumnType, isListType, listItemType, type ScalarColumnType } from '../offline/parquet.ts';
import type { Definitions, EntityKeyType, ViewDef } from './schema.ts';

export const FEAST_CONFIG_FILE = 'feature_store.yaml';
export const FEAST_MODULE_FILE = 'tessera_features.py';

export interface FeastRepoOptions {
  /** The definitions file as the user named it: shown in the header and the regenerate command. */
  definitionsFile: string;
  /** The --out directory as the user named it: for the regenerate command only. */
  out: string;
  /** `s3://bucket[/prefix]` or an absolute local directory, without a trailing slash. */
  offlineStore: string;
  /** `s3_endpoint_override` of every FileSource (S3-compatible servers); null: none (AWS). */
  s3Endpoint: string | null;
  /** Base URL of the Tessera server, Feast's `online_store.path`. */
  server: string;
  /**
   * An https server's certificate (or its CA) as an absolute PEM path, Feast's `online_store.cert`:
   * for a server whose certificate the system CAs do not vouch for (self-signed, private CA).
   * Absent or null: none.
   */
  serverCert?: string | null;
  /** Environment variable holding a server token (Feast's oidc `token_env_var`); null: no auth. */
  tokenEnvVar: string | null;
}

/**
 * The Feast type of a parquet column type (docs/offline-store.md, "Training sets with Feast"): a
 * list is Feast's `Array` of its items, as Feast's own type map reads the parquet LIST column.
 */
export function feastType(type: ColumnType): string {
  return isListType(type) ? `Array(${FEAST_TYPES[listItemType(type)!]})` : FEAST_TYPES[type];
}

const FEAST_TYPES: Readonly<Record<ScalarColumnType, string>> = {
  int64: 'Int64',
  int32: 'Int32',
  double: 'Float64',
  string: 'String',
  bool: 'Bool',
  timestamp_ms: 'UnixTimestamp',
  binary: 'Bytes',
};

const VALUE_TYPES: Readonly<Record<EntityKeyType, string>> = { int64: 'INT64', string: 'STRING' };

/**
 * Feast's rule for project names (letters, digits, `_` and `-`, not starting with `_` or `-`):
 * ours are snake_case, so only a leading underscore can be wrong.
 */
export function feastProjectName(project: string): string {
  const name = project.replace(/[^A-Za-z0-9_-]/g, '_').replace(/^[_-]+/, '');
  return name === '' ? 'tessera' : name;
}

/**
 * A Python string literal for any string: double-quoted, ASCII only. Paths are user-given, so
 * quotes, backslashes, control characters and non-ASCII are all escaped.
 */
export function pythonString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${hex(code, 2)}`;
    else if (code < 0x7f) out += ch;
    else if (code <= 0xffff) out += `\\u${hex(code, 4)}`;
    else out += `\\U${hex(code, 8)}`;
  }
  return `${out}"`;
}

const hex = (code: number, width: number) => code.toString(16).padStart(width, '0');

/** A shell word that pastes back as itself: bare when safe, else single-quoted, else $'...'. */
export function shellWord(value: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(value)) return value;
  // Printable ASCII only: single quotes keep everything literal (a quote itself closes, escapes, reopens).
  if (/^[\x20-\x7e]*$/.test(value)) return `'${value.replaceAll("'", `'\\''`)}'`;
  // Anything else (a newline would end the header's comment line): bash's ANSI-C quoting.
  let out = "$'";
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === "'" || ch === '\\') out += `\\${ch}`;
    else if (code < 0x20 || code === 0x7f) out += `\\x${hex(code, 2)}`;
    else if (code < 0x7f) out += ch;
    else if (code <= 0xffff) out += `\\u${hex(code, 4)}`;
    else out += `\\U${hex(code, 8)}`;
  }
  return `${out}'`;
}

/** The glob over a view's versions: every v_*, not latest/ (a copy of the newest one). */
export function versionsGlob(offlineStore: string, view: string): string {
  return `${offlineStore}/${view}/v_*/features.parquet`;
}

/** The command that writes this repo again (it overwrites, hence --force). */
export function regenerateCommand(options: FeastRepoOptions): string {
  const args = [
    options.definitionsFile,
    '--out',
    options.out,
    '--offline-store',
    options.offlineStore,
    ...(options.s3Endpoint === null ? [] : ['--s3-endpoint', options.s3Endpoint]),
    '--server',
    options.server,
    ...(options.serverCert ? ['--server-cert', options.serverCert] : []),
    ...(options.tokenEnvVar === null ? ['--no-auth'] : ['--token-env-var', options.tokenEnvVar]),
    '--force',
  ];
  return ['npx tsx shared/definitions/feast-repo.ts', ...args.map(shellWord)].join(' ');
}

/**
 * feature_store.yaml. Values are quoted as pythonString does: its escapes are also those of a
 * YAML double-quoted scalar.
 */
export function renderFeatureStoreYaml(defs: Definitions, options: FeastRepoOptions): string {
  const q = pythonString;
  return [
    `# Generated by Tessera from ${q(options.definitionsFile)} (definitions hash ${defs.hash}); do not edit.`,
    `# Regenerate: ${regenerateCommand(options)}`,
    `project: ${q(feastProjectName(defs.project))}`,
    // Relative: Feast resolves it against the repo directory, so the repo can be moved.
    'registry: data/registry.db',
    'provider: local',
    'online_store:',
    '  type: remote',
    `  path: ${q(options.server)}`,
    ...(options.serverCert ? [`  cert: ${q(options.serverCert)}`] : []),
    ...(options.tokenEnvVar === null
      ? []
      : ['auth:', '  type: oidc', `  token_env_var: ${q(options.tokenEnvVar)}`]),
    'offline_store:',
    '  type: file',
    'entity_key_serialization_version: 3',
    '',
  ].join('\n');
}

// Python names carry a kind suffix, so no definitions name can collide with another kind's, with
// a Python keyword or with the imports.
const entityVar = (name: string) => `${name}_entity`;
const sourceVar = (view: string) => `${view}_source`;
const viewVar = (view: string) => `${view}_view`;
const serviceVar = (name: string) => `${name}_service`;

function fieldTypes(view: ViewDef): string[] {
  return view.features.map((f) => feastType(featureColumnType(f, view.source)));
}

/** tessera_features.py: every Feast object of the repo. */
export function renderFeastModule(defs: Definitions, options: FeastRepoOptions): string {
  // The names the types use: `Array(Float64)` imports Array and Float64.
  const types = [...new Set(defs.views.flatMap(fieldTypes).flatMap((t) => t.match(/\w+/g)!))].sort();
  const lines: string[] = [
    `# Generated by Tessera from ${pythonString(options.definitionsFile)} (project ${defs.project}, definitions hash ${defs.hash}).`,
    '# Do not edit: change the definitions file and regenerate with',
    `#   ${regenerateCommand(options)}`,
    '# Offline: each view reads every version the flusher wrote (docs/offline-store.md, "Training sets',
    '# with Feast"). Online: the remote store of feature_store.yaml is the Tessera server.',
    'from datetime import timedelta',
    '',
    'from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType',
    `from feast.types import ${types.join(', ')}`,
    '',
  ];
  for (const entity of defs.entities) {
    lines.push(
      `${entityVar(entity.name)} = Entity(`,
      `    name=${pythonString(entity.name)},`,
      `    join_keys=[${pythonString(entity.joinKey)}],`,
      `    value_type=ValueType.${VALUE_TYPES[entity.keyType]},`,
      ')',
      '',
    );
  }
  for (const view of defs.views) {
    const types = fieldTypes(view);
    lines.push(
      `${sourceVar(view.name)} = FileSource(`,
      `    name=${pythonString(`${view.name}_source`)},`,
      '    # Every version (v_*), not latest/: a copy of the newest version, its rows would count twice.',
      `    path=${pythonString(versionsGlob(options.offlineStore, view.name))},`,
      `    timestamp_field=${pythonString(EVENT_TIMESTAMP)},`,
      ...(options.s3Endpoint === null
        ? []
        : [`    s3_endpoint_override=${pythonString(options.s3Endpoint)},`]),
      ')',
      '',
      `${viewVar(view.name)} = FeatureView(`,
      `    name=${pythonString(view.name)},`,
      `    entities=[${entityVar(view.entity.name)}],`,
      '    # No TTL: each training row already holds its windows as of its own event time, so Feast',
      '    # must not age it out; online, the server applies max_age itself.',
      '    ttl=timedelta(0),',
      '    online=True,',
      '    schema=[',
      ...view.features.map((f, i) => `        Field(name=${pythonString(f.name)}, dtype=${types[i]}),`),
      '    ],',
      `    source=${sourceVar(view.name)},`,
      ')',
      '',
    );
  }
  for (const [name, refs] of defs.featureServices) {
    // Feast takes projections of whole views: the service's features grouped by view, each view
    // where its first feature is listed.
    const byView = new Map<string, string[]>();
    for (const ref of refs) {
      const at = ref.indexOf(':');
      const view = ref.slice(0, at);
      byView.set(view, [...(byView.get(view) ?? []), ref.slice(at + 1)]);
    }
    lines.push(
      `${serviceVar(name)} = FeatureService(`,
      `    name=${pythonString(name)},`,
      '    features=[',
      ...[...byView].map(
        ([view, features]) => `        ${viewVar(view)}[[${features.map(pythonString).join(', ')}]],`,
      ),
      '    ],',
      ')',
      '',
    );
  }
  // One newline at the end, none blank before it.
  return `${lines.join('\n').trimEnd()}\n`;
}

/** Both files of the repo, by name. */
export function renderFeastRepo(defs: Definitions, options: FeastRepoOptions): Record<string, string> {
  return {
    [FEAST_CONFIG_FILE]: renderFeatureStoreYaml(defs, options),
    [FEAST_MODULE_FILE]: renderFeastModule(defs, options),
  };
}
