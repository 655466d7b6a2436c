// The Avro form of the vectors pushed to `features.updates` (TESSERA_UPDATES_FORMAT=avro). Each
// view has a record schema of its own, derived from the definitions: the fields of the JSON form
// (view, entity, as_of, state_version, features, definitions_hash), every feature nullable and typed as in
// features.parquet (shared/offline/feature-columns.ts), last_n as an array of its column's type.
// Several views share the topic, so each schema is registered under its own subject
// (TopicRecordNameStrategy: `<topic>-tessera.updates.<view>`), and each value is in the Confluent
// wire format: magic byte 0, the schema id, the Avro body.
import avro from 'avsc';
import { preciseLong } from '../../shared/codecs/avro-codec.ts';
import { frameConfluent } from '../../shared/codecs/confluent-frame.ts';
import { type RegistryEndpoint, registerSchema } from '../../shared/codecs/schema-registry.ts';
import type { ViewDef } from '../../shared/definitions/schema.ts';
import { TesseraError } from '../../shared/errors.ts';
import { featureColumnType } from '../../shared/offline/feature-columns.ts';
import { type ColumnType, isListType, listItemType } from '../../shared/offline/parquet.ts';
import type { FeatureUpdate } from './apply-batch.ts';

export const UPDATE_NAMESPACE = 'tessera.updates';

/** The Avro type of a parquet column type (the types features take). */
function avroType(type: ColumnType): avro.Schema {
  // A last_n's n latest values of its column, oldest first (never null inside: nulls are skipped).
  if (isListType(type)) return { type: 'array', items: avroType(listItemType(type)!) };
  switch (type) {
    case 'int64':
      return 'long';
    case 'int32':
      return 'int';
    case 'double':
      return 'double';
    case 'bool':
      return 'boolean';
    case 'timestamp_ms':
      return { type: 'long', logicalType: 'timestamp-millis' };
    case 'string':
      return 'string';
    case 'binary':
      return 'bytes';
  }
}

/** Avro's primitive type names, which no named type may take (the spec; avsc refuses them). */
const AVRO_PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

/** The record schema of one view's pushed vectors, named after the view. */
export function updateSchema(view: ViewDef): avro.Schema {
  if (AVRO_PRIMITIVES.has(view.name))
    // avsc's own "cannot rename primitive type" stopped the start with a raw stack. Renaming the
    // record behind the user's back would give consumers a schema name they never chose.
    throw new TesseraError(
      'CONFIG_INVALID',
      `view ${view.name}: an Avro primitive type's name cannot name the Avro record of its feature updates (TESSERA_UPDATES_FORMAT=avro); rename the view, or push JSON updates`,
      { context: { view: view.name } },
    );
  return {
    type: 'record',
    name: view.name,
    namespace: UPDATE_NAMESPACE,
    doc: `Feature vector of one ${view.entity.name} (${view.entity.joinKey}) of view ${view.name}, as of as_of (Tessera).`,
    fields: [
      { name: 'view', type: 'string' },
      { name: 'entity', type: 'string', doc: `The ${view.entity.joinKey}, as the record key.` },
      {
        name: 'as_of',
        type: { type: 'long', logicalType: 'timestamp-millis' },
        doc: "The entity's newest event time + 1 ms: the vector includes that event.",
      },
      {
        name: 'state_version',
        type: 'long',
        default: 0,
        doc: "The entity state's version in Redis after this vector's events (+1 per write): of two vectors with the same as_of, the larger is newer. 0: written before Tessera pushed versions.",
      },
      {
        name: 'features',
        type: {
          type: 'record',
          name: `${view.name}_features`,
          fields: view.features.map((f) => ({
            name: f.name,
            type: ['null', avroType(featureColumnType(f, view.source))],
            default: null,
          })),
        },
      },
      { name: 'definitions_hash', type: 'string' },
    ],
  } as avro.Schema;
}

/** The registry subject of a view's schema on the updates topic (TopicRecordNameStrategy). */
export function updateSubject(topic: string, view: ViewDef): string {
  return `${topic}-${UPDATE_NAMESPACE}.${view.name}`;
}

export interface AvroUpdateEncoder {
  /** The vector as a Confluent-framed Avro record; throws when a value does not fit its type. */
  update(update: FeatureUpdate): Buffer;
}

/** Compiles each view's schema; `ids` maps view name to its registered schema id. */
export function createAvroUpdateEncoder(
  views: readonly ViewDef[],
  ids: ReadonlyMap<string, number>,
  definitionsHash: string,
): AvroUpdateEncoder {
  const byView = new Map(
    views.map((view) => {
      const id = ids.get(view.name);
      if (id === undefined) throw new Error(`no schema id for view ${view.name}`);
      const type = avro.Type.forSchema(updateSchema(view), { registry: { long: preciseLong } });
      return [view.name, { type, id, names: view.features.map((f) => f.name) }] as const;
    }),
  );
  return {
    update(u) {
      const v = byView.get(u.view);
      if (!v) throw new Error(`no Avro schema for view ${u.view}`);
      const features: Record<string, unknown> = {};
      for (let i = 0; i < v.names.length; i++) features[v.names[i]!] = u.values[i] ?? null;
      const body = v.type.toBuffer({
        view: u.view,
        entity: u.entity,
        as_of: u.asOf,
        state_version: u.version,
        features,
        definitions_hash: definitionsHash,
      });
      return frameConfluent(v.id, body);
    },
  };
}

/** Registers every view's schema (idempotent: the registry answers the id it already has). */
export async function registerUpdateSchemas(
  registry: string | RegistryEndpoint,
  topic: string,
  views: readonly ViewDef[],
): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  for (const view of views)
    ids.set(
      view.name,
      await registerSchema(registry, updateSubject(topic, view), JSON.stringify(updateSchema(view))),
    );
  return ids;
}
