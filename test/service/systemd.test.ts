/**
 * The rendered systemd user unit, checked by systemd itself (`systemd-analyze --user verify`) and by
 * reading it back: absolute ExecStart paths that exist, restart policy, hardening, PATH.
 */
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { servicePath } from '../../src/service/paths.js';
import { renderUnit, type UnitOptions } from '../../src/service/systemd.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function which(bin: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':'))
    if (existsSync(path.join(d, bin))) return path.join(d, bin);
  return undefined;
}

/** Parses `Key=Value` lines per section; repeated keys keep every value. */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      section = s[1];
      out[section] = {};
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (!kv) throw new Error(`not a unit line: ${line}`);
    out[section][kv[1]] = [...(out[section][kv[1]] ?? []), kv[2]];
  }
  return out;
}

/** systemd's own quoting rules for ExecStart words (double quotes, backslash escapes, %% and $$). */
function execWords(value: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    const w = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
    words.push(w.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}

const SCRIPT_DIR = path.join(tmp, 'prefix with space', 'lib', 'node_modules', 'ssmtun', 'dist', 'cli');
mkdirSync(SCRIPT_DIR, { recursive: true });
const script = path.join(SCRIPT_DIR, 'index.js');
copyFileSync(path.join(ROOT, 'src', 'cli', 'index.ts'), script);

function options(over: Partial<UnitOptions> = {}): UnitOptions {
  return {
    nodePath: process.execPath,
    scriptPath: script,
    configPath: path.join(tmp, 'cfg 100%', 'config.toml'),
    path: servicePath(process.env, os.homedir(), process.execPath),
    version: '0.1.0',
    sandbox: true,
    ...over,
  };
}

async function verify(text: string): Promise<{ code: number; output: string }> {
  const bin = which('systemd-analyze');
  if (!bin) {
    // CI installs systemd (.ci/run); only a developer machine without it may get this far, and then the
    // test fails with the fix rather than pretending the unit was checked.
    throw new Error('systemd-analyze is missing: apt-get install -y systemd (CI installs it in .ci/run)');
  }
  const dir = mkdtempSync(path.join(tmp, 'verify-'));
  const runtime = path.join(dir, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  const file = path.join(dir, 'ssmtun.service');
  writeFileSync(file, text);
  try {
    const r = await run(bin, ['--user', 'verify', file], {
      env: { ...process.env, XDG_RUNTIME_DIR: runtime, SYSTEMD_LOG_COLOR: '0' },
    });
    return { code: 0, output: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, output: err.stdout + err.stderr };
  }
}

describe('systemd user unit', () => {
  it('passes systemd-analyze verify with no warning, with and without the sandbox', async () => {
    for (const sandbox of [true, false]) {
      const r = await verify(renderUnit(options({ sandbox })));
      expect(r, r.output).toEqual({ code: 0, output: '' });
    }
  });

  it('the check is real: a missing binary and an unknown key are both reported', async () => {
    const missing = await verify(renderUnit(options({ nodePath: path.join(tmp, 'no-such-node') })));
    expect(missing.code).not.toBe(0);
    expect(missing.output).toMatch(/no-such-node/);
    const typo = await verify(
      renderUnit(options()).replace('Restart=on-failure', 'Restart=on-failure\nRestrat=always'),
    );
    expect(typo.output).toMatch(/Unknown key.*Restrat/);
  });

  it('ExecStart is absolute node + the installed script + daemon --config, all paths existing', () => {
    const o = options();
    const unit = parseUnit(renderUnit(o));
    const words = execWords(unit.Service.ExecStart[0]);
    expect(words).toEqual([process.execPath, script, 'daemon', '--config', o.configPath]);
    expect(path.isAbsolute(words[0]) && existsSync(words[0])).toBe(true);
    expect(path.isAbsolute(words[1]) && existsSync(words[1])).toBe(true);
    expect(path.isAbsolute(words[4])).toBe(true);
  });

  it('restarts on failure with a start limit, not after a config error, and is hardened', () => {
    const unit = parseUnit(renderUnit(options()));
    expect(unit.Service).toMatchObject({
      Type: ['exec'],
      Restart: ['on-failure'],
      RestartSec: ['5'],
      RestartPreventExitStatus: ['78'],
      NoNewPrivileges: ['yes'],
      PrivateTmp: ['yes'],
      ProtectSystem: ['strict'],
      ProtectHome: ['read-only'],
      StateDirectory: ['ssmtun'],
      RuntimeDirectory: ['ssmtun'],
      StandardOutput: ['journal'],
      ExecReload: ['kill -HUP $MAINPID'],
    });
    expect(unit.Unit).toMatchObject({ StartLimitIntervalSec: ['300'], StartLimitBurst: ['5'] });
    expect(unit.Install.WantedBy).toEqual(['default.target']);
    const rw = unit.Service.ReadWritePaths[0];
    expect(rw).toContain('%h/.aws/sso/cache');
    expect(rw).toContain(`-${path.join(tmp, 'cfg 100%%')}`);
    const noSandbox = parseUnit(renderUnit(options({ sandbox: false })));
    expect(noSandbox.Service.ProtectSystem).toBeUndefined();
    expect(noSandbox.Service.NoNewPrivileges).toEqual(['yes']);
  });

  it('PATH holds node, the credential_process helper and the system dirs, not relative entries', () => {
    const home = mkdtempSync(path.join(tmp, 'home-'));
    const helperDir = path.join(home, 'tools', 'bin');
    mkdirSync(helperDir, { recursive: true });
    writeFileSync(path.join(helperDir, 'aws-vault'), '#!/bin/sh\n');
    chmodSync(path.join(helperDir, 'aws-vault'), 0o755);
    mkdirSync(path.join(home, '.aws'));
    writeFileSync(
      path.join(home, '.aws', 'config'),
      '[profile prod]\ncredential_process = aws-vault export --format=json prod\n[profile abs]\ncredential_process = "/opt/granted/bin/assume" x\n',
    );
    const env = { PATH: `relative/bin:${helperDir}:/usr/bin` };
    const p = servicePath(env, home, process.execPath).split(':');
    expect(p[0]).toBe(path.dirname(process.execPath));
    expect(p).toContain(helperDir);
    expect(p).toContain('/opt/granted/bin');
    expect(p).toContain('/usr/bin');
    expect(p).toContain('/bin');
    expect(p.some((d) => !path.isAbsolute(d))).toBe(false);
    expect(new Set(p).size).toBe(p.length);
    const unit = parseUnit(renderUnit(options({ path: p.join(':') })));
    expect(execWords(unit.Service.Environment[0])).toEqual([`PATH=${p.join(':')}`]);
  });
});

describe('documented examples', () => {
  it('systemd/ and launchd/ are exactly what the templates render (npm run service-examples)', async () => {
    const { exampleFiles } = await import('../../src/service/examples.js');
    const { readFileSync } = await import('node:fs');
    for (const [rel, text] of Object.entries(exampleFiles())) {
      expect(readFileSync(path.join(ROOT, rel), 'utf8'), rel).toBe(text);
    }
    const unit = exampleFiles()['systemd/ssmtun.service'];
    expect(parseUnit(unit).Service.ExecStart[0]).toContain('--config %h/.config/ssmtun/config.toml');
  });
});
