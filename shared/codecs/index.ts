// Event codecs: JSON, raw Avro and Confluent-framed Avro, decoded into validated records with a
// fixed list of refusal reasons (docs/codecs.md).

export { frameConfluent, parseConfluentFrame } from './confluent-frame.ts';
export { createDecoder, type Decoder, type DecoderOptions } from './decode.ts';
export { createEncoder, type Encoder, type EncoderOptions } from './encode.ts';
export {
  directoryLookup,
  type RegistryAuth,
  type RegistryEndpoint,
  registryLookup,
  type SchemaLookup,
} from './schema-registry.ts';
export { formatTimestamp, parseTimestamp } from './timestamp.ts';
export {
  type ColumnValue,
  DECODE_FAILURES,
  type DecodeError,
  type DecodeFailure,
  type DecodeOk,
  type DecodeResult,
  type EncodableRecord,
  type KafkaMessageLike,
} from './types.ts';
