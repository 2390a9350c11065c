/** `ssmtun token | env | url NAME`: the daemon's fresh IAM token, as itself, as env vars or as a URI. */
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, parseCommand, tunnelName, UsageError } from '../args.js';
import { DaemonClient } from '../client.js';
import { envFor, libpqUrl, renderEnv, type TokenAnswer } from '../db-env.js';

export async function fetchToken(
  name: string,
  values: { config?: string; 'api-port'?: string },
): Promise<TokenAnswer> {
  const client = await DaemonClient.connect({ config: values.config, apiPort: values['api-port'] });
  return client.request<TokenAnswer>('GET', `/tunnels/${encodeURIComponent(name)}/token`);
}

const TOKEN_USAGE = `usage: ssmtun token NAME [--json]

Prints a fresh RDS IAM auth token for the tunnel's db_user, signed for its real remote_host:remote_port
(valid 15 minutes; the daemon reuses it until 5 minutes before expiry).
  --json              {token, expiresAt, host, hostaddr, port, user, database, sslmode, sslrootcert}
${CLIENT_OPTIONS_HELP}
`;

export async function tokenCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, json: { type: 'boolean' } },
    TOKEN_USAGE,
  );
  if (help) return usage(TOKEN_USAGE);
  const t = await fetchToken(tunnelName(positionals, TOKEN_USAGE), values);
  process.stdout.write(values.json ? `${JSON.stringify(t, null, 2)}\n` : `${t.token}\n`);
  return 0;
}

const ENV_USAGE = `usage: ssmtun env NAME [--shell sh|fish] [--json]

Prints the settings a client needs, with a fresh token: for PostgreSQL PGHOST (the real endpoint name,
so sslmode=verify-full works), PGHOSTADDR=127.0.0.1, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE,
PGSSLROOTCERT; for MySQL MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_PWD, LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN.
  eval "$(ssmtun env orders)"          sh, bash, zsh
  ssmtun env orders --shell fish | source
  --json              the variables as a JSON object
${CLIENT_OPTIONS_HELP}
`;

export async function envCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, shell: { type: 'string' }, json: { type: 'boolean' } },
    ENV_USAGE,
  );
  if (help) return usage(ENV_USAGE);
  const shell = values.shell ?? 'sh';
  if (shell !== 'sh' && shell !== 'fish' && shell !== 'bash' && shell !== 'zsh') {
    throw new UsageError(`--shell must be sh or fish, not ${JSON.stringify(shell)}`, ENV_USAGE);
  }
  const vars = envFor(await fetchToken(tunnelName(positionals, ENV_USAGE), values));
  process.stdout.write(
    values.json
      ? `${JSON.stringify(vars, null, 2)}\n`
      : `${renderEnv(vars, shell === 'fish' ? 'fish' : 'sh')}\n`,
  );
  return 0;
}

const URL_USAGE = `usage: ssmtun url NAME [--no-password]

Prints a libpq connection URI with a fresh token:
  postgresql://USER:TOKEN@<endpoint>:<local port>/DB?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert=...
  psql "$(ssmtun url orders)"
  --no-password       leave the token out (for clients that read it from pgpass)
${CLIENT_OPTIONS_HELP}
`;

export async function urlCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, 'no-password': { type: 'boolean' } },
    URL_USAGE,
  );
  if (help) return usage(URL_USAGE);
  const t = await fetchToken(tunnelName(positionals, URL_USAGE), values);
  if (t.engine !== 'postgres') {
    throw new UsageError(`tunnel ${t.tunnel} is a ${t.engine} tunnel; url is for PostgreSQL`, URL_USAGE);
  }
  process.stdout.write(`${libpqUrl(t, !values['no-password'])}\n`);
  return 0;
}

export function usage(text: string): number {
  process.stdout.write(text);
  return 0;
}
