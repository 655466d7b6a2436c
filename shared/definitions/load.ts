// Loads a definitions file (YAML), validates it (schema, then cross references), and compiles it
// to the typed form the engine uses. Every error names the file, the line, the field path and
// what is allowed.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Document, isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { MAX_DATE_MS } from '../codecs/timestamp.ts';
import { TesseraError } from '../errors.ts';
import { RESERVED_COLUMNS, SOURCE_OFFSET, SOURCE_PARTITION } from '../offline/feature-columns.ts';
import { formatDuration, parseDuration } from './duration.ts';
import {
  type ColumnType,
  type Definitions,
  type DefinitionsParsed,
  definitionsSchema,
  type EntityDef,
  type FeatureDef,
  fullFeatureName,
  NUMERIC_AGGREGATIONS,
  type SourceDef,
  type ViewDef,
} from './schema.ts';

type Path = (string | number)[];

interface Problem {
  path: Path;
  message: string;
}

/** Default tile per window when a tiled feature declares none (the same steps as Chronon's). */
export function defaultTileMs(windowMs: number): number {
  const hour = 3_600_000;
  if (windowMs < 12 * hour) return 5 * 60_000;
  if (windowMs < 12 * 24 * hour) return hour;
  return 24 * hour;
}

export function loadDefinitionsFile(file: string, overrides: CompileOptions = {}): Definitions {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `cannot read definitions file ${file} (${(cause as NodeJS.ErrnoException).code ?? String(cause)}): check the path (TESSERA_DEFINITIONS, or the argument given)`,
      {
        cause,
        context: { file },
      },
    );
  }
  return parseDefinitions(text, file, overrides);
}

export interface CompileOptions {
  /** Force every feature into one mode (benchmarks and tests compare both modes on one file). */
  mode?: 'exact' | 'tiled';
}

export function parseDefinitions(text: string, file = '<inline>', options: CompileOptions = {}): Definitions {
  const lineCounter = new LineCounter();
  // `<<` merge keys resolve (a shared block of feature fields written once): without them the key
  // was read as an unknown field named `<<`.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const pos = first.linePos?.[0];
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: not valid YAML: ${first.message.split('\n')[0]}`,
      { context: { file } },
    );
  }
  let content: unknown;
  try {
    // yaml's default of 100 alias uses is a guard for untrusted text; a view of a few hundred
    // features sharing one merge block (`- <<: *counts`) is an ordinary file here.
    content = doc.toJS({ maxAliasCount: 100_000 });
  } catch (error) {
    throw new TesseraError('DEFINITIONS_INVALID', `${file}: not usable YAML: ${(error as Error).message}`, {
      cause: error,
      context: { file },
    });
  }
  if (content === null || content === undefined) {
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `${file}: the file is empty: write a mapping with version: 1, project, entities, sources and views (docs/definitions.md)`,
      { context: { file } },
    );
  }
  const parsed = definitionsSchema.safeParse(content);
  if (!parsed.success) {
    throw definitionsError(file, doc, lineCounter, parsed.error.issues.map(issueToProblem));
  }
  const problems: Problem[] = [];
  const compiled = compile(parsed.data, file, problems, options);
  if (problems.length > 0) throw definitionsError(file, doc, lineCounter, problems);
  return compiled;
}

/** zod's issues in the words of this file format (zod says "Required", "Invalid literal value"). */
function issueToProblem(issue: ZodIssue): Problem {
  let message = issue.message;
  if (issue.code === 'invalid_enum_value') message = `must be one of ${issue.options.join(', ')}`;
  if (issue.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.join(', ')}`;
  // A message of the schema's own (a duration's) stays; zod's own ones start "Expected"/"Required".
  if (issue.code === 'invalid_type' && (message === 'Required' || message.startsWith('Expected')))
    message =
      issue.received === 'undefined'
        ? 'is required'
        : `must be ${TYPE_WORDS[issue.expected] ?? issue.expected}, not ${TYPE_WORDS[issue.received] ?? issue.received}`;
  if (issue.code === 'invalid_literal')
    message = `must be ${JSON.stringify(issue.expected)} (the only format version)`;
  if (issue.code === 'too_small' && issue.type === 'array')
    message = `needs at least ${issue.minimum} entr${issue.minimum === 1 ? 'y' : 'ies'}`;
  if (issue.code === 'too_small' && issue.type === 'number') message = `must be at least ${issue.minimum}`;
  if (issue.code === 'too_big' && issue.type === 'number') message = `must be at most ${issue.maximum}`;
  if (issue.code === 'invalid_type' && issue.expected === 'integer' && issue.received === 'float')
    message = 'must be a whole number';
  return { path: issue.path, message };
}

/** Aggregations whose empty window is 0: a default can only be 0, and changes nothing. */
const ALWAYS_ZERO_WHEN_EMPTY: ReadonlySet<string> = new Set([
  'count',
  'sum',
  'count_distinct',
  'approx_count_distinct',
]);

/** Feast's placeholder entity of views without one (join key `__dummy_id`). */
const FEAST_DUMMY_ENTITY = '__dummy';

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  null: 'null (empty)',
  boolean: 'true or false',
};

function definitionsError(
  file: string,
  doc: Document,
  lines: LineCounter,
  problems: Problem[],
): TesseraError {
  const described = problems.map((p) => {
    const line = lineOf(doc, lines, p.path);
    return `${file}${line ? `:${line}` : ''}: ${formatPath(p.path)}: ${p.message}`;
  });
  return new TesseraError(
    'DEFINITIONS_INVALID',
    `invalid feature definitions:\n  ${described.join('\n  ')}`,
    {
      context: { file, problems },
    },
  );
}

function formatPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '<root>';
}

/** The line of the deepest node of `path` that exists in the document. */
function lineOf(doc: Document, lines: LineCounter, path: Path): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true) as { range?: [number, number, number] } | undefined;
    if (node && (isMap(node) || isSeq(node) || node.range)) {
      const offset = node.range?.[0];
      if (offset !== undefined) return lines.linePos(offset).line;
    }
  }
  return undefined;
}

function compile(
  input: DefinitionsParsed,
  file: string,
  problems: Problem[],
  options: CompileOptions,
): Definitions {
  const entities = new Map<string, EntityDef>();
  input.entities.forEach((e, i) => {
    if (entities.has(e.name))
      problems.push({ path: ['entities', i, 'name'], message: `duplicate entity ${e.name}` });
    // Written beside the join key in features.parquet, the raw log and the snapshots, which pick
    // their columns by name: a join key of one of these names overwrote it (the event time lost).
    if (RESERVED_COLUMNS.includes(e.join_key))
      problems.push({
        path: ['entities', i, 'join_key'],
        message: `${e.join_key} names a column the offline tables hold beside the join key (${RESERVED_COLUMNS.join(', ')}); call it otherwise`,
      });
    // Feast's placeholder for views without an entity: its SDK drops an entity of these names.
    if (e.name === FEAST_DUMMY_ENTITY || e.join_key === `${FEAST_DUMMY_ENTITY}_id`)
      problems.push({
        path: ['entities', i, e.name === FEAST_DUMMY_ENTITY ? 'name' : 'join_key'],
        message: `${FEAST_DUMMY_ENTITY} and ${FEAST_DUMMY_ENTITY}_id are Feast's placeholder entity, which its SDK leaves out; call it otherwise`,
      });
    entities.set(e.name, { name: e.name, joinKey: e.join_key, keyType: e.type });
  });

  const sources = new Map<string, SourceDef>();
  input.sources.forEach((s, i) => {
    const at = (field: string): Path => ['sources', i, field];
    if (sources.has(s.name)) {
      // Reported once: replacing the first would also report every view's columns as unknown.
      problems.push({ path: at('name'), message: `duplicate source ${s.name}` });
      return;
    }
    // The ingestor and the flusher read a topic as one source: a second one on it was ignored.
    const sameTopic = [...sources.values()].find((other) => other.topic === s.topic);
    if (sameTopic)
      problems.push({
        path: at('topic'),
        message: `source ${sameTopic.name} already reads topic ${s.topic}; one source per topic (key a second set of views by another entity through a topic of its own)`,
      });
    // The raw event log appends the record's Kafka position under these names.
    for (const column of [SOURCE_PARTITION, SOURCE_OFFSET])
      if (columnOf(s.schema, column) !== undefined)
        problems.push({
          path: ['sources', i, 'schema', column],
          message: `${column} names a column the raw event log adds (the record's Kafka position); call it otherwise`,
        });
    const keyType = columnOf(s.schema, s.key_field);
    if (keyType !== 'int64' && keyType !== 'string') {
      problems.push({
        path: at('key_field'),
        message: `${s.key_field} must be a column of schema with type int64 or string`,
      });
    }
    if (columnOf(s.schema, s.timestamp_field) !== 'timestamp') {
      problems.push({
        path: at('timestamp_field'),
        message: `${s.timestamp_field} must be a column of schema with type timestamp`,
      });
    }
    if (s.format !== 'json' && !s.avro_schema && s.format === 'avro') {
      problems.push({
        path: at('avro_schema'),
        message: 'format avro needs avro_schema (path of an .avsc file)',
      });
    }
    sources.set(s.name, {
      name: s.name,
      topic: s.topic,
      format: s.format,
      keyField: s.key_field,
      timestampField: s.timestamp_field,
      timestampFormat: s.timestamp_format,
      ...(s.avro_schema ? { avroSchema: s.avro_schema } : {}),
      schema: s.schema,
    });
  });

  const views: ViewDef[] = [];
  /** Index in the file of each compiled view (a view with an unknown entity or source is left out). */
  const viewAt: number[] = [];
  const refs = new Set<string>();
  input.views.forEach((v, vi) => {
    const at = (...rest: Path): Path => ['views', vi, ...rest];
    if (views.some((other) => other.name === v.name))
      problems.push({ path: at('name'), message: `duplicate view ${v.name}` });
    const entity = entities.get(v.entity);
    const source = sources.get(v.source);
    if (!entity)
      problems.push({
        path: at('entity'),
        message: `unknown entity ${v.entity}; declared: ${[...entities.keys()].join(', ')}`,
      });
    if (!source)
      problems.push({
        path: at('source'),
        message: `unknown source ${v.source}; declared: ${[...sources.keys()].join(', ')}`,
      });
    if (!entity || !source) return;
    if (source.keyField !== entity.joinKey) {
      problems.push({
        path: at('source'),
        message: `source ${source.name} is keyed by ${source.keyField}, entity ${entity.name} by ${entity.joinKey}`,
      });
    }
    const keyType = columnOf(source.schema, source.keyField);
    // An unknown key column is reported at the source already.
    if (keyType !== undefined && keyType !== entity.keyType) {
      problems.push({
        path: at('entity'),
        message: `entity ${entity.name} has type ${entity.keyType} but ${source.name}.${source.keyField} is ${keyType}`,
      });
    }
    const lateness = parseDuration(v.allowed_lateness) as number;
    const features: FeatureDef[] = [];
    v.features.forEach((f, fi) => {
      const fat = (field: string): Path => at('features', fi, field);
      if (features.some((other) => other.name === f.name))
        problems.push({ path: fat('name'), message: `duplicate feature ${f.name}` });
      const needsColumn = f.aggregation !== 'count';
      if (needsColumn && !f.column)
        problems.push({ path: fat('column'), message: `${f.aggregation} needs a column` });
      if (!needsColumn && f.column) problems.push({ path: fat('column'), message: 'count takes no column' });
      const columnType = f.column ? columnOf(source.schema, f.column) : undefined;
      if (f.column && !columnType) {
        problems.push({
          path: fat('column'),
          message: `unknown column ${f.column}; ${source.name} has ${Object.keys(source.schema).join(', ')}`,
        });
      }
      if (
        columnType &&
        NUMERIC_AGGREGATIONS.has(f.aggregation) &&
        columnType !== 'int64' &&
        columnType !== 'double'
      ) {
        problems.push({
          path: fat('column'),
          message: `${f.aggregation} needs a numeric column (int64 or double); ${f.column} is ${columnType}`,
        });
      }
      const windowMs = parseDuration(f.window) as number;
      const mode = options.mode ?? f.mode ?? v.mode;
      const tileMs =
        mode === 'tiled' ? (f.tile ? (parseDuration(f.tile) as number) : defaultTileMs(windowMs)) : 0;
      if (mode === 'tiled' && tileMs > windowMs) {
        problems.push({
          path: fat(f.tile ? 'tile' : 'window'),
          message: f.tile
            ? `tile ${formatDuration(tileMs)} is longer than the window ${f.window}`
            : `a tiled window of ${f.window} needs a tile no longer than it: the default (5m under 12h) is longer; declare one, e.g. tile: ${formatDuration(Math.max(1000, Math.floor(windowMs / 6 / 1000) * 1000))}`,
        });
      }
      if (f.n !== undefined && f.aggregation !== 'last_n')
        problems.push({ path: fat('n'), message: 'n is only for last_n' });
      if (f.precision !== undefined && f.aggregation !== 'approx_count_distinct') {
        problems.push({ path: fat('precision'), message: 'precision is only for approx_count_distinct' });
      }
      if (ALWAYS_ZERO_WHEN_EMPTY.has(f.aggregation) && f.default !== undefined && f.default !== 0) {
        problems.push({
          path: fat('default'),
          message: `${f.aggregation} of an empty window is always 0; remove default`,
        });
      }
      if (f.name === entity.joinKey || RESERVED_COLUMNS.includes(f.name)) {
        problems.push({
          path: fat('name'),
          message: `${f.name} names a column the offline tables hold beside the features (${[entity.joinKey, ...RESERVED_COLUMNS].join(', ')}); call the feature otherwise`,
        });
      }
      const wrongDefault = defaultProblem(f.aggregation, columnType, f.default);
      if (wrongDefault) problems.push({ path: fat('default'), message: wrongDefault });
      const ref = `${v.name}:${f.name}`;
      refs.add(ref);
      features.push({
        name: f.name,
        ref,
        aggregation: f.aggregation,
        column: f.column ?? null,
        windowMs,
        mode,
        tileMs,
        // An empty window of these is 0 whatever the default: `default: 0` written out is the same
        // definitions (and hash) as none.
        default: ALWAYS_ZERO_WHEN_EMPTY.has(f.aggregation) ? null : (f.default ?? null),
        n: f.n ?? 10,
        precision: f.precision ?? 12,
      });
    });
    const longest = Math.max(...features.map((f) => f.windowMs + f.tileMs));
    const ttlMs = v.ttl ? (parseDuration(v.ttl) as number) : longest + lateness;
    if (ttlMs < longest + lateness) {
      problems.push({
        path: at('ttl'),
        message: `ttl must be at least the longest window plus its tile (an exact feature has none) plus allowed_lateness (${formatDuration(longest + lateness)})`,
      });
    }
    for (const f of features)
      if (
        f.column &&
        NUMERIC_AGGREGATIONS.has(f.aggregation) &&
        columnOf(source.schema, f.column) === 'int64'
      ) {
        const columns = source.numericInt64Columns ?? [];
        if (!columns.includes(f.column)) source.numericInt64Columns = [...columns, f.column];
      }
    viewAt.push(vi);
    views.push({
      name: v.name,
      entity,
      source,
      allowedLatenessMs: lateness,
      ttlMs,
      maxEventsPerEntity: v.max_events_per_entity,
      maxAgeMs: v.max_age ? (parseDuration(v.max_age) as number) : null,
      features,
    });
  });

  const featureServices = new Map<string, string[]>();
  input.feature_services.forEach((s, si) => {
    if (featureServices.has(s.name))
      problems.push({
        path: ['feature_services', si, 'name'],
        message: `duplicate feature service ${s.name}`,
      });
    s.features.forEach((ref, ri) => {
      if (!refs.has(ref))
        problems.push({
          path: ['feature_services', si, 'features', ri],
          message: `unknown feature ${ref}; use view:feature`,
        });
      else if (s.features.indexOf(ref) < ri)
        problems.push({ path: ['feature_services', si, 'features', ri], message: `${ref} is listed twice` });
    });
    featureServices.set(s.name, s.features);
  });

  // Feast's full names (`view__feature`, full_feature_names) must tell every feature apart: with
  // `__` inside names, `a__b:c` and `a:b__c` would both answer as a__b__c.
  const fullNames = new Map<string, string>();
  for (const [vi, v] of views.entries())
    for (const [fi, f] of v.features.entries()) {
      const full = fullFeatureName(v.name, f.name);
      const other = fullNames.get(full);
      if (other !== undefined && other !== f.ref)
        problems.push({
          path: ['views', viewAt[vi] ?? vi, 'features', fi, 'name'],
          message: `${f.ref} and ${other} have the same full name ${full} (view__feature, as served with full_feature_names); rename one, e.g. without the double underscore`,
        });
      else fullNames.set(full, f.ref);
    }

  const compiled = {
    project: input.project,
    file,
    entities: [...entities.values()],
    sources: [...sources.values()],
    views,
    featureServices,
  };
  return { ...compiled, hash: definitionsHash(compiled) };
}

/**
 * The definitions version: 16 hex digits of SHA-256 over what the engine and the services use,
 * in the compiled form (durations in ms, each feature's effective mode and tile, every default
 * filled in). So spelling the same definitions otherwise (`60m` for `1h`, other key order,
 * comments, descriptions, a tile on an exact feature) keeps the hash, and every change of meaning
 * (a window, aggregation, column, key, type, lateness, ttl, mode, topic, format, feature service)
 * changes it, including a change of a default in this loader. Lists keep their order; the file
 * path is not part of it.
 */
export function definitionsHash(defs: Omit<Definitions, 'hash'>): string {
  const content = [
    defs.project,
    defs.entities.map((e) => [e.name, e.joinKey, e.keyType]),
    defs.sources.map((s) => [
      s.name,
      s.topic,
      s.format,
      s.keyField,
      s.timestampField,
      s.timestampFormat,
      s.avroSchema ?? null,
      Object.entries(s.schema),
    ]),
    defs.views.map((v) => [
      v.name,
      v.entity.name,
      v.source.name,
      v.allowedLatenessMs,
      v.ttlMs,
      v.maxEventsPerEntity,
      v.maxAgeMs,
      v.features.map((f) => [
        f.name,
        f.aggregation,
        f.column,
        f.windowMs,
        f.mode,
        f.tileMs,
        f.default,
        f.n,
        f.precision,
      ]),
    ]),
    [...defs.featureServices],
  ];
  return createHash('sha256').update(JSON.stringify(content)).digest('hex').slice(0, 16);
}

/** The type of a declared column; only the schema's own keys count (`constructor` is no column). */
function columnOf(schema: Record<string, ColumnType>, column: string): ColumnType | undefined {
  return Object.hasOwn(schema, column) ? schema[column] : undefined;
}

/**
 * Why a feature's `default` cannot be its value, or undefined. The default is the value of an
 * empty window, online and in the offline tables' typed column (shared/offline/feature-columns.ts):
 * a value of another type would be served as is and then stop every flush that writes it.
 */
function defaultProblem(
  aggregation: FeatureDef['aggregation'],
  columnType: ColumnType | undefined,
  value: number | string | null | undefined,
): string | undefined {
  if (value === undefined || value === null) return undefined;
  switch (aggregation) {
    case 'count':
    case 'sum':
    case 'count_distinct':
    case 'approx_count_distinct':
      return undefined; // a default other than 0 is refused above
    case 'last_n':
      return 'last_n of an empty window is always []; remove default';
    case 'avg':
    case 'stddev':
    case 'variance':
      return typeof value === 'number'
        ? undefined
        : `${aggregation} answers a number: default ${JSON.stringify(value)} is not one`;
    default: {
      // min, max, first, last: a value of the column's type.
      if (columnType === undefined) return undefined; // the unknown column is reported already
      // YAML's true/false are not taken as defaults.
      if (columnType === 'bool')
        return `${aggregation} of a bool column answers a bool, which cannot be given as a default: remove it (an empty window answers null)`;
      const fits =
        columnType === 'double'
          ? typeof value === 'number'
          : columnType === 'string'
            ? typeof value === 'string'
            : columnType === 'timestamp'
              ? // A time a Date holds: the offline store writes it as a time (a default beyond
                // stopped every flush of the view).
                Number.isSafeInteger(value) && Math.abs(value as number) <= MAX_DATE_MS
              : Number.isSafeInteger(value); // int64
      const answers =
        columnType === 'timestamp' ? 'timestamp (epoch ms, an integer within ±8.64e15)' : columnType;
      return fits
        ? undefined
        : `${aggregation} of a ${columnType} column answers a ${answers}: default ${JSON.stringify(value)} is not one`;
    }
  }
}
