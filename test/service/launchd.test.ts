/**
 * The LaunchAgent, parsed as a property list (`plutil -lint` too where it exists): required keys,
 * absolute ProgramArguments, PATH/HOME, restart policy, log paths; XML special characters escaped.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { renderPlist } from '../../src/service/launchd.js';
import { parsePlist } from '../helpers/plist.js';

const run = promisify(execFile);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-plist-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const home = '/Users/A & B <x>';
const opts = {
  nodePath: '/opt/homebrew/bin/node',
  scriptPath: '/opt/homebrew/lib/node_modules/ssmtun/dist/cli/index.js',
  configPath: `${home}/.config/ssmtun/config.toml`,
  home,
  path: '/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin',
  logDir: `${home}/Library/Logs/ssmtun`,
  version: '0.1.0',
};

describe('LaunchAgent plist', () => {
  it('is a property list with the keys launchd needs and absolute paths', async () => {
    const text = renderPlist(opts);
    const p = parsePlist(text) as Record<string, unknown>;
    expect(p.Label).toBe('dev.ssmtun.daemon');
    expect(p.ProgramArguments).toEqual([
      opts.nodePath,
      opts.scriptPath,
      'daemon',
      '--config',
      opts.configPath,
    ]);
    for (const a of [0, 1, 4]) expect(path.isAbsolute((p.ProgramArguments as string[])[a])).toBe(true);
    expect(p.RunAtLoad).toBe(true);
    expect(p.KeepAlive).toEqual({ SuccessfulExit: false });
    expect(p.ThrottleInterval).toBe(10);
    expect(p.EnvironmentVariables).toEqual({ HOME: home, PATH: opts.path });
    expect(p.StandardOutPath).toBe(`${home}/Library/Logs/ssmtun/ssmtun.log`);
    expect(p.StandardErrorPath).toBe(p.StandardOutPath);
    expect(p.Umask).toBe(63);
    if (existsSync('/usr/bin/plutil')) {
      const file = path.join(tmp, 'dev.ssmtun.daemon.plist');
      writeFileSync(file, text);
      await run('/usr/bin/plutil', ['-lint', file]);
    }
  });

  it('the parser is strict: broken structure and unescaped characters are refused', () => {
    const text = renderPlist(opts);
    expect(() => parsePlist(text.replace('<key>RunAtLoad</key>', ''))).toThrow(/expected <key>/);
    expect(() => parsePlist(text.replace('<string>/Users/A &amp;', '<string>/Users/A &'))).toThrow(/bare &/);
    expect(() => parsePlist(text.replace('</array>', ''))).toThrow();
    expect(() => parsePlist(text.replace('<true/>', '<yes/>'))).toThrow(/unknown element/);
    expect(() => parsePlist(text.replace('<key>Umask</key>', '<key>Label</key>'))).toThrow(/duplicate key/);
  });
});
