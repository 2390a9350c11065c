import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/daemon/config.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-cfgdb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'config.toml');
writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');

const base = `[tunnels.orders]
region = "eu-west-1"
target = "i-0123456789abcdef0"
remote_host = "orders.cluster-abc.eu-west-1.rds.amazonaws.com"
remote_port = 5432
local_port = 15432
`;

function issues(text: string): string[] {
  try {
    parseConfig(text, file);
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split('\n');
    throw e;
  }
  return [];
}

describe('database keys in the config', () => {
  it('default to verify-full and the shipped bundle; ca_bundle resolves relative to the config file', () => {
    const [t] = parseConfig(base, file).tunnels;
    expect(t.sslmode).toBe('verify-full');
    expect(t.caBundle).toBeUndefined();
    const [u] = parseConfig(`${base}ca_bundle = "ca.pem"\nsslmode = "verify-ca"\n`, file).tunnels;
    expect(u.caBundle).toBe(path.join(dir, 'ca.pem'));
    expect(u.sslmode).toBe('verify-ca');
  });

  it('point at file:line with the fix for a missing bundle and an unknown sslmode', () => {
    expect(issues(`${base}ca_bundle = "nope.pem"\n`)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${file}:7: ca_bundle "nope.pem" in \\[tunnels.orders\\] does not exist .*remove the key to use the RDS global bundle`,
        ),
      ),
    ]);
    expect(issues(`${base}sslmode = "verify_full"\n`)).toEqual([
      expect.stringContaining(
        `${file}:7: sslmode "verify_full" in [tunnels.orders] is not a libpq sslmode. Did you mean sslmode = "verify-full"?`,
      ),
    ]);
    expect(issues(`${base}sslrootcert = "ca.pem"\n`)[0]).toContain('Did you mean ca_bundle?');
  });

  it('take [daemon] pgpass as true, false or a path', () => {
    expect(parseConfig(`[daemon]\npgpass = true\n${base}`, file).pgpass).toMatch(/\.pgpass$|pgpass/);
    expect(parseConfig(`[daemon]\npgpass = false\n${base}`, file).pgpass).toBeUndefined();
    expect(parseConfig(`[daemon]\npgpass = "pw"\n${base}`, file).pgpass).toBe(path.join(dir, 'pw'));
    expect(issues(`[daemon]\npgpass = 1\n${base}`)[0]).toContain(
      `${file}:2: pgpass in [daemon] must be true, false or a file path`,
    );
  });
});
