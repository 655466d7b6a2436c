// HTTPS for the server's own port (TESSERA_SERVER_TLS_CERT_FILE / _KEY_FILE): the certificate and
// key read and checked at start, so a wrong mount stops the server with the variable's name.
import type { Config } from '../../shared/config/index.ts';
import { checkedTlsOptions, readPemFile } from '../../shared/config/tls-files.ts';

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
}

/** The certificate and key, or null for plain HTTP. Throws CONFIG_INVALID naming the variable. */
export function loadServerTls(
  config: Pick<Config, 'serverTlsCertFile' | 'serverTlsKeyFile'>,
): ServerTls | null {
  // Both or neither: the config schema refuses one without the other.
  if (config.serverTlsCertFile === '') return null;
  return checkedTlsOptions(
    {
      cert: readPemFile('serverTlsCertFile', config.serverTlsCertFile),
      key: readPemFile('serverTlsKeyFile', config.serverTlsKeyFile),
    },
    ['serverTlsCertFile', 'serverTlsKeyFile'],
  );
}
