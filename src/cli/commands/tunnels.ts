/**
 * `ssmtun open|close|add|rm NAME` and `ssmtun reload`: change the running daemon's tunnels. `add`
 * takes the config file's keys as flags (or a JSON object) and gets the config file's messages back.
 */
import { readFileSync } from 'node:fs';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, parseCommand, tunnelName, UsageError } from '../args.js';
import { CliError, DaemonClient } from '../client.js';
import { formatStatus, type StatusRow, useColour } from '../status-format.js';
import { usage } from './token.js';

function connect(values: { config?: string; 'api-port'?: string }) {
  return DaemonClient.connect({ config: values.config, apiPort: values['api-port'] });
}

/** Step lines while a session opens (the daemon does the work; we show what it reports). */
async function withProgress<T>(label: string, work: Promise<T>): Promise<T> {
  const tty = process.stderr.isTTY;
  const started = Date.now();
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  const timer = setInterval(() => {
    if (Date.now() - started < 300) return;
    if (tty) process.stderr.write(`\r${frames[i++ % frames.length]} ${label}`);
  }, 80);
  if (!tty) process.stderr.write(`${label}\n`);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    if (tty) process.stderr.write('\r\x1b[K');
  }
}

const OPEN_USAGE = `usage: ssmtun open NAME

Opens the tunnel's SSM session now (StartSession, WebSocket, handshake) instead of on the first
connection, and prints its status.
${CLIENT_OPTIONS_HELP}
`;

export async function openCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(argv, CLIENT_OPTIONS, OPEN_USAGE);
  if (help) return usage(OPEN_USAGE);
  const name = tunnelName(positionals, OPEN_USAGE);
  const client = await connect(values);
  const s = await withProgress(
    `opening ${name}: StartSession → WebSocket → handshake`,
    client.request<StatusRow>('POST', `/tunnels/${encodeURIComponent(name)}/open`),
  );
  process.stdout.write(formatStatus([s], useColour(process.stdout)));
  return 0;
}

const CLOSE_USAGE = `usage: ssmtun close NAME

Terminates the tunnel's SSM session (its connections end); the tunnel keeps listening and the next
connection opens a new session.
${CLIENT_OPTIONS_HELP}
`;

export async function closeCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(argv, CLIENT_OPTIONS, CLOSE_USAGE);
  if (help) return usage(CLOSE_USAGE);
  const name = tunnelName(positionals, CLOSE_USAGE);
  const s = await (await connect(values)).request<StatusRow>(
    'POST',
    `/tunnels/${encodeURIComponent(name)}/close`,
  );
  process.stdout.write(formatStatus([s], useColour(process.stdout)));
  return 0;
}

/** Flags of `add`: the config keys with dashes (`--remote-host`), each as in the config file. */
const ADD_FLAGS = {
  region: 'string',
  target: 'string',
  'target-tag': 'string',
  'remote-host': 'string',
  'remote-port': 'integer',
  'local-port': 'integer',
  profile: 'string',
  engine: 'string',
  'db-user': 'string',
  'db-name': 'string',
  'ca-bundle': 'string',
  sslmode: 'string',
  'idle-timeout': 'string',
  endpoint: 'string',
  bind: 'list',
  lazy: 'boolean',
  sessions: 'integer',
  auth: 'string',
  'db-users': 'list',
  'allow-other-users': 'boolean',
} as const;

const ADD_USAGE = `usage: ssmtun add NAME --region R (--target i-… | --target-tag K=V) --remote-port N --local-port N [...]
       ssmtun add NAME --from-json FILE|-

Adds a tunnel to the running daemon without editing the config file; it is kept in the daemon's state
file, so it survives restarts. Remove it with ssmtun rm NAME. Every config key works as a flag:
  --remote-host H --profile P --engine postgres|mysql --db-user U --db-name D --ca-bundle F
  --sslmode M --idle-timeout 10m --endpoint URL --bind 127.0.0.1,::1 --lazy true|false
  --auth iam --db-users a,b --allow-other-users true|false
Mistakes get the config file's messages, e.g. a misspelt region or a busy local port.
${CLIENT_OPTIONS_HELP}
`;

export async function addCommand(argv: string[]): Promise<number> {
  const options = Object.fromEntries(Object.keys(ADD_FLAGS).map((k) => [k, { type: 'string' as const }]));
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, ...options, 'from-json': { type: 'string' } },
    ADD_USAGE,
  );
  if (help) return usage(ADD_USAGE);
  const name = tunnelName(positionals, ADD_USAGE);
  const v = values as Record<string, string | undefined>;
  let body: Record<string, unknown> = {};
  if (v['from-json'] !== undefined) {
    const text = readFileSync(v['from-json'] === '-' ? 0 : v['from-json'], 'utf8');
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--from-json: not JSON: ${(e as Error).message}`, ADD_USAGE);
    }
  }
  for (const [flag, kind] of Object.entries(ADD_FLAGS)) {
    const raw = v[flag];
    if (raw === undefined) continue;
    const key = flag.replace(/-/g, '_');
    // Numbers and booleans are sent as such only when they look like it; otherwise the daemon's
    // validator explains what it expected, exactly as for the config file.
    if (kind === 'integer') body[key] = /^\d+$/.test(raw) ? Number(raw) : raw;
    else if (kind === 'boolean') body[key] = raw === 'true' ? true : raw === 'false' ? false : raw;
    else if (kind === 'list') body[key] = raw.split(',').map((s) => s.trim());
    else body[key] = raw;
  }
  const client = await connect(values);
  const s = await client.requestJson<StatusRow>('POST', '/tunnels', { name, ...body });
  process.stdout.write(formatStatus([s], useColour(process.stdout)));
  return 0;
}

const RM_USAGE = `usage: ssmtun rm NAME

Removes a tunnel that was added with ssmtun add (its session is terminated). Tunnels from the config
file are removed by editing the file and running ssmtun reload.
${CLIENT_OPTIONS_HELP}
`;

export async function rmCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(argv, CLIENT_OPTIONS, RM_USAGE);
  if (help) return usage(RM_USAGE);
  const name = tunnelName(positionals, RM_USAGE);
  await (await connect(values)).request('DELETE', `/tunnels/${encodeURIComponent(name)}`);
  process.stdout.write(`removed ${name}\n`);
  return 0;
}

const RELOAD_USAGE = `usage: ssmtun reload [--json]

Makes the daemon re-read its config file and apply only the difference: new tunnels start, removed
ones stop, changed ones restart, the others keep their sessions and connections. A file with errors
is refused as a whole (the running tunnels stay) and the errors are printed.
  --json              {added, removed, changed, unchanged}
${CLIENT_OPTIONS_HELP}
`;

export async function reloadCommand(argv: string[]): Promise<number> {
  const { values, help } = parseCommand(argv, { ...CLIENT_OPTIONS, json: { type: 'boolean' } }, RELOAD_USAGE);
  if (help) return usage(RELOAD_USAGE);
  let r: { added: string[]; removed: string[]; changed: string[]; unchanged: string[] };
  try {
    r = await (await connect(values)).request('POST', '/reload');
  } catch (e) {
    if (e instanceof CliError && e.code === 'CONFIG_INVALID') {
      throw new CliError(e.code, `the config file has errors; nothing was changed\n${e.message}`, e.fix);
    }
    throw e;
  }
  if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else {
    const part = (label: string, names: string[]) => (names.length ? `${label} ${names.join(', ')}` : '');
    const text = [
      part('added', r.added),
      part('removed', r.removed),
      part('changed', r.changed),
      part('unchanged', r.unchanged),
    ]
      .filter(Boolean)
      .join('; ');
    process.stdout.write(`reloaded: ${text || 'no tunnels'}\n`);
  }
  return 0;
}
