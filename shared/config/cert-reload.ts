// Certificates renewed while a process runs: every TLS file set a process loaded (the server's
// HTTPS pair, the Kafka and Redis client certificates and CAs) is looked at again every few seconds
// and on SIGHUP; a change that checks out goes to the next connections, one that does not is
// refused and the files in use stay. Also the not-after time of each loaded certificate, for the
// expiry alert. Process-wide on purpose: the files and the connections they serve are the process's.
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { loadPemSet, type PemFiles, type PemSet, pemFingerprint } from './tls-files.ts';

/** What a file set is for: the label `use` of the reload counter. */
export type TlsUse = 'server' | 'kafka_client' | 'redis_client';
/** A loaded certificate's role: the label `use` of the expiry gauge. */
export type CertificateUse = 'server' | 'kafka_client' | 'kafka_ca' | 'redis_client' | 'redis_ca';

interface Watched {
  use: TlsUse;
  files: PemFiles;
  /** Where an accepted change goes (one per client built from the same files). */
  apply: ((pems: PemSet) => void)[];
  /** Digest of the bytes in use. */
  applied: string;
  /** A different digest seen at the last look: loaded if still the same at the next. */
  pending?: string;
  /** A digest refused already: not tried (nor logged, nor counted) again until it changes. */
  refused?: string;
}

const watched = new Map<string, Watched>();
/** Not-after time (Unix seconds) of each loaded certificate. */
const notAfter = new Map<CertificateUse, number>();

export interface ReloadMetrics {
  expiry: Gauge<'use'>;
  reloads: Counter<'use' | 'outcome'>;
}

/**
 * The two metrics of certificate renewal, named `<prefix>tls_…` on `registry`: every service
 * declares them alike (`prefix` e.g. `tessera_ingestor_`), spread into its metrics object.
 */
export function tlsReloadMetrics(prefix: string, registry: Registry) {
  return {
    tlsCertificateExpiry: new Gauge({
      name: `${prefix}tls_certificate_expiry_timestamp_seconds`,
      help: 'Not-after time (Unix seconds) of each certificate the process loaded, by use: server (its HTTPS certificate), kafka_client, redis_client (client certificates), kafka_ca, redis_ca (the earliest of the CA file). Updated on renewal.',
      labelNames: ['use'] as const,
      registers: [registry],
    }),
    tlsReloads: new Counter({
      name: `${prefix}tls_reloads_total`,
      help: 'Renewed TLS files by use (server, kafka_client, redis_client) and outcome: reloaded (new connections use them), refused (unusable: the files loaded before stay in use).',
      labelNames: ['use', 'outcome'] as const,
      registers: [registry],
    }),
  };
}

interface Running {
  logger: Logger;
  metrics: ReloadMetrics;
  timer?: NodeJS.Timeout;
}
let running: Running | undefined;

/**
 * Reads and checks `files` (CONFIG_INVALID naming the variables, as at start), keeps them watched,
 * and returns their PEMs. Each change that checks out later is handed to `apply`, which puts it
 * where the next connections read it. A second call for the same files (another client of the
 * same process) shares the watch: one reload, counted once, applied to both.
 */
export function watchTlsFiles(use: TlsUse, files: PemFiles, apply: (pems: PemSet) => void): PemSet {
  const loaded = loadPemSet(files);
  const id = `${use}\0${JSON.stringify(files)}`;
  const entry = watched.get(id);
  if (entry) entry.apply.push(apply);
  else watched.set(id, { use, files, apply: [apply], applied: loaded.fingerprint });
  recordExpiry(use, loaded.pems);
  return loaded.pems;
}

/** Forgets every watched file set (tests that load many in one process). */
export function forgetTlsFiles(): void {
  watched.clear();
  notAfter.clear();
}

/**
 * Starts looking at the watched files every `intervalMs` (0: never; SIGHUP only) and on SIGHUP,
 * and exports the expiry gauge and reload counter. One per process; returns the stop.
 */
export function startCertificateReload(options: {
  logger: Logger;
  intervalMs: number;
  metrics: ReloadMetrics;
}): () => void {
  if (running) throw new Error('startCertificateReload: already started in this process');
  const onHup = () => {
    options.logger.info({ signal: 'SIGHUP' }, 'reloading the TLS certificates');
    lookAgain(true);
  };
  const state: Running = { logger: options.logger, metrics: options.metrics };
  running = state;
  // Node's default for SIGHUP ends the process: with a handler, a reload instead.
  process.on('SIGHUP', onHup);
  if (options.intervalMs > 0) {
    state.timer = setInterval(() => lookAgain(false), options.intervalMs);
    state.timer.unref();
  }
  for (const [use, seconds] of notAfter) options.metrics.expiry.set({ use }, seconds);
  return () => {
    if (running !== state) return;
    if (state.timer) clearInterval(state.timer);
    process.off('SIGHUP', onHup);
    running = undefined;
  };
}

/**
 * One look at every watched file set. A change is loaded once it has stayed the same for one
 * interval, so a pair rewritten in place file by file (certificate first, key a moment later) is
 * not refused half-written; `now` (SIGHUP) loads at once, unchanged files included.
 */
function lookAgain(now: boolean): void {
  for (const entry of watched.values()) {
    let fingerprint: string;
    try {
      fingerprint = pemFingerprint(entry.files);
    } catch (error) {
      running?.logger.error({ use: entry.use, err: String(error) }, 'could not look at the TLS files');
      continue;
    }
    if (!now) {
      if (fingerprint === entry.applied || fingerprint === entry.refused) {
        entry.pending = undefined;
        continue;
      }
      if (fingerprint !== entry.pending) {
        entry.pending = fingerprint;
        continue;
      }
    }
    entry.pending = undefined;
    reload(entry, fingerprint);
  }
}

function reload(entry: Watched, fingerprint: string): void {
  const paths = Object.values(entry.files).map((f) => f.path);
  let loaded: ReturnType<typeof loadPemSet>;
  // What is refused is what this load read, not what the look before it saw: a read caught in a
  // rewrite (the same files written again) marked the good content refused, for good.
  let read = fingerprint;
  try {
    loaded = loadPemSet(entry.files, (f) => {
      read = f;
    });
    for (const apply of entry.apply) apply(loaded.pems);
  } catch (error) {
    // Counted and logged once per refused content; a later change is tried again.
    entry.refused = read;
    running?.metrics.reloads.inc({ use: entry.use, outcome: 'refused' });
    running?.logger.error(
      { use: entry.use, files: paths, err: error instanceof Error ? error.message : String(error) },
      'renewed TLS files refused: still using the certificate loaded before; fix the files (the next change is tried again, or send SIGHUP)',
    );
    return;
  }
  entry.applied = loaded.fingerprint;
  entry.refused = undefined;
  const expiries = recordExpiry(entry.use, loaded.pems);
  running?.metrics.reloads.inc({ use: entry.use, outcome: 'reloaded' });
  running?.logger.info(
    { use: entry.use, files: paths, notAfter: expiries },
    'TLS files reloaded: new connections use them',
  );
}

/** The certificates' not-after times into the gauge: the certificate presented, the CAs trusted. */
function recordExpiry(use: TlsUse, pems: PemSet): Record<string, string> {
  const out: Record<string, string> = {};
  const roles: [CertificateUse, Buffer | undefined, 'first' | 'earliest'][] =
    use === 'server'
      ? [['server', pems.cert, 'first']]
      : [
          [use, pems.cert, 'first'],
          [use === 'kafka_client' ? 'kafka_ca' : 'redis_ca', pems.ca, 'earliest'],
        ];
  for (const [role, pem, which] of roles) {
    if (!pem) continue;
    const seconds = certificateNotAfter(pem, which);
    if (seconds === undefined) continue;
    notAfter.set(role, seconds);
    running?.metrics.expiry.set({ use: role }, seconds);
    out[role] = new Date(seconds * 1000).toISOString();
  }
  return out;
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Not-after time (Unix seconds) of a PEM file's first certificate (the one a certificate file
 * presents; a chain's intermediates follow it), or of the earliest of a CA bundle's: the first CA
 * to run out is the first handshake to fail.
 */
export function certificateNotAfter(pem: Buffer, which: 'first' | 'earliest'): number | undefined {
  let times: number[];
  try {
    times = [...pem.toString('utf8').matchAll(CERTIFICATE)].map(
      (m) => Date.parse(new X509Certificate(m[0]).validTo) / 1000,
    );
  } catch {
    return undefined; // OpenSSL took the file; a block X509Certificate cannot parse has no date to show
  }
  if (times.length === 0 || times.some((t) => !Number.isFinite(t))) return undefined;
  return which === 'first' ? times[0] : Math.min(...times);
}
