/** Validation of the parsed document: the top level, [daemon], the [tunnels.NAME] tables and the ports they share. */

import {
  checkAuth,
  checkCaBundle,
  checkDbUsers,
  checkManagedFile,
  checkSslmode,
  defaultPgpassPath,
  defaultPgServicePath,
} from './database.js';
import {
  checkBind,
  checkEndpoint,
  checkEngine,
  checkIdleTimeout,
  checkRegion,
  checkRemoteHost,
  checkTarget,
} from './fields.js';
import { checkLimits, checkStringValues, normalizeHost } from './hardening.js';
import { checkSessions } from './pool.js';
import { describe, tomlPath } from './render.js';
import {
  DAEMON_ALIASES,
  DAEMON_KEYS,
  isTable,
  isTunnelKey,
  TOP_KEYS,
  TUNNEL_ALIASES,
  TUNNEL_KEYS,
  TUNNEL_NAME_RE,
} from './schema.js';
import { type Ctx, Section } from './section.js';
import { suggest } from './suggest.js';
import {
  ConfigError,
  DEFAULT_API_PORT,
  DEFAULT_LOG_LEVEL,
  DOCUMENT_LOCAL,
  DOCUMENT_REMOTE_HOST,
  LOG_LEVELS,
  type TunnelConfig,
} from './types.js';

/** Validates one tunnel definition given as plain JSON (used by the HTTP API to add tunnels at run time); issues carry file '<api>' and line 0. */
export function validateTunnel(name: string, raw: unknown, file = '<api>', line = 0): TunnelConfig {
  const ctx: Ctx = { file, json: true, issues: [], lineOf: () => line };
  checkStringValues((i) => ctx.issues.push({ file, ...i }), ctx.lineOf, raw, ['tunnels', name]);
  const { config } = checkTunnel(ctx, name, raw);
  if (!config || ctx.issues.length > 0) throw new ConfigError(ctx.issues);
  return config;
}

export function unknownTopLevel(ctx: Ctx, key: string, value: unknown): void {
  const at = (message: string, fix: string) =>
    ctx.issues.push({ file: ctx.file, line: ctx.lineOf([key]), key: tomlPath([key]), message, fix });
  if (isTunnelKey(key)) {
    at(
      `${key} is a tunnel setting but is not inside a [tunnels.NAME] table`,
      'Move it below a [tunnels.NAME] header; keys belong to the nearest [header] above them.',
    );
    return;
  }
  if ((DAEMON_KEYS as readonly string[]).includes(key)) {
    at(
      `${key} is a daemon setting but is not inside the [daemon] table`,
      'Move it below the [daemon] header.',
    );
    return;
  }
  const table = isTable(value);
  const what = table ? `unknown table [${tomlPath([key])}]` : `unknown key ${key}`;
  const guess = suggest(key, TOP_KEYS, { tunnel: 'tunnels', daemons: 'daemon' });
  if (guess) {
    at(
      what,
      `Did you mean [${guess}]?${guess === 'tunnels' ? ' Tunnels are declared as [tunnels.NAME].' : ''}`,
    );
  } else if (table && Object.keys(value).some((k) => isTunnelKey(k))) {
    at(what, `Tunnels are declared under "tunnels": rename the header to [${tomlPath(['tunnels', key])}].`);
  } else {
    at(what, 'Remove it; the config only has a [daemon] table and [tunnels.NAME] tables.');
  }
}

export function checkDaemon(
  ctx: Ctx,
  raw: unknown,
): { apiPort: number; logLevel: string; pgpass?: string; pgservice?: string } {
  const defaults = { apiPort: DEFAULT_API_PORT, logLevel: DEFAULT_LOG_LEVEL };
  if (raw === undefined) return defaults;
  if (!isTable(raw)) {
    ctx.issues.push({
      file: ctx.file,
      line: ctx.lineOf(['daemon']),
      key: 'daemon',
      message: `daemon must be a table, not ${describe(raw)}`,
      fix: 'Write a [daemon] header followed by api_port = ... and log_level = ... lines.',
    });
    return defaults;
  }
  const s = new Section(ctx, ['daemon'], raw, '[daemon]');
  s.unknownKeys(DAEMON_KEYS, DAEMON_ALIASES, (key) =>
    isTunnelKey(key) ? 'It is a tunnel setting: move it below a [tunnels.NAME] header.' : undefined,
  );
  const apiPort = s.port('api_port', DEFAULT_API_PORT) ?? DEFAULT_API_PORT;
  let logLevel = DEFAULT_LOG_LEVEL;
  const level = s.string('log_level', DEFAULT_LOG_LEVEL, true);
  if (level !== undefined) {
    if ((LOG_LEVELS as readonly string[]).includes(level)) {
      logLevel = level;
    } else {
      const guess = suggest(level, LOG_LEVELS, { warning: 'warn', err: 'error', verbose: 'debug' });
      s.report(
        'log_level',
        `log_level ${JSON.stringify(level)} in [daemon] is not a log level`,
        `${guess ? `Did you mean ${s.ex('log_level', guess)}? ` : ''}Use one of ${LOG_LEVELS.join(', ')}.`,
      );
    }
  }
  const pgpass = checkManagedFile(s, 'pgpass', defaultPgpassPath());
  const pgservice = checkManagedFile(s, 'pgservice', defaultPgServicePath());
  return {
    apiPort,
    logLevel,
    ...(pgpass !== undefined && { pgpass }),
    ...(pgservice !== undefined && { pgservice }),
  };
}

export function checkTunnels(ctx: Ctx, raw: unknown, apiPort: number): TunnelConfig[] {
  if (raw === undefined) return [];
  if (!isTable(raw)) {
    const arrayOfTables = Array.isArray(raw) && raw.some(isTable);
    ctx.issues.push({
      file: ctx.file,
      line: ctx.lineOf(['tunnels']),
      key: 'tunnels',
      message: arrayOfTables
        ? 'tunnels must be named tables, not an array of tables ([[tunnels]])'
        : `tunnels must be a table of named tunnels, not ${describe(raw)}`,
      fix: 'Give each tunnel its own named table, e.g. [tunnels.orders-db] followed by its keys; the name is how the CLI refers to it.',
    });
    return [];
  }

  // Keys written straight under [tunnels] (no tunnel name) would otherwise produce one issue each.
  const stray = Object.keys(raw).filter((k) => isTunnelKey(k) && !isTable(raw[k]));
  if (stray.length > 0) {
    ctx.issues.push({
      file: ctx.file,
      line: ctx.lineOf(['tunnels']),
      key: tomlPath(['tunnels', stray[0]]),
      message: `${stray.join(', ')} ${stray.length === 1 ? 'is' : 'are'} directly under [tunnels], but each tunnel needs a name`,
      fix: 'Name the tunnel in the header, e.g. [tunnels.orders-db] instead of [tunnels].',
    });
  }

  const checked: { name: string; line: number; config?: TunnelConfig; localPort?: number }[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (stray.includes(name)) continue;
    checked.push({ name, line: ctx.lineOf(['tunnels', name]), ...checkTunnel(ctx, name, value) });
  }
  // Object key order puts integer-like names first; users expect file order.
  checked.sort((a, b) => a.line - b.line);

  // Ports are compared even for tunnels with other mistakes so that all conflicts show up at once.
  const used = new Set<number>([apiPort]);
  for (const c of checked) if (c.localPort !== undefined) used.add(c.localPort);
  const owner = new Map<number, string>();
  for (const c of checked) {
    if (c.localPort === undefined) continue;
    const here = `[${tomlPath(['tunnels', c.name])}]`;
    const line = ctx.lineOf(['tunnels', c.name, 'local_port']);
    const free = nextFreePort(c.localPort, used);
    const freeHint = free ? `, e.g. local_port = ${free}` : '';
    const prev = owner.get(c.localPort);
    if (prev !== undefined) {
      const prevLine = ctx.lineOf(['tunnels', prev, 'local_port']);
      ctx.issues.push({
        file: ctx.file,
        line,
        key: tomlPath(['tunnels', c.name, 'local_port']),
        message: `local_port ${c.localPort} in ${here} is already used by [${tomlPath(['tunnels', prev])}] at ${ctx.file}:${prevLine}`,
        fix: `Give each tunnel its own local_port${freeHint}.`,
      });
      if (free) used.add(free);
    } else if (c.localPort === apiPort) {
      ctx.issues.push({
        file: ctx.file,
        line,
        key: tomlPath(['tunnels', c.name, 'local_port']),
        message: `local_port ${c.localPort} in ${here} is the daemon's API port`,
        fix: `Pick another local_port${freeHint}, or move the API with api_port under [daemon].`,
      });
      if (free) used.add(free);
    } else {
      owner.set(c.localPort, c.name);
    }
  }
  return checked.flatMap((c) => (c.config ? [c.config] : []));
}

function checkTunnel(ctx: Ctx, name: string, raw: unknown): { config?: TunnelConfig; localPort?: number } {
  const tunnelPath = ['tunnels', name];
  const where = ctx.json ? `tunnel ${name}` : `[${tomlPath(tunnelPath)}]`;
  const before = ctx.issues.length;

  // "." and ".." would be rewritten away as path segments in API URLs such as /tunnels/NAME.
  if (!TUNNEL_NAME_RE.test(name) || /^\.+$/.test(name)) {
    const cleaned =
      name
        .replace(/[^A-Za-z0-9_.-]+/g, '-')
        .replace(/^-+|-+$/g, '')
        .slice(0, 64)
        .replace(/^\.+$/, '') || 'my-db';
    ctx.issues.push({
      file: ctx.file,
      line: ctx.lineOf(tunnelPath),
      key: tomlPath(tunnelPath),
      message: `invalid tunnel name ${JSON.stringify(name)}`,
      fix:
        `Tunnel names are used on the command line, so they may only contain letters, digits, '_', '.' and '-' ` +
        `(1 to 64 characters); rename it, e.g. ${ctx.json ? JSON.stringify(cleaned) : `[${tomlPath(['tunnels', cleaned])}]`}.`,
    });
  }
  if (!isTable(raw)) {
    ctx.issues.push({
      file: ctx.file,
      line: ctx.lineOf(tunnelPath),
      key: tomlPath(tunnelPath),
      message: `${where} must be ${ctx.json ? 'an object' : 'a table'} of settings, not ${describe(raw)}`,
      fix: ctx.json
        ? 'Send an object such as {"region": "eu-west-1", "target": "i-…", "remote_port": 5432, "local_port": 15432}.'
        : `Write [${tomlPath(tunnelPath)}] on its own line, followed by region = ..., target = ..., remote_port = ... and local_port = ... lines.`,
    });
    return {};
  }

  // [tunnels.orders.db] nests a table "db" inside a tunnel called "orders"; the usual missing-key
  // complaints about "orders" would only bury the real mistake.
  const keys = Object.keys(raw);
  if (!ctx.json && keys.length > 0 && keys.every((k) => isTable(raw[k]) && !isTunnelKey(k))) {
    for (const k of keys) {
      const dotted = `${name}.${k}`;
      ctx.issues.push({
        file: ctx.file,
        line: ctx.lineOf([...tunnelPath, k]),
        key: tomlPath([...tunnelPath, k]),
        message: `[${tomlPath([...tunnelPath, k])}] defines a table inside tunnel ${name}, not a tunnel`,
        fix: `Tunnel names containing "." need quotes: [tunnels.${JSON.stringify(dotted)}]; or use "-" instead: [tunnels.${dotted.replace(/\./g, '-')}].`,
      });
    }
    return {};
  }

  const s = new Section(ctx, tunnelPath, raw, where);
  s.unknownKeys(TUNNEL_KEYS, TUNNEL_ALIASES, (key, value) => {
    if ((DAEMON_KEYS as readonly string[]).includes(key)) {
      return ctx.json
        ? 'It is a daemon setting, not a tunnel setting.'
        : 'It is a daemon setting: move it below the [daemon] header.';
    }
    if (!ctx.json && isTable(value)) {
      const dotted = `${name}.${key}`;
      return `If you meant one tunnel called "${dotted}", quote the name: [tunnels.${JSON.stringify(dotted)}].`;
    }
    return undefined;
  });

  const engine = checkEngine(s);
  const samples = engine === 'mysql' ? { remote: 3306, local: 13306 } : { remote: 5432, local: 15432 };

  const profile = s.string('profile', 'default', true);
  const region = checkRegion(s);
  const target = checkTarget(s);
  const remoteHost = checkHostBounds(s, checkRemoteHost(s));

  const remotePort = s.port('remote_port', samples.remote);
  if (s.missing('remote_port')) {
    s.report(
      'remote_port',
      `${where} is missing remote_port`,
      `Add ${s.ex('remote_port', samples.remote)} (the database port ${remoteHost ? 'on remote_host' : 'on the target instance'}).`,
    );
  }
  const localPort = s.port('local_port', samples.local);
  if (s.missing('local_port')) {
    s.report(
      'local_port',
      `${where} is missing local_port`,
      `Add ${s.ex('local_port', samples.local)} (the port on this machine that database clients connect to).`,
    );
  }

  const bind = checkBind(s);
  const dbUser = s.string('db_user', 'app_readonly', true);
  const dbName = s.string('db_name', 'orders', true);
  const idleTimeoutMs = checkIdleTimeout(s);
  const endpoint = checkEndpoint(s);
  const lazy = s.bool('lazy') ?? true;
  const caBundle = checkCaBundle(s);
  const sslmode = checkSslmode(s);
  const auth = checkAuth(s, engine, dbUser, remoteHost);
  const dbUsers = checkDbUsers(s);
  const allowOtherUsers = s.bool('allow_other_users') ?? false;
  const limits = checkLimits(s);
  const sessions = checkSessions(s);

  if (
    ctx.issues.length > before ||
    region === undefined ||
    target === undefined ||
    remotePort === undefined ||
    localPort === undefined ||
    engine === undefined ||
    bind === undefined ||
    idleTimeoutMs === undefined ||
    sslmode === undefined ||
    sessions === undefined ||
    auth === undefined
  ) {
    return { localPort };
  }

  const parameters: Record<string, string[]> = {};
  if (remoteHost !== undefined) parameters.host = [remoteHost];
  parameters.portNumber = [String(remotePort)];
  parameters.localPortNumber = [String(localPort)];
  const config: TunnelConfig = {
    name,
    ...(profile !== undefined && { profile }),
    region,
    target,
    ...(remoteHost !== undefined && { remoteHost }),
    remotePort,
    localPort,
    bind,
    ...(dbUser !== undefined && { dbUser }),
    ...(dbName !== undefined && { dbName }),
    engine,
    ...(caBundle !== undefined && { caBundle }),
    sslmode,
    // Only non-defaults are set, so configs written before these keys compare equal.
    ...(auth === 'iam' && { auth }),
    ...(dbUsers !== undefined && { dbUsers }),
    ...(allowOtherUsers && { allowOtherUsers }),
    idleTimeoutMs,
    ...(endpoint !== undefined && { endpoint }),
    lazy,
    ...limits,
    ...(sessions > 1 && { sessions }),
    documentName: remoteHost !== undefined ? DOCUMENT_REMOTE_HOST : DOCUMENT_LOCAL,
    parameters,
    source: { file: ctx.file, line: ctx.lineOf(tunnelPath) },
  };
  return { config, localPort };
}

/** remote_host within RFC 1123 / IP literal bounds; `[::1]` becomes `::1`. */
function checkHostBounds(s: Section, host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const r = normalizeHost(host);
  if (r.host !== undefined) return r.host;
  const shown = host.length > 80 ? `${JSON.stringify(host.slice(0, 60))}...` : JSON.stringify(host);
  s.report(
    'remote_host',
    `remote_host ${shown} in ${s.where} ${r.problem}`,
    `Write a host name such as ${s.ex('remote_host', 'orders.cluster-abc.eu-west-1.rds.amazonaws.com')} or an IP address.`,
  );
  return undefined;
}

function nextFreePort(from: number, used: Set<number>): number | undefined {
  for (let p = from + 1; p <= 65535; p++) if (!used.has(p)) return p;
  return undefined;
}
