import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linuxInstallPlan } from '../../src/service/systemd.js';
import type { ServiceContext } from '../../src/service/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-writable-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function plan(configText: string): string {
  const configPath = path.join(dir, `config-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(configPath, configText);
  const ctx = {
    platform: 'linux',
    home: path.join(dir, 'home'),
    uid: 1000,
    env: { PATH: '/usr/bin' },
    nodePath: process.execPath,
    scriptPath: '/opt/ssmtun/dist/cli/index.js',
    configPath,
    apiPort: 7711,
    version: 'test',
  } as unknown as ServiceContext;
  return linuxInstallPlan(ctx, { sandbox: true }).files[0].content;
}

describe('the sandboxed unit lets the daemon write what its config asks it to keep', () => {
  it('always the CA bundle cache; the pgpass and pg_service folders only when the daemon keeps them', () => {
    const without = plan('');
    expect(without).toMatch(/^ReadWritePaths=.* -%h\/\.cache\/ssmtun /m);
    expect(without).not.toContain('pgpass');
    const withFiles = plan(
      `[daemon]\npgpass = "${dir}/secrets dir/pgpass"\npgservice = "${dir}/svc/pg_service.conf"\n`,
    );
    expect(withFiles).toContain(`ReadWritePaths="-${dir}/secrets dir" -${dir}/svc`);
  });
});
