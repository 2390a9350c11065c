/**
 * Linux: a systemd user unit. `Type=exec` because the daemon does not speak sd_notify; scripts that
 * must wait for readiness run `ssmtun wait`. Exit 78 (config error) is not restarted: it would only
 * repeat itself; exit 1 (nothing could listen, another daemon runs) is, with a start limit.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../daemon/config.js';
import { servicePath } from './paths.js';
import { MARKER, type ServiceContext, type ServicePlan } from './types.js';

export const UNIT_NAME = 'ssmtun.service';

export interface UnitOptions {
  nodePath: string;
  scriptPath: string;
  configPath: string;
  /** Environment=PATH=... */
  path: string;
  version: string;
  /** Namespace-based hardening needs unprivileged user namespaces; some distributions forbid them. */
  sandbox: boolean;
  /** An extra comment line at the top (the documented example says it is one). */
  note?: string;
  /**
   * More directories the daemon writes: the CA bundle cache, and the folders of the pgpass /
   * pg_service files when the config has the daemon keep them (their atomic rename needs the folder).
   */
  writable?: string[];
}

/** One ExecStart word: specifiers (%) and variables ($) are escaped, spaces quoted. */
export function unitWord(s: string): string {
  const escaped = s.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(escaped) ? `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : escaped;
}

/** A path in ReadWritePaths= etc.: specifiers are kept when the caller wrote them on purpose (%h). */
function unitDir(s: string): string {
  return /\s/.test(s) ? `"${s}"` : s;
}

/** `%h/...` is kept as the home specifier (the documented examples); any other path is escaped. */
function configWord(s: string): string {
  return s.startsWith('%h/') && !/[\s"'\\;$]/.test(s) ? s : unitWord(s);
}

export function renderUnit(o: UnitOptions): string {
  const exec = [
    ...[o.nodePath, o.scriptPath, 'daemon', '--config'].map(unitWord),
    configWord(o.configPath),
  ].join(' ');
  const configDir = o.configPath.startsWith('%h/')
    ? path.posix.dirname(o.configPath)
    : path.dirname(o.configPath);
  const lines = [
    `# ${MARKER} (ssmtun ${o.version}); \`ssmtun service uninstall\` removes it.`,
    ...(o.note ? [`# ${o.note}`] : []),
    '# Logs: journalctl --user -u ssmtun -f   Status: ssmtun service status   Reload: systemctl --user reload ssmtun',
    '[Unit]',
    'Description=ssmtun: tunnels to private databases through AWS Session Manager',
    'After=network-online.target',
    'Wants=network-online.target',
    '# At most 5 starts in 5 minutes, then systemd stops trying until `ssmtun service restart`.',
    'StartLimitIntervalSec=300',
    'StartLimitBurst=5',
    '',
    '[Service]',
    '# The daemon does not implement sd_notify; `ssmtun wait` returns once it is ready.',
    'Type=exec',
    `ExecStart=${exec}`,
    '# SIGHUP re-reads the config and applies only the difference; sessions of unchanged tunnels stay.',
    'ExecReload=kill -HUP $MAINPID',
    'Restart=on-failure',
    'RestartSec=5',
    '# A config error (exit 78) would only repeat itself; fix the file and run: ssmtun service restart',
    'RestartPreventExitStatus=78',
    '# SIGTERM terminates every session and exits 0 within 2 s.',
    'TimeoutStopSec=5',
    `Environment=${unitWord(`PATH=${o.path}`)}`,
    'StandardOutput=journal',
    'StandardError=journal',
    'SyslogIdentifier=ssmtun',
    'UMask=0077',
    'NoNewPrivileges=yes',
  ];
  if (o.sandbox) {
    lines.push(
      '# Sandbox (needs user namespaces; if the service fails with status 218 or 226, reinstall with',
      '# `ssmtun service install --no-sandbox`). Writable: runtime dir (pid locks), state dir, config dir,',
      '# and the AWS SSO/CLI caches the SDK refreshes tokens into.',
      'PrivateTmp=yes',
      'ProtectSystem=strict',
      'ProtectHome=read-only',
      'RuntimeDirectory=ssmtun',
      'StateDirectory=ssmtun',
      // StateDirectory= maps to ~/.config or ~/.local/state depending on the systemd version, so the
      // XDG state dir is also named (install creates it; `-` tolerates a missing AWS cache).
      `ReadWritePaths=${unitDir(`-${configDir.startsWith('%h/') ? configDir : configDir.replace(/%/g, '%%')}`)} -%h/.local/state/ssmtun -%h/.cache/ssmtun -%h/.aws/sso/cache -%h/.aws/cli/cache`,
    );
    const extra = [...new Set(o.writable ?? [])];
    if (extra.length > 0) {
      lines.push(
        '# Written because the config has the daemon keep them ([daemon] pgpass / pgservice, a cache elsewhere).',
        `ReadWritePaths=${extra.map((d) => unitDir(`-${d.replace(/%/g, '%%')}`)).join(' ')}`,
      );
    }
  }
  lines.push('', '[Install]', 'WantedBy=default.target', '');
  return lines.join('\n');
}

export function unitPath(home: string, env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : undefined;
  return path.join(xdg ?? path.join(home, '.config'), 'systemd', 'user', UNIT_NAME);
}

const systemctl = (...args: string[]) => ({ argv: ['systemctl', '--user', ...args] });

export function linuxInstallPlan(
  ctx: ServiceContext,
  opts: { sandbox: boolean; existing?: string },
): ServicePlan {
  const file = unitPath(ctx.home, ctx.env);
  const content = renderUnit({
    nodePath: ctx.nodePath,
    scriptPath: ctx.scriptPath,
    configPath: ctx.configPath,
    path: servicePath(ctx.env, ctx.home, ctx.nodePath),
    version: ctx.version,
    sandbox: opts.sandbox,
    writable: daemonWrites(ctx),
  });
  const unchanged = opts.existing === content;
  const user = ctx.env.USER ?? ctx.env.LOGNAME ?? '$USER';
  return {
    files: unchanged ? [] : [{ path: file, content, mode: 0o644 }],
    // The sandbox makes HOME read-only: directories the daemon writes must exist before it starts.
    dirs: opts.sandbox
      ? [path.join(ctx.home, '.local', 'state', 'ssmtun'), path.join(ctx.home, '.cache', 'ssmtun')]
      : [],
    remove: [],
    commands: [
      systemctl('daemon-reload'),
      systemctl('enable', '--now', UNIT_NAME),
      // A changed unit only takes effect on restart; an unchanged one keeps its sessions.
      ...(opts.existing !== undefined && !unchanged ? [systemctl('restart', UNIT_NAME)] : []),
    ],
    notes: [
      `installed ${file}; it starts at login. To start it at boot, before you log in: loginctl enable-linger ${user}`,
      'logs: ssmtun service logs -f   status: ssmtun service status',
    ],
  };
}

/** Folders outside the fixed set that this config makes the daemon write (best effort: a broken config writes nothing). */
function daemonWrites(ctx: ServiceContext): string[] {
  const dirs: string[] = [];
  const cache = ctx.env.XDG_CACHE_HOME;
  if (cache && path.isAbsolute(cache)) dirs.push(path.join(cache, 'ssmtun'));
  try {
    const config = parseConfig(readFileSync(ctx.configPath, 'utf8'), ctx.configPath);
    for (const f of [config.pgpass, config.pgservice]) if (f) dirs.push(path.dirname(f));
  } catch {}
  return dirs;
}

export function linuxUninstallPlan(ctx: ServiceContext, present: boolean): ServicePlan {
  const file = unitPath(ctx.home, ctx.env);
  return {
    files: [],
    dirs: [],
    remove: present ? [file] : [],
    commands: present
      ? [{ ...systemctl('disable', '--now', UNIT_NAME), allowFail: true }, systemctl('daemon-reload')]
      : [],
    notes: present ? [`removed ${file}`] : ['not installed; nothing to do'],
  };
}

export const linuxCommands = {
  status: () => [{ ...systemctl('status', '--no-pager', '--lines=0', UNIT_NAME), allowFail: true }],
  restart: () => [systemctl('restart', UNIT_NAME)],
  logs: (follow: boolean) => [
    { argv: ['journalctl', '--user', '-u', UNIT_NAME, '--no-pager', '-n', '200', ...(follow ? ['-f'] : [])] },
  ],
};
