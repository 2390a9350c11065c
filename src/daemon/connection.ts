/**
 * How a client reaches a tunnel's database with TLS verify-full and no /etc/hosts edit: `host` is the
 * real endpoint name (libpq checks the certificate against it and pgpass matches it), `hostaddr` is
 * where the tunnel listens. No secrets here: the token is added by the token route.
 */
import { caBundleOf } from './ca-bundle.js';
import type { TunnelConfig } from './config.js';

export interface ConnectionInfo {
  tunnel: string;
  engine: 'postgres' | 'mysql';
  host: string;
  hostaddr: string;
  /** The tunnel's local port. */
  port: number;
  remotePort: number;
  user?: string;
  database?: string;
  region: string;
  sslmode: TunnelConfig['sslmode'];
  sslrootcert: string;
  /** db_user and remote_host are set, so an IAM token can be signed. */
  iam: boolean;
}

export function connectionInfo(t: TunnelConfig): ConnectionInfo {
  return {
    tunnel: t.name,
    engine: t.engine,
    host: t.remoteHost ?? '127.0.0.1',
    hostaddr: '127.0.0.1',
    port: t.localPort,
    remotePort: t.remotePort,
    ...(t.dbUser !== undefined && { user: t.dbUser }),
    ...(t.dbName !== undefined && { database: t.dbName }),
    region: t.region,
    sslmode: t.sslmode,
    sslrootcert: caBundleOf(t),
    iam: !!(t.dbUser && t.remoteHost),
  };
}
