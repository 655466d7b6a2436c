// HTTPS for the server's own port (TESSERA_SERVER_TLS_CERT_FILE / _KEY_FILE): the certificate and
// key read and checked at start, so a wrong mount stops the server with the variable's name; a
// renewed pair that checks out later goes to `renewed` (cert-reload.ts).
import { watchTlsFiles } from '../../shared/config/cert-reload.ts';
import type { Config } from '../../shared/config/index.ts';
import { pemFiles } from '../../shared/config/tls-files.ts';

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
}

/**
 * The certificate and key, or null for plain HTTP. Throws CONFIG_INVALID naming the variable.
 * `renewed` gets each renewed pair: the listening https.Server's `setSecureContext`, which serves
 * it to the connections accepted next (open ones keep theirs).
 */
export function loadServerTls(
  config: Pick<Config, 'serverTlsCertFile' | 'serverTlsKeyFile'>,
  renewed: (tls: ServerTls) => void = () => {},
): ServerTls | null {
  // Both or neither: the config schema refuses one without the other.
  if (config.serverTlsCertFile === '') return null;
  const { cert, key } = watchTlsFiles(
    'server',
    pemFiles({
      cert: ['serverTlsCertFile', config.serverTlsCertFile],
      key: ['serverTlsKeyFile', config.serverTlsKeyFile],
    }),
    (pems) => renewed({ cert: pems.cert!, key: pems.key! }),
  );
  return { cert: cert!, key: key! };
}
