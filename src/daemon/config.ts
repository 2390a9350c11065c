/**
 * Loading and validating the ssmtun config file (TOML).
 *
 * The emphasis is on error quality: a daemon that refuses to start is only acceptable when it says
 * exactly which line is wrong and what to write instead. Every problem is collected (not just the
 * first) so one edit-and-retry round fixes the whole file.
 */
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';

export const DOCUMENT_REMOTE_HOST = 'AWS-StartPortForwardingSessionToRemoteHost';
export const DOCUMENT_LOCAL = 'AWS-StartPortForwardingSession';

export const DEFAULT_API_PORT = 7711;
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_BIND: readonly string[] = ['127.0.0.1', '::1'];
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export const ENGINES = ['postgres', 'mysql'] as const;
/** Node timers overflow above 2^31-1 ms and then fire immediately, which would close tunnels at once. */
export const MAX_IDLE_TIMEOUT_MS = 596 * 3_600_000;

export interface TunnelConfig {
  name: string;
  profile?: string;
  region: string;
  target: { kind: 'instance'; instanceId: string } | { kind: 'tag'; key: string; value: string };
  remoteHost?: string;
  remotePort: number;
  localPort: number;
  bind: string[];
  dbUser?: string;
  dbName?: string;
  engine: 'postgres' | 'mysql';
  /** 0 = never */
  idleTimeoutMs: number;
  endpoint?: string;
  lazy: boolean;
  /** Derived from remoteHost presence. */
  documentName: string;
  /** StartSession Parameters: portNumber, localPortNumber, plus host when remoteHost is set. */
  parameters: Record<string, string[]>;
  /** Where [tunnels.NAME] starts. */
  source: { file: string; line: number };
}

export interface DaemonConfig {
  apiPort: number;
  logLevel: string;
  tunnels: TunnelConfig[];
  file: string;
}

export interface ConfigIssue {
  file: string;
  /** 1-based; 0 when there is no line (missing file, tunnels added through the API). */
  line: number;
  /** Only for TOML syntax errors, where the parser knows it. */
  column?: number;
  /** Dotted TOML path, e.g. `tunnels.orders-db.local_port`. */
  key?: string;
  message: string;
  fix: string;
}

export function formatIssue(issue: ConfigIssue): string {
  let where = issue.file;
  if (issue.line > 0) where += `:${issue.line}`;
  if (issue.line > 0 && issue.column !== undefined) where += `:${issue.column}`;
  return `${where}: ${issue.message}. ${issue.fix}`;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  if (env.SSMTUN_CONFIG) return path.resolve(env.SSMTUN_CONFIG);
  // The XDG spec says relative values are invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'ssmtun', 'config.toml');
  return path.join(home, '.config', 'ssmtun', 'config.toml');
}

export async function loadConfig(file: string): Promise<DaemonConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const issue = (message: string, fix: string): ConfigError =>
      new ConfigError([{ file, line: 0, message, fix }]);
    if (code === 'ENOENT') throw issue('config file not found', createFileHint(file));
    if (code === 'EISDIR') {
      throw issue(
        'the config path is a directory',
        `Point SSMTUN_CONFIG at the file instead, e.g. ${path.join(file, 'config.toml')}.`,
      );
    }
    if (code === 'EACCES') {
      throw issue(
        'cannot read the config file (permission denied)',
        `Make it readable: chmod u+r ${shq(file)}.`,
      );
    }
    throw issue(
      `cannot read the config file: ${(err as Error).message}`,
      'Check that the path is a readable file.',
    );
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): DaemonConfig {
  // Editors on Windows like to prepend a BOM, which the TOML grammar does not allow.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (err) {
    if (err instanceof TomlError) throw new ConfigError([syntaxIssue(err, text, file)]);
    throw err;
  }
  const positions = new PositionScanner(text).scan();
  const ctx: Ctx = { file, json: false, issues: [], lineOf: (p) => positions.lineOf(p) };

  for (const key of Object.keys(doc)) {
    if (key !== 'daemon' && key !== 'tunnels') unknownTopLevel(ctx, key, doc[key]);
  }
  const { apiPort, logLevel } = checkDaemon(ctx, doc.daemon);
  const tunnels = checkTunnels(ctx, doc.tunnels, apiPort);

  if (ctx.issues.length > 0) {
    throw new ConfigError(
      [...ctx.issues].sort((a, b) => a.line - b.line || (a.column ?? 0) - (b.column ?? 0)),
    );
  }
  return { apiPort, logLevel, tunnels, file };
}

/** Validates one tunnel definition given as plain JSON (used by the HTTP API to add tunnels at run time); issues carry file '<api>' and line 0. */
export function validateTunnel(name: string, raw: unknown, file = '<api>', line = 0): TunnelConfig {
  const ctx: Ctx = { file, json: true, issues: [], lineOf: () => line };
  const { config } = checkTunnel(ctx, name, raw);
  if (!config || ctx.issues.length > 0) throw new ConfigError(ctx.issues);
  return config;
}

// ---------------------------------------------------------------------------------------------
// Validation

interface Ctx {
  file: string;
  /** Render examples in fixes as JSON (`"key": value`) for the HTTP API instead of TOML. */
  json: boolean;
  issues: ConfigIssue[];
  lineOf(path: readonly string[]): number;
}

const TUNNEL_KEYS = [
  'profile',
  'region',
  'target',
  'target_tag',
  'remote_host',
  'remote_port',
  'local_port',
  'bind',
  'db_user',
  'db_name',
  'engine',
  'idle_timeout',
  'endpoint',
  'lazy',
] as const;
const DAEMON_KEYS = ['api_port', 'log_level'] as const;
const TOP_KEYS = ['daemon', 'tunnels'] as const;

// Names people reach for from other tools; keys are normalized (lower case, no '_' or '-').
const TUNNEL_ALIASES: Record<string, string> = {
  host: 'remote_host',
  hostname: 'remote_host',
  remote: 'remote_host',
  dbhost: 'remote_host',
  port: 'remote_port',
  dbport: 'remote_port',
  instance: 'target',
  instanceid: 'target',
  tag: 'target_tag',
  tags: 'target_tag',
  user: 'db_user',
  username: 'db_user',
  database: 'db_name',
  db: 'db_name',
  timeout: 'idle_timeout',
  idle: 'idle_timeout',
  awsprofile: 'profile',
  awsregion: 'region',
  listen: 'bind',
  address: 'bind',
  bindaddress: 'bind',
  url: 'endpoint',
  endpointurl: 'endpoint',
  type: 'engine',
  driver: 'engine',
  dialect: 'engine',
};
const DAEMON_ALIASES: Record<string, string> = { port: 'api_port', level: 'log_level', log: 'log_level' };
const ENGINE_ALIASES: Record<string, string> = {
  postgresql: 'postgres',
  pg: 'postgres',
  psql: 'postgres',
  aurorapostgresql: 'postgres',
  mariadb: 'mysql',
  auroramysql: 'mysql',
};

const TUNNEL_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const INSTANCE_ID_RE = /^(?:i|mi)-[0-9a-f]{8,17}$/;
// Covers partition-style regions too (us-gov-west-1, cn-north-1, eu-isoe-west-1).
const REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
const BARE_KEY_RE = /^[A-Za-z0-9_-]+$/;

const SAMPLE_INSTANCE = 'i-0123456789abcdef0';
const SAMPLE_TAG = 'Name=bastion';

/** One table of the config (or the JSON body of an API request) plus helpers to report on its keys. */
class Section {
  /** Keys offered as did-you-mean; a "missing key" issue for them would repeat the same mistake. */
  readonly suggested = new Set<string>();

  constructor(
    readonly ctx: Ctx,
    readonly path: string[],
    readonly raw: Record<string, unknown>,
    /** How messages refer to this table: `[tunnels.db]`, `[daemon]`, `tunnel db`. */
    readonly where: string,
  ) {}

  get(key: string): unknown {
    if (!Object.hasOwn(this.raw, key)) return undefined;
    const v = this.raw[key];
    // JSON has null where TOML would just leave the key out.
    return v === null ? undefined : v;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Line of `key`, or of the table itself when the key is absent (missing-key issues land on the header). */
  line(key?: string): number {
    return this.ctx.lineOf(key === undefined ? this.path : [...this.path, key]);
  }

  report(key: string | undefined, message: string, fix: string, line = this.line(key)): void {
    const keyPath = tomlPath(key === undefined ? this.path : [...this.path, key]);
    this.ctx.issues.push({ file: this.ctx.file, line, key: keyPath, message, fix });
  }

  ex(key: string, value: unknown): string {
    return example(this.ctx.json, key, value);
  }

  string(key: string, sample: string, optional: boolean): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.report(
        key,
        `${key} in ${this.where} must be a string, not ${describe(v)}`,
        isScalar(v)
          ? `Put the value in quotes: ${this.ex(key, String(v))}.`
          : `Write e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    if (v.trim() === '') {
      this.report(
        key,
        `${key} in ${this.where} is empty`,
        `Write a value, e.g. ${this.ex(key, sample)}${optional ? ', or remove the key' : ''}.`,
      );
      return undefined;
    }
    return v;
  }

  port(key: string, sample: number): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v === 'string') {
      const n = Number(v.trim());
      this.report(
        key,
        `${key} in ${this.where} must be a number, not a string`,
        /^\s*\d+\s*$/.test(v) && isPort(n)
          ? `Write the number without quotes: ${this.ex(key, n)}.`
          : `Write a port number between 1 and 65535 without quotes, e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    if (typeof v !== 'number' && typeof v !== 'bigint') {
      this.report(
        key,
        `${key} in ${this.where} must be a number, not ${describe(v)}`,
        `Write a port number between 1 and 65535, e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    const n = Number(v);
    if (!Number.isInteger(n)) {
      this.report(
        key,
        `${key} in ${this.where} must be a whole number, not ${n}`,
        `Write e.g. ${this.ex(key, Math.round(n) || sample)}.`,
      );
      return undefined;
    }
    if (!isPort(n)) {
      this.report(
        key,
        `${key} ${n} in ${this.where} is out of range`,
        `Ports go from 1 to 65535; write e.g. ${this.ex(key, sample)}.`,
      );
      return undefined;
    }
    return n;
  }

  bool(key: string): boolean | undefined {
    const v = this.get(key);
    if (v === undefined || typeof v === 'boolean') return v;
    const asText = typeof v === 'string' ? v.trim().toLowerCase() : '';
    this.report(
      key,
      `${key} in ${this.where} must be true or false, not ${describe(v)}`,
      asText === 'true' || asText === 'false'
        ? `Write it without quotes: ${this.ex(key, asText === 'true')}.`
        : `Write ${this.ex(key, true)} or ${this.ex(key, false)}.`,
    );
    return undefined;
  }

  /** Missing and not explained by a misspelt key that was already reported. */
  missing(key: string): boolean {
    return !this.has(key) && !this.suggested.has(key);
  }

  /** Reports keys outside `allowed`, with a did-you-mean or a hint that the key belongs elsewhere. */
  unknownKeys(
    allowed: readonly string[],
    aliases: Record<string, string>,
    misplaced: (key: string, value: unknown) => string | undefined,
  ): void {
    for (const key of Object.keys(this.raw)) {
      if (allowed.includes(key)) continue;
      const value = this.raw[key];
      const elsewhere = misplaced(key, value);
      if (elsewhere) {
        this.report(key, `${key} is not allowed in ${this.where}`, elsewhere);
        continue;
      }
      const guess = suggest(key, allowed, aliases);
      if (guess) this.suggested.add(guess);
      this.report(
        key,
        `unknown key ${key} in ${this.where}`,
        guess
          ? `Did you mean ${guess}? Rename the key to ${guess}.`
          : `Remove it; valid keys are ${allowed.join(', ')}.`,
      );
    }
  }
}

function unknownTopLevel(ctx: Ctx, key: string, value: unknown): void {
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

function checkDaemon(ctx: Ctx, raw: unknown): { apiPort: number; logLevel: string } {
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
  return { apiPort, logLevel };
}

function checkTunnels(ctx: Ctx, raw: unknown, apiPort: number): TunnelConfig[] {
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
  const remoteHost = checkRemoteHost(s);

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

  if (
    ctx.issues.length > before ||
    region === undefined ||
    target === undefined ||
    remotePort === undefined ||
    localPort === undefined ||
    engine === undefined ||
    bind === undefined ||
    idleTimeoutMs === undefined
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
    idleTimeoutMs,
    ...(endpoint !== undefined && { endpoint }),
    lazy,
    documentName: remoteHost !== undefined ? DOCUMENT_REMOTE_HOST : DOCUMENT_LOCAL,
    parameters,
    source: { file: ctx.file, line: ctx.lineOf(tunnelPath) },
  };
  return { config, localPort };
}

function checkEngine(s: Section): 'postgres' | 'mysql' | undefined {
  const engine = s.string('engine', 'postgres', true);
  if (!s.has('engine')) return 'postgres';
  if (engine === undefined) return undefined;
  if (engine === 'postgres' || engine === 'mysql') return engine;
  const guess = suggest(engine, ENGINES, ENGINE_ALIASES);
  s.report(
    'engine',
    `engine ${JSON.stringify(engine)} in ${s.where} is not supported`,
    `${guess ? `Did you mean ${s.ex('engine', guess)}? ` : ''}Use ${s.ex('engine', 'postgres')} or ${s.ex('engine', 'mysql')} (Aurora and MariaDB use the same wire protocols).`,
  );
  return undefined;
}

function checkRegion(s: Section): string | undefined {
  const region = s.string('region', 'eu-west-1', false);
  if (!s.has('region')) {
    if (s.missing('region')) {
      s.report(
        'region',
        `${s.where} is missing region`,
        `Add ${s.ex('region', 'eu-west-1')} (the AWS region of the target instance).`,
      );
    }
    return undefined;
  }
  if (region === undefined) return undefined;
  if (REGION_RE.test(region)) return region;
  const lower = region.trim().toLowerCase();
  const az = /^(.*-\d{1,2})[a-z]$/.exec(lower);
  let fix: string;
  if (az && REGION_RE.test(az[1])) {
    fix = `That looks like an availability zone; write the region: ${s.ex('region', az[1])}.`;
  } else if (REGION_RE.test(lower)) {
    fix = `Write ${s.ex('region', lower)}.`;
  } else {
    fix = `Write a region code such as ${s.ex('region', 'eu-west-1')} or ${s.ex('region', 'us-east-1')}.`;
  }
  s.report('region', `region ${JSON.stringify(region)} in ${s.where} is not an AWS region code`, fix);
  return undefined;
}

function checkTarget(s: Section): TunnelConfig['target'] | undefined {
  const hasTarget = s.has('target');
  const hasTag = s.has('target_tag');
  if (hasTarget && hasTag) {
    s.report(
      'target_tag',
      `both target and target_tag are set in ${s.where}`,
      'Keep only one: target for a fixed instance id, or target_tag to look up an online instance by tag.',
    );
  } else if (s.missing('target') && s.missing('target_tag')) {
    s.report(
      'target',
      `${s.where} has no target`,
      `Add ${s.ex('target', SAMPLE_INSTANCE)} (an instance id) or ${s.ex('target_tag', SAMPLE_TAG)} (a tag of an online managed instance).`,
    );
  }

  let result: TunnelConfig['target'] | undefined;
  const id = s.string('target', SAMPLE_INSTANCE, false);
  if (id !== undefined) {
    const lower = id.trim().toLowerCase();
    if (INSTANCE_ID_RE.test(id)) {
      result = { kind: 'instance', instanceId: id };
    } else if (id.includes('=')) {
      s.report(
        'target',
        `target ${JSON.stringify(id)} in ${s.where} is a tag, not an instance id`,
        `Write ${s.ex('target_tag', id)} instead.`,
      );
    } else {
      s.report(
        'target',
        `target ${JSON.stringify(id)} in ${s.where} is not an instance id`,
        INSTANCE_ID_RE.test(lower)
          ? `Write ${s.ex('target', lower)}.`
          : `Instance ids are "i-" or "mi-" followed by hex digits, e.g. ${s.ex('target', SAMPLE_INSTANCE)}; to pick the instance by tag write ${s.ex('target_tag', SAMPLE_TAG)} instead.`,
      );
    }
  }

  const tag = s.string('target_tag', SAMPLE_TAG, false);
  if (tag !== undefined) {
    const eq = tag.indexOf('=');
    const key = eq < 0 ? '' : tag.slice(0, eq).trim();
    const value = eq < 0 ? '' : tag.slice(eq + 1).trim();
    if (key && value) {
      result = { kind: 'tag', key, value };
    } else {
      let fix = `Write the tag as Key=Value, e.g. ${s.ex('target_tag', SAMPLE_TAG)}.`;
      if (eq < 0 && INSTANCE_ID_RE.test(tag.trim())) fix = `Write ${s.ex('target', tag.trim())} instead.`;
      else if (eq < 0) fix = `Write the tag as Key=Value, e.g. ${s.ex('target_tag', `Name=${tag.trim()}`)}.`;
      s.report(
        'target_tag',
        `target_tag ${JSON.stringify(tag)} in ${s.where} is not of the form Key=Value`,
        fix,
      );
    }
  }
  return hasTarget && hasTag ? undefined : result;
}

function checkRemoteHost(s: Section): string | undefined {
  const host = s.string('remote_host', 'orders.cluster-abc.eu-west-1.rds.amazonaws.com', true);
  if (host === undefined) return undefined;
  const bad = (problem: string, fix: string): undefined => {
    s.report('remote_host', `remote_host ${JSON.stringify(host)} in ${s.where} ${problem}`, fix);
    return undefined;
  };
  if (host.includes('://')) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(host);
    } catch {}
    const hostname = parsed?.hostname.replace(/^\[|\]$/g, '');
    if (!hostname)
      return bad('is a URL, not a host name', 'Write only the host name, without scheme or path.');
    return bad(
      'is a URL, not a host name',
      `Write ${s.ex('remote_host', hostname)}${parsed?.port ? ` and ${s.ex('remote_port', Number(parsed.port))}` : ''}.`,
    );
  }
  if (/\s/.test(host))
    return bad(
      'contains spaces',
      `Write the host name alone, e.g. ${s.ex('remote_host', host.trim().split(/\s+/)[0])}.`,
    );
  const hostPort = /^([^:]+):(\d+)$/.exec(host);
  if (hostPort) {
    return bad(
      'includes a port',
      `Put the port in remote_port: ${s.ex('remote_host', hostPort[1])} and ${s.ex('remote_port', Number(hostPort[2]))}.`,
    );
  }
  if (host.includes('/') || (host.includes(':') && !isIPv6(host))) {
    return bad(
      'is not a host name or IP address',
      `Write e.g. ${s.ex('remote_host', 'orders.cluster-abc.eu-west-1.rds.amazonaws.com')}.`,
    );
  }
  return host;
}

function checkBind(s: Section): string[] | undefined {
  const v = s.get('bind');
  if (v === undefined) return [...DEFAULT_BIND];
  if (typeof v === 'string') {
    s.report(
      'bind',
      `bind in ${s.where} must be an array of addresses, not a string`,
      `Write ${s.ex('bind', [v])}.`,
    );
    return undefined;
  }
  if (!Array.isArray(v) || v.some((a) => typeof a !== 'string')) {
    s.report(
      'bind',
      `bind in ${s.where} must be an array of address strings`,
      `Write e.g. ${s.ex('bind', DEFAULT_BIND)}.`,
    );
    return undefined;
  }
  if (v.length === 0) {
    s.report(
      'bind',
      `bind in ${s.where} is empty, so the tunnel would not listen anywhere`,
      `List at least one loopback address, e.g. ${s.ex('bind', ['127.0.0.1'])}, or remove the key to use ${JSON.stringify(DEFAULT_BIND).replace(',', ', ')}.`,
    );
    return undefined;
  }
  let ok = true;
  const seen = new Set<string>();
  for (const [i, addr] of (v as string[]).entries()) {
    // Multi-line arrays are common for bind; point at the offending element, not the opening bracket.
    const line = s.ctx.lineOf([...s.path, 'bind', String(i)]);
    if (!isLoopback(addr)) {
      ok = false;
      s.report(
        'bind',
        `bind address ${JSON.stringify(addr)} in ${s.where} is not a loopback address`,
        'Use 127.0.0.1, ::1 or localhost: any other address would expose the database to the network, ' +
          'letting anyone who can reach this machine connect through the tunnel with your AWS access.',
        line,
      );
    } else if (seen.has(addr)) {
      ok = false;
      s.report(
        'bind',
        `bind lists ${JSON.stringify(addr)} twice in ${s.where}`,
        'List each address once.',
        line,
      );
    }
    seen.add(addr);
  }
  return ok ? [...(v as string[])] : undefined;
}

function checkIdleTimeout(s: Section): number | undefined {
  const v = s.get('idle_timeout');
  if (v === undefined) return DEFAULT_IDLE_TIMEOUT_MS;
  const where = `idle_timeout in ${s.where}`;
  const usage = `Write a number with a unit (s, m or h), e.g. ${s.ex('idle_timeout', '10m')}, ${s.ex('idle_timeout', '0')} to never close, or a whole number of seconds without quotes.`;
  let ms: number | undefined;
  if (typeof v === 'number' || typeof v === 'bigint') {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      s.report('idle_timeout', `${where} must be a whole number of seconds (0 or more), not ${n}`, usage);
      return undefined;
    }
    ms = n * 1000;
  } else if (typeof v === 'string') {
    const text = v.trim();
    const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
    if (text === '0') {
      ms = 0;
    } else if (m && text !== '') {
      ms = (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000;
    } else if (/^\d+$/.test(text)) {
      s.report(
        'idle_timeout',
        `${where} has no unit: ${JSON.stringify(v)}`,
        `Add a unit, e.g. ${s.ex('idle_timeout', `${text}s`)}, or write the seconds without quotes: ${s.ex('idle_timeout', Number(text))}.`,
      );
      return undefined;
    } else {
      s.report('idle_timeout', `${where} is not a duration: ${JSON.stringify(v)}`, usage);
      return undefined;
    }
  } else {
    s.report('idle_timeout', `${where} must be a duration string or a number, not ${describe(v)}`, usage);
    return undefined;
  }
  if (ms > MAX_IDLE_TIMEOUT_MS) {
    s.report(
      'idle_timeout',
      `${where} is longer than the maximum of 596h`,
      `Write at most ${s.ex('idle_timeout', '596h')}, or ${s.ex('idle_timeout', '0')} to never close the session.`,
    );
    return undefined;
  }
  return ms;
}

function checkEndpoint(s: Section): string | undefined {
  const endpoint = s.string('endpoint', 'http://127.0.0.1:4566', true);
  if (endpoint === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {}
  if (url && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname) return endpoint;
  // "localhost:4566" parses as a URL with scheme "localhost:", so check the scheme rather than parse success.
  const fix = /^[A-Za-z0-9.[\]:-]+$/.test(endpoint)
    ? `Add the scheme: ${s.ex('endpoint', `http://${endpoint}`)}.`
    : `Write a full http(s) URL, e.g. ${s.ex('endpoint', 'http://127.0.0.1:4566')}, or remove the key to use the regional AWS endpoint.`;
  s.report('endpoint', `endpoint ${JSON.stringify(endpoint)} in ${s.where} is not an http(s) URL`, fix);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function isTunnelKey(k: string): boolean {
  return (TUNNEL_KEYS as readonly string[]).includes(k);
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function isScalar(v: unknown): boolean {
  return typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean';
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

function isLoopback(addr: string): boolean {
  if (addr === 'localhost') return true;
  if (isIPv4(addr)) return addr.startsWith('127.');
  if (isIPv6(addr)) {
    // URL normalizes the many spellings of ::1 (0:0:0:0:0:0:0:1, ::0001, ...).
    try {
      return new URL(`http://[${addr}]/`).hostname === '[::1]';
    } catch {
      return false;
    }
  }
  return false;
}

function nextFreePort(from: number, used: Set<number>): number | undefined {
  for (let p = from + 1; p <= 65535; p++) if (!used.has(p)) return p;
  return undefined;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `a string (${JSON.stringify(v)})`;
  if (typeof v === 'number') return Number.isInteger(v) ? `a number (${v})` : `a decimal number (${v})`;
  if (typeof v === 'bigint') return `a number (${v})`;
  if (typeof v === 'boolean') return `a boolean (${v})`;
  if (v instanceof Date) return 'a date';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'a table';
  return typeof v;
}

function tomlKey(k: string): string {
  return BARE_KEY_RE.test(k) ? k : JSON.stringify(k);
}

function tomlPath(p: readonly string[]): string {
  return p.map(tomlKey).join('.');
}

function literal(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(literal).join(', ')}]`;
  return String(v);
}

function example(json: boolean, key: string, value: unknown): string {
  return json ? `"${key}": ${literal(value)}` : `${key} = ${literal(value)}`;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function createFileHint(file: string): string {
  return [
    'Create it, for example:',
    '',
    `  mkdir -p ${shq(path.dirname(file))} && cat > ${shq(file)} <<'EOF'`,
    '  [tunnels.orders-db]',
    '  region = "eu-west-1"',
    `  target = "${SAMPLE_INSTANCE}"`,
    '  remote_host = "orders.cluster-abc.eu-west-1.rds.amazonaws.com"',
    '  remote_port = 5432',
    '  local_port = 15432',
    '  EOF',
    '',
    'or set SSMTUN_CONFIG to the path of an existing file.',
  ].join('\n');
}

const normalizeKey = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');

/** Closest candidate by (normalized) edit distance, or a known alias; undefined when nothing is close. */
export function suggest(
  input: string,
  candidates: readonly string[],
  aliases: Record<string, string> = {},
): string | undefined {
  const n = normalizeKey(input);
  const alias = aliases[n];
  if (alias && candidates.includes(alias)) return alias;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(n, normalizeKey(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best === undefined) return undefined;
  return bestDistance <= Math.max(1, Math.floor(normalizeKey(best).length / 3)) ? best : undefined;
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("prot" → "port" is 1). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

// ---------------------------------------------------------------------------------------------
// TOML syntax errors

function syntaxIssue(err: TomlError, text: string, file: string): ConfigIssue {
  const reason = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
  const lineText = text.split(/\r?\n/)[err.line - 1] ?? '';
  return {
    file,
    line: err.line,
    column: err.column,
    message: `invalid TOML: ${reason}`,
    fix: syntaxFix(reason, lineText, err.line, text),
  };
}

function syntaxFix(reason: string, lineText: string, line: number, text: string): string {
  const trimmed = lineText.trim();
  const eq = lineText.indexOf('=');
  const key = eq > 0 ? lineText.slice(0, eq).trim() : '';
  const value =
    eq > 0
      ? lineText
          .slice(eq + 1)
          .replace(/\s+#.*$/, '')
          .trim()
      : '';

  if (/unfinished string|control characters are not allowed in strings/.test(reason)) {
    return 'Close the string with a matching quote on the same line (use """...""" for text spanning several lines).';
  }
  if (reason === 'invalid value') {
    if (eq > 0 && value === '') return `Write a value after "=", e.g. ${key} = "..." or ${key} = 5432.`;
    if (eq > 0) {
      const unquoted = value.replace(/^["']|["']$/g, '');
      return `Text values need quotes: ${key} = ${JSON.stringify(unquoted)} (numbers and true/false are written without quotes).`;
    }
    return 'Text values need quotes, e.g. region = "eu-west-1"; numbers and true/false are written without quotes.';
  }
  if (/numeric|leading zero|underscore/.test(reason)) {
    if (eq > 0 && /^\[?[\w.:]+/.test(value) && /[.:]/.test(value) && /[0-9]/.test(value)) {
      return `Addresses and other text need quotes, e.g. "127.0.0.1"; only plain whole numbers go without quotes.`;
    }
    return 'Write plain whole numbers (no leading zeros), or put the value in quotes if it is text.';
  }
  if (/expected comma or end of structure|unfinished array/.test(reason)) {
    return 'Separate items with commas and close the array with ] (or the inline table with }); quote text items.';
  }
  if (/end-of-line/.test(reason)) {
    return 'Put each key = value on its own line, and quote text that contains spaces.';
  }
  if (/key|unfinished table|table array declaration/.test(reason)) {
    if (trimmed.startsWith('[')) {
      return (
        'Write the header as [tunnels.NAME] with a closing ]; names with characters other than letters, digits, ' +
        '"_" and "-" need quotes, e.g. [tunnels."orders.db"].'
      );
    }
    return 'Write key = value; keys may only contain letters, digits, "_" and "-" (see the key list in the docs).';
  }
  if (/redefine/.test(reason)) {
    const first = new PositionScanner(text).scan().firstDefinition(line);
    return (
      `Each [table] and key may appear only once${first ? ` and this one is already defined at line ${first}` : ''}; ` +
      'merge the two or rename one (tunnel names must be unique).'
    );
  }
  if (/escape/.test(reason)) {
    return 'In "..." strings a backslash starts an escape; write \\\\ for a backslash, or use a \'single-quoted\' literal string.';
  }
  if (/losslessly/.test(reason)) return 'Use a smaller number.';
  if (/comments/.test(reason)) return 'Remove the control character from the comment.';
  return 'Check the TOML syntax at this position (see https://toml.io).';
}

// ---------------------------------------------------------------------------------------------
// Key positions. TOML values carry no positions, so the text is scanned again to learn on which line
// each table and key first appears. The scanner is tolerant: on anything unexpected it stops and keeps
// what it found, and lookups fall back to the closest enclosing table.

class PositionScanner {
  private i = 0;
  private line = 1;
  private readonly first = new Map<string, number>();
  private readonly statements: { line: number; path: string[] }[] = [];

  constructor(private readonly s: string) {}

  scan(): this {
    try {
      this.document();
    } catch {
      // Partial positions are still better than none.
    }
    return this;
  }

  /** Line of the closest recorded ancestor of `path` (or of `path` itself); 1 when nothing matched. */
  lineOf(p: readonly string[]): number {
    for (let n = p.length; n > 0; n--) {
      const line = this.first.get(p.slice(0, n).join('\0'));
      if (line !== undefined) return line;
    }
    return 1;
  }

  /** For a redefinition on `line`: the earlier line where the same table or key was first written. */
  firstDefinition(line: number): number | undefined {
    for (const st of this.statements) {
      if (st.line !== line) continue;
      const first = this.first.get(st.path.join('\0'));
      if (first !== undefined && first < line) return first;
    }
    return undefined;
  }

  private record(p: string[], line: number, statement: boolean): void {
    for (let n = 1; n <= p.length; n++) {
      const id = p.slice(0, n).join('\0');
      if (!this.first.has(id)) this.first.set(id, line);
    }
    if (statement) this.statements.push({ line, path: p });
  }

  private document(): void {
    let table: string[] = [];
    while (this.i < this.s.length) {
      this.skipBlank();
      if (this.i >= this.s.length) break;
      const line = this.line;
      if (this.s[this.i] === '[') {
        this.i += this.s[this.i + 1] === '[' ? 2 : 1;
        table = this.key();
        // `[a]` after `a = 1` is a syntax error; record anyway so firstDefinition can find the pair.
        this.statements.push({ line, path: table });
        this.record(table, line, false);
      } else {
        const k = this.key();
        this.skipWs();
        if (k.length > 0 && this.s[this.i] === '=') {
          this.i++;
          this.skipWs();
          const full = [...table, ...k];
          this.statements.push({ line, path: full });
          this.record(full, line, false);
          this.value(full);
        }
      }
      this.skipLine();
    }
  }

  private value(p: string[]): void {
    const s = this.s;
    const start = this.i;
    if (s.startsWith('"""', this.i) || s.startsWith("'''", this.i)) {
      const quote = s.slice(this.i, this.i + 3);
      this.i += 3;
      while (this.i < s.length && !s.startsWith(quote, this.i)) {
        if (quote === '"""' && s[this.i] === '\\') this.i++;
        if (s[this.i] === '\n') this.line++;
        this.i++;
      }
      this.i += 3;
      // Up to two quotes directly before the closing delimiter belong to the content.
      while (s[this.i] === quote[0]) this.i++;
    } else if (s[this.i] === '"' || s[this.i] === "'") {
      this.quoted();
    } else if (s[this.i] === '[') {
      this.i++;
      for (let n = 0; ; n++) {
        this.skipBlank();
        if (this.i >= s.length || s[this.i] === ']') break;
        this.record([...p, String(n)], this.line, false);
        this.value([...p, String(n)]);
        this.skipBlank();
        if (s[this.i] === ',') this.i++;
      }
      this.i++;
    } else if (s[this.i] === '{') {
      this.i++;
      for (;;) {
        this.skipBlank();
        if (this.i >= s.length || s[this.i] === '}') break;
        if (s[this.i] === ',') {
          this.i++;
          continue;
        }
        const line = this.line;
        const k = this.key();
        this.skipWs();
        if (k.length === 0 || s[this.i] !== '=') throw new Error('unexpected inline table content');
        this.i++;
        this.skipWs();
        const full = [...p, ...k];
        this.record(full, line, false);
        this.value(full);
      }
      this.i++;
    } else {
      while (this.i < s.length && !',]}#\r\n'.includes(s[this.i])) this.i++;
    }
    if (this.i === start) throw new Error('no progress');
  }

  private key(): string[] {
    const parts: string[] = [];
    const bare = /[A-Za-z0-9_-]+/y;
    for (;;) {
      this.skipWs();
      const c = this.s[this.i];
      if (c === '"' || c === "'") {
        parts.push(this.quoted());
      } else {
        bare.lastIndex = this.i;
        const m = bare.exec(this.s);
        if (!m) break;
        parts.push(m[0]);
        this.i += m[0].length;
      }
      this.skipWs();
      if (this.s[this.i] !== '.') break;
      this.i++;
    }
    return parts;
  }

  /** A single-line basic or literal string starting at the current quote; returns its decoded text. */
  private quoted(): string {
    const s = this.s;
    const quote = s[this.i++];
    let out = '';
    while (this.i < s.length && s[this.i] !== quote && s[this.i] !== '\n') {
      if (quote === '"' && s[this.i] === '\\') {
        const e = s[this.i + 1];
        const hex = e === 'u' ? 4 : e === 'U' ? 8 : e === 'x' ? 2 : 0;
        if (hex > 0) {
          out += String.fromCodePoint(Number.parseInt(s.slice(this.i + 2, this.i + 2 + hex), 16) || 0xfffd);
          this.i += 2 + hex;
        } else {
          const simple: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', e: '\x1b' };
          out += simple[e] ?? e;
          this.i += 2;
        }
      } else {
        out += s[this.i++];
      }
    }
    if (s[this.i] === quote) this.i++;
    return out;
  }

  private skipWs(): void {
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
  }

  /** Whitespace, newlines and comments: the filler allowed between statements and between array items. */
  private skipBlank(): void {
    for (;;) {
      const c = this.s[this.i];
      if (c === ' ' || c === '\t' || c === '\r') this.i++;
      else if (c === '\n') {
        this.line++;
        this.i++;
      } else if (c === '#') {
        while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
      } else return;
    }
  }

  private skipLine(): void {
    while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
    if (this.i < this.s.length) {
      this.i++;
      this.line++;
    }
  }
}
