// Where the offline store lives: an S3 bucket (any S3-compatible server) or a local directory,
// behind one small interface so the flusher, point-in-time retrieval and tests do not care which.
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { TesseraError } from '../errors.ts';

export interface StoredObject {
  key: string;
  size: number;
}

export interface ObjectStore {
  /** Human-readable location, e.g. `s3://bucket/prefix` or `/data/offline`. */
  readonly location: string;
  /** Writes the whole object; a reader sees the old object or the new one, never a part. */
  put(key: string, body: Uint8Array | string, contentType?: string): Promise<void>;
  /** Throws NOT_FOUND when the object does not exist. */
  get(key: string): Promise<Uint8Array>;
  /** Every object under the prefix, sorted by key. */
  list(prefix: string): Promise<StoredObject[]>;
  delete(keys: readonly string[]): Promise<void>;
}

/** `s3://bucket[/prefix]` split: the prefix without empty segments (`a//b/` is `a/b`), or ''. */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const [bucket, ...rest] = uri.slice('s3://'.length).split('/');
  if (!bucket)
    throw new TesseraError(
      'CONFIG_INVALID',
      `offline store ${uri} names no bucket; use s3://<bucket>[/<prefix>]`,
    );
  return { bucket, prefix: rest.filter(Boolean).join('/') };
}

/**
 * Opens `s3://bucket[/prefix]` with the given S3 client options, or a local directory given as
 * `file:///abs/path` or a plain path.
 */
export function openObjectStore(uri: string, s3: S3ClientConfig): ObjectStore {
  if (uri.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Uri(uri);
    return new S3ObjectStore(new S3Client(s3), bucket, prefix);
  }
  return new LocalObjectStore(localStorePath(uri));
}

/** The directory a local store's URI names: `file:///abs/path` (its path, as given) or a plain path. */
export function localStorePath(uri: string): string {
  return uri.startsWith('file://') ? new URL(uri).pathname : uri;
}

export class S3ObjectStore implements ObjectStore {
  readonly location: string;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix = '',
  ) {
    this.location = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
  }

  private full(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async put(key: string, body: Uint8Array | string, contentType?: string): Promise<void> {
    await this.call('put', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          Body: body,
          ContentType: contentType,
        }),
      ),
    );
  }

  async get(key: string): Promise<Uint8Array> {
    const out = await this.call('get', key, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) })),
    );
    if (!out.Body) throw new TesseraError('NOT_FOUND', `${this.location}/${key} has no body`);
    return out.Body.transformToByteArray();
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let token: string | undefined;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    do {
      const page = await this.call('list', prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.full(prefix),
            ContinuationToken: token,
          }),
        ),
      );
      for (const o of page.Contents ?? [])
        if (o.Key) out.push({ key: o.Key.slice(strip), size: o.Size ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(keys: readonly string[]): Promise<void> {
    // One DeleteObject per key, a few at a time: the batch DeleteObjects call requires a checksum
    // header that several S3-compatible servers (S3Proxy among them) refuse as NotImplemented.
    for (let i = 0; i < keys.length; i += 16)
      await Promise.all(
        keys
          .slice(i, i + 16)
          .map((key) =>
            this.call('delete', key, () =>
              this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) })),
            ),
          ),
      );
  }

  /**
   * Maps SDK failures to typed errors: a missing key is NOT_FOUND, and so is a missing bucket when
   * listing (a typo in the store's URI: bad input, it was "check the S3 endpoint"); anything else
   * is retriable. A missing bucket on get or put stays retriable: the flusher reads a NOT_FOUND
   * state as "no state yet", and a stack may create its bucket after the services start.
   */
  private async call<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === 'NoSuchKey' || name === 'NotFound')
        throw new TesseraError('NOT_FOUND', `${this.location}/${key} does not exist`, { cause: error });
      if (name === 'NoSuchBucket' && op === 'list')
        throw new TesseraError(
          'NOT_FOUND',
          `the S3 bucket ${this.bucket} of the offline store ${this.location} does not exist; check the store's URI (--store, TESSERA_OFFLINE_STORE or TESSERA_S3_BUCKET) and the S3 endpoint (TESSERA_S3_ENDPOINT)`,
          { cause: error, context: { op, key, bucket: this.bucket } },
        );
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `S3 ${op} of ${this.location}/${key} failed: ${String(error)}; check the S3 endpoint and credentials (TESSERA_S3_*)`,
        { retriable: true, cause: error, context: { op, key } },
      );
    }
  }
}

export class LocalObjectStore implements ObjectStore {
  readonly location: string;

  constructor(private readonly root: string) {
    this.location = root;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const path = join(this.root, key);
    await mkdir(dirname(path), { recursive: true });
    // Write aside, then rename: a reader never sees half a file. Synced before the rename, and the
    // directory after it, so that an object the flusher then records as written (state.json, the
    // Kafka commit) is on disk too: after a power loss, a renamed but unsynced file can be empty.
    const temp = `${path}.tmp-${process.pid}-${Date.now()}`;
    const file = await open(temp, 'w');
    try {
      await file.writeFile(body);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(join(this.root, key)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new TesseraError('NOT_FOUND', `${join(this.root, key)} does not exist`, { cause: error });
      throw error;
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const e of entries) {
        const path = join(dir, e.name);
        if (e.isDirectory()) await walk(path);
        else if (e.isFile() && !e.name.includes('.tmp-')) {
          const key = relative(this.root, path).split(sep).join('/');
          if (key.startsWith(prefix)) out.push({ key, size: (await stat(path)).size });
        }
      }
    };
    // Start at the deepest directory the prefix names, not the whole tree.
    const slash = prefix.lastIndexOf('/');
    await walk(join(this.root, slash >= 0 ? prefix.slice(0, slash) : ''));
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) await rm(join(this.root, key), { force: true });
  }
}
