// Encoders for producers and tests: the exact inverse of the decoders, so a record decodes back
// to itself. Records use the decoded shape (timestamps as epoch milliseconds).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceDef } from '../definitions/schema.ts';
import { TesseraError } from '../errors.ts';
import { assertCoversSource, loadAvroSchemaFile } from './avro-codec.ts';
import { frameConfluent } from './confluent-frame.ts';
import { avroSchemaPath, type DecoderOptions } from './decode.ts';
import { encodeJson } from './json-codec.ts';
import type { EncodableRecord } from './types.ts';

export interface EncoderOptions extends Pick<DecoderOptions, 'definitionsDir' | 'schemaDir'> {
  /** avro-confluent: the schema id written in each frame (must name the same schema at the reader). */
  schemaId?: number;
}

export interface Encoder {
  readonly source: SourceDef;
  /** Throws EVENT_INVALID when the record does not fit the source (a programming error). */
  encode(record: EncodableRecord): Buffer;
}

export function createEncoder(source: SourceDef, options: EncoderOptions): Encoder {
  if (source.format === 'json') return { source, encode: (record) => encodeJson(source, record) };

  if (source.format === 'avro') {
    const codec = loadAvroSchemaFile(avroSchemaPath(source, options.definitionsDir), source);
    assertCoversSource(codec, source);
    return { source, encode: (record) => codec.write(record) };
  }

  const id = options.schemaId;
  if (id === undefined || !Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw new TesseraError(
      'CONFIG_INVALID',
      `avro-confluent encoder needs schemaId, an integer 0..2^32-1; got ${id}`,
      {
        context: { source: source.name, schemaId: id },
      },
    );
  }
  // The id's own file when a schema directory has it, else the source's avro_schema.
  const fromDir = options.schemaDir === undefined ? undefined : join(options.schemaDir, `${id}.avsc`);
  const file =
    fromDir !== undefined && existsSync(fromDir) ? fromDir : avroSchemaPath(source, options.definitionsDir);
  const codec = loadAvroSchemaFile(file, source);
  assertCoversSource(codec, source);
  return { source, encode: (record) => frameConfluent(id, codec.write(record)) };
}
