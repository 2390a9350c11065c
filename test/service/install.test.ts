/**
 * `ssmtun service install|uninstall|status|restart|logs` through the CLI command, with the platform,
 * HOME, script path and command runner injected. The Linux install is real (files in a temporary
 * HOME); only systemctl/launchctl are recorded instead of run, because a test cannot point a user
 * manager at a temporary HOME (and CI runs as root without one).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { serviceCommand } from '../../src/cli/commands/service.js';
import type { CommandRunner, ServiceContext } from '../../src/service/types.js';
import { parsePlist } from '../helpers/plist.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-svc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function harness(platform: 'linux' | 'darwin', opts: { failing?: string[] } = {}) {
  const home = mkdtempSync(path.join(tmp, 'home-'));
  const calls: string[][] = [];
  let output = '';
  const run: CommandRunner = async (argv) => {
    calls.push(argv);
    const fail = opts.failing?.includes(argv.slice(0, 3).join(' '));
    return { code: fail ? 5 : 0, stdout: fail ? '' : `${argv[0]} ok\n`, stderr: fail ? 'boom\n' : '' };
  };
  const ctx: Partial<ServiceContext> = {
    platform,
    home,
    uid: 501,
    env: { PATH: '/usr/bin:/bin', USER: 'me' },
    scriptPath: path.join(ROOT, 'src', 'cli', 'index.ts'),
    run,
    out: (s) => {
      output += s;
    },
    health: async () => ({ ok: true, version: '0.1.0', tunnels: 2 }),
  };
  return {
    home,
    calls,
    output: () => output,
    reset: () => {
      output = '';
      calls.length = 0;
    },
    cli: (...argv: string[]) => serviceCommand([...argv, '--config', path.join(home, 'cfg.toml')], ctx),
  };
}

/** Splits --dry-run output into files (`# path` + content) and commands (`$ ...`). */
function parseDryRun(out: string): { files: Map<string, string>; commands: string[] } {
  const files = new Map<string, string>();
  const commands: string[] = [];
  let current: string | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('$ ')) {
      current = undefined;
      commands.push(line.slice(2));
    } else if (line.startsWith('# /') && !files.has(line.slice(2))) {
      current = line.slice(2);
      files.set(current, '');
    } else if (current !== undefined) {
      files.set(current, `${files.get(current)}${line}\n`);
    }
  }
  for (const [k, v] of files) files.set(k, v.replace(/\n$/, ''));
  return { files, commands };
}

describe('ssmtun service (Linux, injected)', () => {
  it('--dry-run prints the unit and the commands and changes nothing', async () => {
    const h = harness('linux');
    expect(await h.cli('install', '--dry-run')).toBe(0);
    const unitFile = path.join(h.home, '.config', 'systemd', 'user', 'ssmtun.service');
    const { files, commands } = parseDryRun(h.output());
    expect([...files.keys()]).toEqual([unitFile]);
    expect(files.get(unitFile)).toMatch(/^# Written by `ssmtun service install`/);
    expect(files.get(unitFile)).toContain(
      `ExecStart=${process.execPath} ${path.join(ROOT, 'src', 'cli', 'index.ts')} daemon --config ${path.join(h.home, 'cfg.toml')}`,
    );
    expect(commands).toEqual([
      `mkdir -p ${path.join(h.home, '.local', 'state', 'ssmtun')}`,
      `mkdir -p ${path.join(h.home, '.cache', 'ssmtun')}`,
      'systemctl --user daemon-reload',
      'systemctl --user enable --now ssmtun.service',
    ]);
    expect(h.calls).toEqual([]);
    expect(existsSync(path.join(h.home, '.config'))).toBe(false);
  });

  it('a real install writes the unit into a fresh HOME (creating the directory), then enables it', async () => {
    const h = harness('linux');
    await h.cli('install', '--dry-run');
    const planned = parseDryRun(h.output());
    h.reset();
    expect(await h.cli('install')).toBe(0);
    const unitFile = path.join(h.home, '.config', 'systemd', 'user', 'ssmtun.service');
    expect(`${readFileSync(unitFile, 'utf8')}`).toBe(`${planned.files.get(unitFile)}\n`);
    expect(statSync(unitFile).mode & 0o777).toBe(0o644);
    // mkdir is done by install itself; the rest are the service manager's commands, in order.
    const mkdirs = planned.commands.filter((c) => c.startsWith('mkdir -p '));
    const managerCommands = planned.commands.filter((c) => !c.startsWith('mkdir -p '));
    expect(mkdirs).toHaveLength(2);
    for (const m of mkdirs) expect(existsSync(m.slice('mkdir -p '.length))).toBe(true);
    expect(h.calls.map((c) => c.join(' '))).toEqual(managerCommands);
    expect(h.output()).toMatch(/loginctl enable-linger me/);
    expect(h.output()).toMatch(/cfg\.toml does not exist yet; the daemon exits 78/);

    // Twice is harmless: same file, nothing rewritten, no restart.
    const mtime = statSync(unitFile).mtimeMs;
    h.reset();
    expect(await h.cli('install')).toBe(0);
    expect(statSync(unitFile).mtimeMs).toBe(mtime);
    expect(h.calls.map((c) => c.join(' '))).toEqual(managerCommands);

    // A changed unit (here: no sandbox) is rewritten and the service restarted to pick it up.
    h.reset();
    expect(await h.cli('install', '--no-sandbox')).toBe(0);
    expect(readFileSync(unitFile, 'utf8')).not.toContain('ProtectSystem');
    expect(h.calls.at(-1)).toEqual(['systemctl', '--user', 'restart', 'ssmtun.service']);

    // status: the manager's view plus /health.
    h.reset();
    expect(await h.cli('status')).toBe(0);
    expect(h.calls).toEqual([['systemctl', '--user', 'status', '--no-pager', '--lines=0', 'ssmtun.service']]);
    expect(h.output()).toMatch(/daemon: ready on 127\.0\.0\.1:7711 \(version 0\.1\.0, 2 tunnels\)/);

    h.reset();
    expect(await h.cli('restart')).toBe(0);
    expect(await h.cli('logs', '-f')).toBe(0);
    expect(h.calls).toEqual([
      ['systemctl', '--user', 'restart', 'ssmtun.service'],
      ['journalctl', '--user', '-u', 'ssmtun.service', '--no-pager', '-n', '200', '-f'],
    ]);

    // Uninstall removes exactly the unit (the directory stays) and disables the service first.
    h.reset();
    expect(await h.cli('uninstall')).toBe(0);
    expect(existsSync(unitFile)).toBe(false);
    expect(existsSync(path.dirname(unitFile))).toBe(true);
    expect(h.calls.map((c) => c.join(' '))).toEqual([
      'systemctl --user disable --now ssmtun.service',
      'systemctl --user daemon-reload',
    ]);
    h.reset();
    expect(await h.cli('uninstall')).toBe(0);
    expect(h.calls).toEqual([]);
  });

  it('refuses to overwrite or delete a unit it did not write', async () => {
    const h = harness('linux');
    const unitFile = path.join(h.home, '.config', 'systemd', 'user', 'ssmtun.service');
    mkdirSync(path.dirname(unitFile), { recursive: true });
    writeFileSync(unitFile, '[Service]\nExecStart=/usr/bin/true\n');
    await expect(h.cli('install')).rejects.toMatchObject({ code: 'FOREIGN_SERVICE_FILE' });
    await expect(h.cli('uninstall')).rejects.toMatchObject({ code: 'FOREIGN_SERVICE_FILE' });
    expect(readFileSync(unitFile, 'utf8')).toBe('[Service]\nExecStart=/usr/bin/true\n');
  });

  it('a failing systemctl fails the install with its message and a fix', async () => {
    const h = harness('linux', { failing: ['systemctl --user enable'] });
    await expect(h.cli('install')).rejects.toMatchObject({
      code: 'COMMAND_FAILED',
      message: expect.stringMatching(/enable --now ssmtun.service exited 5: boom/),
      fix: expect.stringMatching(/user manager/),
    });
  });
});

describe('ssmtun service (macOS, injected)', () => {
  it('--dry-run prints the plist and the launchctl commands', async () => {
    const h = harness('darwin');
    expect(await h.cli('install', '--dry-run')).toBe(0);
    const plist = path.join(h.home, 'Library', 'LaunchAgents', 'dev.ssmtun.daemon.plist');
    const { files, commands } = parseDryRun(h.output());
    expect([...files.keys()]).toEqual([plist]);
    const p = parsePlist(files.get(plist)!) as Record<string, unknown>;
    expect((p.ProgramArguments as string[])[0]).toBe(process.execPath);
    expect((p.EnvironmentVariables as Record<string, string>).HOME).toBe(h.home);
    expect(commands).toEqual([
      `mkdir -p ${path.join(h.home, 'Library', 'Logs', 'ssmtun')}`,
      'launchctl bootout gui/501/dev.ssmtun.daemon',
      'launchctl enable gui/501/dev.ssmtun.daemon',
      `launchctl bootstrap gui/501 ${plist}`,
    ]);
    expect(h.calls).toEqual([]);
  });

  it('install, again, status, restart, logs and uninstall run the launchctl commands in order', async () => {
    const h = harness('darwin', { failing: ['launchctl bootout gui/501/dev.ssmtun.daemon'] });
    const plist = path.join(h.home, 'Library', 'LaunchAgents', 'dev.ssmtun.daemon.plist');
    expect(await h.cli('install')).toBe(0); // bootout of a not-loaded agent fails, and that is fine
    expect(existsSync(plist)).toBe(true);
    expect(existsSync(path.join(h.home, 'Library', 'Logs', 'ssmtun'))).toBe(true);
    h.reset();
    expect(await h.cli('install')).toBe(0);
    expect(h.calls.map((c) => c.join(' '))).toEqual([
      'launchctl enable gui/501/dev.ssmtun.daemon',
      `launchctl bootstrap gui/501 ${plist}`,
    ]);
    h.reset();
    await h.cli('status');
    await h.cli('restart');
    await h.cli('logs');
    expect(h.calls.map((c) => c.join(' '))).toEqual([
      'launchctl print gui/501/dev.ssmtun.daemon',
      'launchctl kickstart -k gui/501/dev.ssmtun.daemon',
      `tail -n 200 ${path.join(h.home, 'Library', 'Logs', 'ssmtun', 'ssmtun.log')}`,
    ]);
    h.reset();
    expect(await h.cli('uninstall')).toBe(0);
    expect(existsSync(plist)).toBe(false);
    expect(h.calls.map((c) => c.join(' '))).toEqual(['launchctl bootout gui/501/dev.ssmtun.daemon']);
  });
});

describe('which script the service runs', () => {
  it('a source checkout runs its compiled dist/cli/index.js, and is refused until built', async () => {
    const { resolveScript } = await import('../../src/service/paths.js');
    const root = mkdtempSync(path.join(tmp, 'checkout-'));
    mkdirSync(path.join(root, 'src', 'cli'), { recursive: true });
    writeFileSync(path.join(root, 'src', 'cli', 'index.ts'), '');
    expect(() => resolveScript(path.join(root, 'src', 'cli', 'index.ts'))).toThrow(/no compiled copy/);
    mkdirSync(path.join(root, 'dist', 'cli'), { recursive: true });
    writeFileSync(path.join(root, 'dist', 'cli', 'index.js'), '');
    expect(resolveScript(path.join(root, 'src', 'cli', 'index.ts'))).toBe(
      path.join(root, 'dist', 'cli', 'index.js'),
    );
  });

  it('a bin symlink (npm install -g) resolves to the real script', async () => {
    const { resolveScript } = await import('../../src/service/paths.js');
    const { symlinkSync } = await import('node:fs');
    const prefix = mkdtempSync(path.join(tmp, 'prefix-'));
    const real = path.join(prefix, 'lib', 'node_modules', 'ssmtun', 'dist', 'cli', 'index.js');
    mkdirSync(path.dirname(real), { recursive: true });
    writeFileSync(real, '#!/usr/bin/env node\n');
    mkdirSync(path.join(prefix, 'bin'));
    symlinkSync('../lib/node_modules/ssmtun/dist/cli/index.js', path.join(prefix, 'bin', 'ssmtun'));
    expect(resolveScript(path.join(prefix, 'bin', 'ssmtun'))).toBe(real);
  });
});
