/**
 * `ssmtun psql NAME [-- args]`, `ssmtun exec NAME -- cmd args`, `ssmtun mysql NAME [-- args]`: run a
 * database tool with a fresh token and TLS settings in its environment. The tool gets the terminal
 * (stdio inherited); Ctrl-C reaches it directly and we only pass its exit status on.
 */
import { execFileSync, spawn } from 'node:child_process';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, parseCommand, tunnelName, UsageError } from '../args.js';
import { CliError } from '../client.js';
import { libpqEnv, mysqlArgs, mysqlEnv, type TokenAnswer } from '../db-env.js';
import { fetchToken, usage } from './token.js';

function run(cmd: string, args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    // The terminal sends SIGINT to the whole foreground group: psql handles it (cancel), we must not die.
    const ignore = () => {};
    for (const s of ['SIGINT', 'SIGQUIT'] as const) process.on(s, ignore);
    const forward = () => child.kill('SIGTERM');
    process.on('SIGTERM', forward);
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(
        e.code === 'ENOENT'
          ? new CliError(
              'TOOL_NOT_FOUND',
              `${cmd} is not installed or not on PATH`,
              `install it, or put its directory on PATH`,
            )
          : e,
      );
    });
    child.once('exit', (code, signal) => {
      for (const s of ['SIGINT', 'SIGQUIT'] as const) process.off(s, ignore);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : 1));
    });
  });
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[sig];
}

function requireEngine(t: TokenAnswer, engine: 'postgres' | 'mysql'): void {
  if (t.engine !== engine) {
    throw new CliError(
      'WRONG_ENGINE',
      `tunnel ${t.tunnel} is a ${t.engine} tunnel, not ${engine}`,
      t.engine === 'mysql' ? `use: ssmtun mysql ${t.tunnel}` : `use: ssmtun psql ${t.tunnel}`,
    );
  }
}

const PSQL_USAGE = `usage: ssmtun psql NAME [-- psql arguments]

Runs psql through the tunnel with a fresh IAM token and TLS verify-full against the real endpoint name
(host=<endpoint> hostaddr=127.0.0.1), e.g. ssmtun psql orders -- -c 'select 1'.
psql is taken from PATH (or $SSMTUN_PSQL).
${CLIENT_OPTIONS_HELP}
`;

export async function psqlCommand(argv: string[]): Promise<number> {
  const { values, positionals, rest, help } = parseCommand(argv, CLIENT_OPTIONS, PSQL_USAGE);
  if (help) return usage(PSQL_USAGE);
  const t = await fetchToken(tunnelName(positionals, PSQL_USAGE), values);
  requireEngine(t, 'postgres');
  return run(process.env.SSMTUN_PSQL || 'psql', rest, libpqEnv(t));
}

const EXEC_USAGE = `usage: ssmtun exec NAME -- COMMAND [arguments]

Runs any libpq tool (pg_dump, pgbench, pg_restore, a script) with PGHOST, PGHOSTADDR, PGPORT, PGUSER,
PGDATABASE, PGPASSWORD (a fresh token), PGSSLMODE and PGSSLROOTCERT set for the tunnel; for MySQL
tunnels MYSQL_HOST, MYSQL_TCP_PORT and MYSQL_PWD. E.g. ssmtun exec orders -- pg_dump -Fc -f orders.dump
${CLIENT_OPTIONS_HELP}
`;

export async function execCommand(argv: string[]): Promise<number> {
  const { values, positionals, rest, help } = parseCommand(argv, CLIENT_OPTIONS, EXEC_USAGE);
  if (help) return usage(EXEC_USAGE);
  if (rest.length === 0) throw new UsageError('no command given after --', EXEC_USAGE);
  const t = await fetchToken(tunnelName(positionals, EXEC_USAGE), values);
  return run(rest[0], rest.slice(1), t.engine === 'mysql' ? mysqlEnv(t) : libpqEnv(t));
}

const MYSQL_USAGE = `usage: ssmtun mysql NAME [-- mysql arguments]

Runs the mysql (or MariaDB) client through the tunnel with a fresh IAM token, the cleartext plugin the
token needs, and TLS against the CA bundle (--ssl-mode=VERIFY_CA: the client can only verify the host
name it connects to, 127.0.0.1, so identity is checked by the token, which is bound to the real name).
The client is taken from PATH (or $SSMTUN_MYSQL).
${CLIENT_OPTIONS_HELP}
`;

/** MariaDB's client spells the TLS options differently and has no --ssl-mode. */
export function mysqlFlavour(cmd: string): 'mysql' | 'mariadb' {
  try {
    const v = execFileSync(cmd, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /mariadb/i.test(v) ? 'mariadb' : 'mysql';
  } catch {
    return 'mysql';
  }
}

export async function mysqlCommand(argv: string[]): Promise<number> {
  const { values, positionals, rest, help } = parseCommand(argv, CLIENT_OPTIONS, MYSQL_USAGE);
  if (help) return usage(MYSQL_USAGE);
  const t = await fetchToken(tunnelName(positionals, MYSQL_USAGE), values);
  requireEngine(t, 'mysql');
  const cmd = process.env.SSMTUN_MYSQL || 'mysql';
  const { MYSQL_PWD, LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN } = mysqlEnv(t);
  return run(cmd, [...mysqlArgs(t, mysqlFlavour(cmd)), ...rest], {
    MYSQL_PWD,
    LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN,
  });
}
