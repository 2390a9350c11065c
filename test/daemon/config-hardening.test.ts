/**
 * Issue 14, defect 6: config input without bounds. Each case gives a clear error (or the documented
 * acceptance) in well under a second, reading at most 1 MiB.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, validateTunnel } from '../../src/daemon/config.js';

const FILE = '/home/me/.config/ssmtun/config.toml';
const tunnel = (...extra: string[]) =>
  [
    '[tunnels.db]',
    'region = "us-east-1"',
    'target = "i-0123456789abcdef0"',
    'remote_port = 5432',
    'local_port = 15432',
    ...extra,
  ].join('\n');

function issues(text: string) {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  return [];
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T | unknown }> {
  const start = Date.now();
  const result = await fn().catch((e: unknown) => e);
  return { ms: Date.now() - start, result };
}

describe('config file bounds', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ssmtun-harden-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses /dev/zero and /dev/urandom as not regular files, at once', async () => {
    for (const dev of ['/dev/zero', '/dev/urandom']) {
      const { ms, result } = await timed(() => loadConfig(dev));
      expect(result).toBeInstanceOf(ConfigError);
      expect((result as ConfigError).issues[0].message).toBe(
        'the config path is a character device, not a regular file',
      );
      expect(ms).toBeLessThan(1000);
    }
  });

  it('refuses a FIFO without waiting for a writer', async () => {
    const fifo = path.join(dir, 'fifo.toml');
    execFileSync('mkfifo', [fifo]);
    const { ms, result } = await timed(() => loadConfig(fifo));
    expect((result as ConfigError).issues[0].message).toBe(
      'the config path is a named pipe (FIFO), not a regular file',
    );
    expect(ms).toBeLessThan(1000);
  });

  it('refuses a file over 1 MiB, without parsing it', async () => {
    const big = path.join(dir, 'big.toml');
    await writeFile(big, `${tunnel()}\n# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    const { ms, result } = await timed(() => loadConfig(big));
    expect((result as ConfigError).issues[0].message).toMatch(
      /^the config file is \d+ bytes; the limit is 1048576 \(1 MiB\)$/,
    );
    expect(ms).toBeLessThan(1000);
  });

  it('refuses a config other users can write, with chmod 600 as the fix', async () => {
    const f = path.join(dir, 'open.toml');
    await writeFile(f, tunnel());
    await chmod(f, 0o666);
    const err = (await loadConfig(f).catch((e: unknown) => e)) as ConfigError;
    expect(err.issues[0].message).toMatch(/writable by other users/);
    expect(err.issues[0].fix).toBe(`Run: chmod 600 '${f}'`);
    await chmod(f, 0o600);
    expect((await loadConfig(f)).tunnels).toHaveLength(1);
  });

  it('accepts a group-writable config (umask 002) with a warning that carries chmod 600', async () => {
    const f = path.join(dir, 'group.toml');
    await writeFile(f, tunnel());
    await chmod(f, 0o664);
    const config = await loadConfig(f);
    expect(config.tunnels).toHaveLength(1);
    expect(config.warnings).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/writable by its group/),
        fix: `Run: chmod 600 '${f}'`,
      }),
    ]);
    await chmod(f, 0o644);
    expect((await loadConfig(f)).warnings).toBeUndefined();
  });
});

describe('config value bounds', () => {
  it('refuses a 50 MB remote_host quickly (by length), and a long label', () => {
    const start = Date.now();
    const [i] = issues(tunnel(`remote_host = "${'a'.repeat(300)}"`));
    expect(i.key).toBe('tunnels.db.remote_host');
    expect(i.message).toMatch(/is 300 characters long; host names have at most 253/);
    const [j] = issues(tunnel(`remote_host = "${'b'.repeat(64)}.example.com"`));
    expect(j.message).toMatch(/label of 64 characters/);
    const [k] = issues(tunnel('remote_host = "db_1.example.com"'));
    expect(k.message).toMatch(/RFC 1123/);
    expect(Date.now() - start).toBeLessThan(1000);
  });

  it('accepts [::1] and plain IP literals as remote_host', () => {
    const cfg = parseConfig(tunnel('remote_host = "[::1]"'), FILE);
    expect(cfg.tunnels[0].remoteHost).toBe('::1');
    expect(cfg.tunnels[0].parameters.host).toEqual(['::1']);
    expect(parseConfig(tunnel('remote_host = "10.0.1.5"'), FILE).tunnels[0].remoteHost).toBe('10.0.1.5');
    expect(issues(tunnel('remote_host = "[db.example.com]"'))[0].message).toMatch(
      /not an IPv6 address|not a host name/,
    );
  });

  it('refuses NUL and control characters in any string, with the line', () => {
    const [a] = issues(tunnel('remote_host = "db\\u0000.example.com"'));
    expect(a).toMatchObject({
      line: 6,
      key: 'tunnels.db.remote_host',
      message: 'tunnels.db.remote_host contains a NUL byte',
    });
    const [b] = issues(tunnel('profile = "prod\\u001b[31m"'));
    expect(b.message).toBe('tunnels.db.profile contains control character U+001B');
    expect(() =>
      validateTunnel('api', {
        region: 'us-east-1',
        target: 'i-0123456789abcdef0',
        remote_port: 5432,
        local_port: 15000,
        remote_host: 'a\u0000b',
      }),
    ).toThrow(/NUL byte/);
  });

  it('refuses plain http:// endpoints that are not loopback; loopback and https stay accepted', () => {
    const [a] = issues(tunnel('endpoint = "http://ssm.example.com"'));
    expect(a.message).toMatch(/plain http:\/\/ to a host that is not this machine/);
    expect(a.fix).toMatch(/https:\/\/ssm\.example\.com/);
    for (const ok of [
      'http://127.0.0.1:4566',
      'http://localhost:4566',
      'http://[::1]:4566',
      'https://ssm.eu-west-1.amazonaws.com',
    ])
      expect(parseConfig(tunnel(`endpoint = "${ok}"`), FILE).tunnels[0].endpoint).toBe(ok);
  });

  it('refuses integers written as floats (1e3, 5432.0)', () => {
    const text = tunnel()
      .replace('remote_port = 5432', 'remote_port = 1e3')
      .replace('local_port = 15432', 'local_port = 15432.0');
    const found = issues(text);
    expect(found.map((i) => i.key)).toEqual(['tunnels.db.remote_port', 'tunnels.db.local_port']);
    expect(found[0]).toMatchObject({
      line: 4,
      message: 'tunnels.db.remote_port must be written as an integer, not 1000 (a float in TOML)',
      fix: 'Write remote_port = 1000.',
    });
  });

  it('reads max_buffer and max_connections, with bounds', () => {
    const t = parseConfig(tunnel('max_buffer = "16MiB"', 'max_connections = 64'), FILE).tunnels[0];
    expect(t).toMatchObject({ maxBufferBytes: 16 * 1024 * 1024, maxConnections: 64 });
    expect(parseConfig(tunnel('max_buffer = 1048576'), FILE).tunnels[0].maxBufferBytes).toBe(1048576);
    expect(issues(tunnel('max_connections = 0'))[0].message).toMatch(/from 1 to 65535/);
    expect(issues(tunnel('max_buffer = "1KiB"'))[0].message).toMatch(/from 64KiB to 4GiB/);
  });
});
