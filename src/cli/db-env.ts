/**
 * What database clients are given, built from the daemon's token answer: libpq environment variables,
 * a libpq URI, and the mysql client's flags. Pure functions, so the exact strings are unit-tested.
 */

export interface TokenAnswer {
  tunnel: string;
  engine: 'postgres' | 'mysql';
  token: string;
  expiresAt: string;
  host: string;
  hostaddr: string;
  port: number;
  remotePort: number;
  user: string;
  database?: string;
  region: string;
  sslmode: string;
  sslrootcert: string;
}

/** libpq reads these; `host` + `hostaddr` is what makes verify-full work without /etc/hosts. */
export function libpqEnv(t: TokenAnswer): Record<string, string> {
  return {
    PGHOST: t.host,
    PGHOSTADDR: t.hostaddr,
    PGPORT: String(t.port),
    PGUSER: t.user,
    ...(t.database !== undefined && { PGDATABASE: t.database }),
    PGPASSWORD: t.token,
    PGSSLMODE: t.sslmode,
    PGSSLROOTCERT: t.sslrootcert,
  };
}

/**
 * The mysql client has no separate "name to verify" option, so TLS can verify the CA chain (VERIFY_CA)
 * but not the host name through 127.0.0.1; the token itself is bound to the real host name.
 */
export function mysqlEnv(t: TokenAnswer): Record<string, string> {
  return {
    MYSQL_HOST: t.hostaddr,
    MYSQL_TCP_PORT: String(t.port),
    MYSQL_PWD: t.token,
    // MySQL 8 clients only send a cleartext password (the token) when told to.
    LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN: '1',
  };
}

export function mysqlArgs(t: TokenAnswer, flavour: 'mysql' | 'mariadb'): string[] {
  const tls =
    flavour === 'mariadb'
      ? ['--ssl', `--ssl-ca=${t.sslrootcert}`]
      : ['--ssl-mode=VERIFY_CA', `--ssl-ca=${t.sslrootcert}`];
  return [
    `--host=${t.hostaddr}`,
    `--port=${t.port}`,
    `--user=${t.user}`,
    // MariaDB's client sends a cleartext password whenever the server asks for it, and warns (on
    // stdout, into scripts' output) that the option is obsolete; MySQL's client needs it.
    ...(flavour === 'mysql' ? ['--enable-cleartext-plugin'] : []),
    ...tls,
    ...(t.database ? [`--database=${t.database}`] : []),
  ];
}

export function envFor(t: TokenAnswer): Record<string, string> {
  return t.engine === 'mysql' ? mysqlEnv(t) : libpqEnv(t);
}

function shQuote(v: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

function fishQuote(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function renderEnv(vars: Record<string, string>, shell: 'sh' | 'fish'): string {
  return Object.entries(vars)
    .map(([k, v]) => (shell === 'fish' ? `set -gx ${k} ${fishQuote(v)};` : `export ${k}=${shQuote(v)}`))
    .join('\n');
}

/** A libpq URI (`psql "$(ssmtun url orders)"`); the token is percent-encoded as the password. */
export function libpqUrl(t: TokenAnswer, withPassword = true): string {
  const auth = `${encodeURIComponent(t.user)}${withPassword ? `:${encodeURIComponent(t.token)}` : ''}@`;
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  const db = t.database ? `/${encodeURIComponent(t.database)}` : '/';
  // Not URLSearchParams: libpq does not read '+' as a space.
  const q = Object.entries({ hostaddr: t.hostaddr, sslmode: t.sslmode, sslrootcert: t.sslrootcert })
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
  return `postgresql://${auth}${host}:${t.port}${db}?${q}`;
}
