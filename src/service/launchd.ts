/**
 * macOS: a LaunchAgent. launchd gives an agent no login-shell PATH, so ProgramArguments are absolute
 * and PATH/HOME are set explicitly. KeepAlive {SuccessfulExit: false} restarts after a failure (exit 1)
 * but not after a clean stop; ThrottleInterval spaces the restarts.
 */
import path from 'node:path';
import { servicePath } from './paths.js';
import { MARKER, type ServiceContext, type ServicePlan } from './types.js';

export const LABEL = 'dev.ssmtun.daemon';

export interface PlistOptions {
  nodePath: string;
  scriptPath: string;
  configPath: string;
  home: string;
  path: string;
  logDir: string;
  version: string;
  /** An extra comment line at the top (the documented example says it is one). */
  note?: string;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const str = (s: string) => `<string>${xml(s)}</string>`;

export function renderPlist(o: PlistOptions): string {
  const log = path.posix.join(o.logDir, 'ssmtun.log');
  const args = [o.nodePath, o.scriptPath, 'daemon', '--config', o.configPath];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    `<!-- ${MARKER} (ssmtun ${xml(o.version)}); \`ssmtun service uninstall\` removes it.`,
    ...(o.note ? [`     ${xml(o.note)}`] : []),
    `     Logs: ${xml(log)}   Status: ssmtun service status -->`,
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key>${str(LABEL)}`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...args.map((a) => `    ${str(a)}`),
    '  </array>',
    '  <key>EnvironmentVariables</key>',
    '  <dict>',
    `    <key>HOME</key>${str(o.home)}`,
    `    <key>PATH</key>${str(o.path)}`,
    '  </dict>',
    `  <key>WorkingDirectory</key>${str(o.home)}`,
    '  <key>RunAtLoad</key><true/>',
    '  <key>KeepAlive</key>',
    '  <dict><key>SuccessfulExit</key><false/></dict>',
    '  <key>ThrottleInterval</key><integer>10</integer>',
    '  <key>ExitTimeOut</key><integer>5</integer>',
    `  <key>ProcessType</key>${str('Background')}`,
    '  <key>Umask</key><integer>63</integer>',
    `  <key>StandardOutPath</key>${str(log)}`,
    `  <key>StandardErrorPath</key>${str(log)}`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

export function plistPath(home: string): string {
  return path.join(home, 'Library', 'LaunchAgents', `${LABEL}.plist`);
}

export function logDir(home: string): string {
  return path.join(home, 'Library', 'Logs', 'ssmtun');
}

const domain = (uid: number) => `gui/${uid}`;
const service = (uid: number) => `gui/${uid}/${LABEL}`;

export function darwinInstallPlan(ctx: ServiceContext, opts: { existing?: string }): ServicePlan {
  const file = plistPath(ctx.home);
  const content = renderPlist({
    nodePath: ctx.nodePath,
    scriptPath: ctx.scriptPath,
    configPath: ctx.configPath,
    home: ctx.home,
    path: servicePath(ctx.env, ctx.home, ctx.nodePath, ['/opt/homebrew/bin']),
    logDir: logDir(ctx.home),
    version: ctx.version,
  });
  const unchanged = opts.existing === content;
  return {
    files: unchanged ? [] : [{ path: file, content, mode: 0o644 }],
    dirs: [logDir(ctx.home)],
    remove: [],
    commands: unchanged
      ? // Same file: a loaded agent stays as it is (bootstrap then fails with "already loaded", harmlessly).
        [
          { argv: ['launchctl', 'enable', service(ctx.uid)] },
          { argv: ['launchctl', 'bootstrap', domain(ctx.uid), file], allowFail: true },
        ]
      : [
          // Replacing a loaded agent: unload the old definition first (fails harmlessly when none is loaded).
          { argv: ['launchctl', 'bootout', service(ctx.uid)], allowFail: true },
          { argv: ['launchctl', 'enable', service(ctx.uid)] },
          { argv: ['launchctl', 'bootstrap', domain(ctx.uid), file] },
        ],
    notes: [`installed ${file}; it starts at login`, `logs: ${path.join(logDir(ctx.home), 'ssmtun.log')}`],
  };
}

export function darwinUninstallPlan(ctx: ServiceContext, present: boolean): ServicePlan {
  const file = plistPath(ctx.home);
  return {
    files: [],
    dirs: [],
    remove: present ? [file] : [],
    commands: present ? [{ argv: ['launchctl', 'bootout', service(ctx.uid)], allowFail: true }] : [],
    notes: present
      ? [`removed ${file} (logs stay in ${logDir(ctx.home)})`]
      : ['not installed; nothing to do'],
  };
}

export const darwinCommands = {
  status: (uid: number) => [{ argv: ['launchctl', 'print', service(uid)], allowFail: true }],
  restart: (uid: number) => [{ argv: ['launchctl', 'kickstart', '-k', service(uid)] }],
  logs: (home: string, follow: boolean) => [
    { argv: ['tail', '-n', '200', ...(follow ? ['-F'] : []), path.join(logDir(home), 'ssmtun.log')] },
  ],
};
