// The offline store named by the configuration (TESSERA_OFFLINE_STORE; else the bucket
// TESSERA_S3_BUCKET when an S3 endpoint is configured; else loadConfig has set the embedded local
// directory): what the flusher writes and readers open.
import { s3Options } from '../config/clients.ts';
import type { Config } from '../config/index.ts';
import { type ObjectStore, openObjectStore } from './object-store.ts';

export function offlineStoreUri(config: Config): string {
  return config.offlineStore === '' ? `s3://${config.s3Bucket}` : config.offlineStore;
}

export function openConfiguredStore(config: Config): ObjectStore {
  return openObjectStore(offlineStoreUri(config), s3Options(config));
}
