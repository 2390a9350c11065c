/**
 * `ssmtun pgpass` and `ssmtun pgservice`: write the tunnels' entries into the marked ssmtun block of the
 * pgpass / pg_service.conf file, for tools that read those files (psql "service=orders", DBeaver,
 * DataGrip, pgAdmin). Tokens expire after 15 minutes: `[daemon] pgpass = true` keeps the block fresh.
 */

import { defaultPgpassPath, defaultPgServicePath } from '../../daemon/config/database.js';
import type { ConnectionInfo } from '../../daemon/connection.js';
import { pgpassEntriesFor, serviceEntryFor, writePgpass, writePgService } from '../../daemon/pgpass.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, parseCommand, UsageError } from '../args.js';
import { CliError, DaemonClient } from '../client.js';
import { usage } from './token.js';

async function connections(client: DaemonClient): Promise<ConnectionInfo[]> {
  const { tunnels } = await client.request<{ tunnels: Array<{ name: string }> }>('GET', '/tunnels');
  return Promise.all(
    tunnels.map((t) =>
      client.request<ConnectionInfo>('GET', `/tunnels/${encodeURIComponent(t.name)}/connection`),
    ),
  );
}

const PGPASS_USAGE = `usage: ssmtun pgpass [--file FILE] [--remove]

Writes one line per PostgreSQL tunnel with db_user and remote_host (for the real endpoint name,
127.0.0.1 and localhost, each on the local port) with a fresh IAM token into the ssmtun block of
the pgpass file (default $PGPASSFILE or ~/.pgpass), mode 0600; other lines are left as they are.
Tokens last 15 minutes: set [daemon] pgpass = true to have the daemon keep the block fresh.
  --file FILE         another pgpass file
  --remove            remove the ssmtun block
${CLIENT_OPTIONS_HELP}
`;

export async function pgpassCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, file: { type: 'string' }, remove: { type: 'boolean' } },
    PGPASS_USAGE,
  );
  if (help) return usage(PGPASS_USAGE);
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}`, PGPASS_USAGE);
  const file = values.file ?? defaultPgpassPath();
  if (values.remove) {
    writePgpass(file, []);
    process.stdout.write(`removed the ssmtun block from ${file}\n`);
    return 0;
  }
  const client = await DaemonClient.connect({ config: values.config, apiPort: values['api-port'] });
  const eligible = (await connections(client)).filter((c) => c.engine === 'postgres' && c.iam);
  if (eligible.length === 0) {
    throw new CliError(
      'NO_IAM_TUNNELS',
      'no PostgreSQL tunnel has both db_user and remote_host, so there is nothing to write',
      'add db_user = "..." to the tunnels you log in to with IAM',
    );
  }
  const entries = [];
  let earliest = '';
  for (const c of eligible) {
    const t = await client.request<{ token: string; expiresAt: string }>(
      'GET',
      `/tunnels/${encodeURIComponent(c.tunnel)}/token`,
    );
    entries.push(...pgpassEntriesFor(c, t.token));
    if (!earliest || t.expiresAt < earliest) earliest = t.expiresAt;
  }
  writePgpass(file, entries);
  process.stdout.write(
    `wrote ${entries.length} entries for ${eligible.map((c) => c.tunnel).join(', ')} to ${file} (tokens valid until ${earliest})\n`,
  );
  return 0;
}

const PGSERVICE_USAGE = `usage: ssmtun pgservice [--file FILE] [--remove]

Writes a [NAME] section per PostgreSQL tunnel (host = the real endpoint name, hostaddr=127.0.0.1,
port, dbname, user, sslmode, sslrootcert) into the ssmtun block of the service file (default
$PGSERVICEFILE or ~/.pg_service.conf). Then: psql "service=NAME" (the password comes from pgpass).
  --file FILE         another service file
  --remove            remove the ssmtun block
${CLIENT_OPTIONS_HELP}
`;

export async function pgserviceCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, file: { type: 'string' }, remove: { type: 'boolean' } },
    PGSERVICE_USAGE,
  );
  if (help) return usage(PGSERVICE_USAGE);
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}`, PGSERVICE_USAGE);
  const file = values.file ?? defaultPgServicePath();
  if (values.remove) {
    writePgService(file, []);
    process.stdout.write(`removed the ssmtun block from ${file}\n`);
    return 0;
  }
  const client = await DaemonClient.connect({ config: values.config, apiPort: values['api-port'] });
  const services = (await connections(client)).filter((c) => c.engine === 'postgres').map(serviceEntryFor);
  writePgService(file, services);
  process.stdout.write(`wrote ${services.map((s) => `[${s.name}]`).join(' ')} to ${file}\n`);
  return 0;
}
