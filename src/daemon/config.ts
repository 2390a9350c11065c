/**
 * Loading and validating the ssmtun config file (TOML).
 *
 * The emphasis is on error quality: a daemon that refuses to start is only acceptable when it says
 * exactly which line is wrong and what to write instead. Every problem is collected (not just the
 * first) so one edit-and-retry round fixes the whole file.
 */
import os from 'node:os';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { checkIntegers, checkStringValues, readConfigFile } from './config/hardening.js';
import { PositionScanner } from './config/locate.js';
import { SAMPLE_INSTANCE } from './config/schema.js';
import type { Ctx } from './config/section.js';
import { syntaxIssue } from './config/syntax.js';
import { ConfigError, type ConfigIssue, type DaemonConfig } from './config/types.js';
import { checkDaemon, checkTunnels, unknownTopLevel } from './config/validate.js';

export { suggest } from './config/suggest.js';
export {
  ConfigError,
  type ConfigIssue,
  type DaemonConfig,
  DEFAULT_API_PORT,
  DEFAULT_BIND,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_LOG_LEVEL,
  DOCUMENT_LOCAL,
  DOCUMENT_REMOTE_HOST,
  ENGINES,
  formatIssue,
  LOG_LEVELS,
  MAX_IDLE_TIMEOUT_MS,
  type TunnelConfig,
} from './config/types.js';
export { validateTunnel } from './config/validate.js';

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  if (env.SSMTUN_CONFIG) return path.resolve(env.SSMTUN_CONFIG);
  // The XDG spec says relative values are invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'ssmtun', 'config.toml');
  return path.join(home, '.config', 'ssmtun', 'config.toml');
}

export async function loadConfig(file: string): Promise<DaemonConfig> {
  let text: string;
  let warnings: ConfigIssue[];
  try {
    ({ text, warnings } = await readConfigFile(file));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
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
  const config = parseConfig(text, file);
  return warnings.length > 0 ? { ...config, warnings } : config;
}

/** Logs what a config was accepted with despite (see DaemonConfig.warnings). */
export function logConfigWarnings(config: DaemonConfig, log: { warn(obj: object, msg: string): void }): void {
  for (const w of config.warnings ?? []) log.warn({ config: w.file, fix: w.fix }, w.message);
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
  const push = (i: Omit<ConfigIssue, 'file'>) => ctx.issues.push({ file, ...i });
  checkStringValues(push, ctx.lineOf, doc);
  checkIntegers(text, push, ctx.lineOf);

  for (const key of Object.keys(doc)) {
    if (key !== 'daemon' && key !== 'tunnels') unknownTopLevel(ctx, key, doc[key]);
  }
  const daemon = checkDaemon(ctx, doc.daemon);
  const tunnels = checkTunnels(ctx, doc.tunnels, daemon.apiPort);

  if (ctx.issues.length > 0) {
    throw new ConfigError(
      [...ctx.issues].sort((a, b) => a.line - b.line || (a.column ?? 0) - (b.column ?? 0)),
    );
  }
  return { ...daemon, tunnels, file };
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
