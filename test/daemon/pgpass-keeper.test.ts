import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/daemon/config.js';
import { readBlockLines } from '../../src/daemon/pgpass.js';
import { PgpassKeeper } from '../../src/daemon/pgpass-keeper.js';
import { TOKEN_LIFETIME_MS, TokenService } from '../../src/daemon/tokens.js';

const creds = {
  accessKeyId: 'AKIASIMULATOR0000001',
  secretAccessKey: 'ssmtun-simulator-secret-access-key-0001',
};
const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function expiryOf(line: string): number {
  const token = line.split(':').slice(4).join(':').replace(/\\(.)/g, '$1');
  const u = new URL(`https://${token}`);
  const d = u.searchParams.get('X-Amz-Date')!;
  const iso = `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`;
  return Date.parse(iso) + Number(u.searchParams.get('X-Amz-Expires')) * 1000;
}

describe('the pgpass keeper', () => {
  it('replaces every entry with a freshly signed one before the old token expires, around other lines', async () => {
    vi.useFakeTimers({
      now: new Date('2026-12-01T10:00:00Z'),
      toFake: ['setTimeout', 'clearTimeout', 'Date'],
    });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-keeper-'));
    dirs.push(dir);
    const file = path.join(dir, 'pgpass');
    const mine = 'db.example.com:5432:*:me:my\\:secret\n';
    writeFileSync(file, mine, { mode: 0o600 });
    const { tunnels } = parseConfig(
      `[tunnels.orders]\nregion = "eu-west-1"\ntarget = "i-0123456789abcdef0"\n` +
        `remote_host = "orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com"\nremote_port = 5432\n` +
        `local_port = 15432\ndb_user = "app_readonly"\ndb_name = "orders"\n`,
      path.join(dir, 'config.toml'),
    );
    const tokens = new TokenService({ credentials: async () => creds });
    const keeper = new PgpassKeeper({
      tunnels: () => tunnels,
      tokens,
      pgpassFile: file,
      logger: pino({ level: 'silent' }),
    });
    await keeper.start();
    const first = readBlockLines(readFileSync(file, 'utf8'))!;
    expect(first).toHaveLength(3);
    const firstExpiry = expiryOf(first[0]);
    expect(firstExpiry).toBe(Date.parse('2026-12-01T10:15:00Z'));

    // Walk the clock forward minute by minute over two token lifetimes: the file must never hold an
    // expired (or about to expire) token, and it must change before the first one expires.
    let replacedAt: number | undefined;
    for (let t = 0; t < (2 * TOKEN_LIFETIME_MS) / 60_000; t++) {
      await vi.advanceTimersByTimeAsync(60_000);
      const lines = readBlockLines(readFileSync(file, 'utf8'))!;
      expect(lines).toHaveLength(3);
      expect(expiryOf(lines[0]) - Date.now()).toBeGreaterThan(60_000);
      if (replacedAt === undefined && lines[0] !== first[0]) replacedAt = Date.now();
    }
    expect(replacedAt).toBeDefined();
    expect(replacedAt!).toBeLessThan(firstExpiry);
    expect(readFileSync(file, 'utf8').endsWith(mine)).toBe(true);
    await keeper.stop();
    tokens.stop();
  });
});
