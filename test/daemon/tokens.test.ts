import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/daemon/config.js';
import { TOKEN_LIFETIME_MS, TOKEN_REFRESH_BEFORE_MS, TokenService } from '../../src/daemon/tokens.js';

const creds = {
  accessKeyId: 'AKIASIMULATOR0000001',
  secretAccessKey: 'ssmtun-simulator-secret-access-key-0001',
};

function tunnels(extra = 'db_user = "app_readonly"\n') {
  return parseConfig(
    `[tunnels.orders]
region = "eu-west-1"
target = "i-0123456789abcdef0"
remote_host = "orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com"
remote_port = 5432
local_port = 15432
${extra}
[tunnels.nouser]
region = "eu-west-1"
target = "i-0123456789abcdef0"
remote_host = "orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com"
remote_port = 5432
local_port = 15433
`,
    '/home/me/.config/ssmtun/config.toml',
  ).tunnels;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('RDS auth tokens', () => {
  it('are signed by the SDK for the real endpoint, port, user and region, never for the local port', async () => {
    const svc = new TokenService({ credentials: async () => creds });
    const [orders] = tunnels();
    const t = await svc.get(orders);
    const url = new URL(`https://${t.token}`);
    expect(url.host).toBe('orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com:5432');
    expect(url.searchParams.get('Action')).toBe('connect');
    expect(url.searchParams.get('DBUser')).toBe('app_readonly');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(
      /^AKIASIMULATOR0000001\/\d{8}\/eu-west-1\/rds-db\/aws4_request$/,
    );
    expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    expect(t.token).not.toContain('15432');
    expect(t.expiresAt.getTime() - t.issuedAt.getTime()).toBe(TOKEN_LIFETIME_MS);
    svc.stop();
  });

  it('are reused until 5 minutes before expiry, then re-signed (also in the background while used)', async () => {
    vi.useFakeTimers({ now: new Date('2026-12-01T10:00:00Z') });
    let signed = 0;
    const svc = new TokenService({
      credentials: async () => creds,
      sign: async (p) => `${p.hostname}:${p.port}/?n=${++signed}`,
    });
    const [orders] = tunnels();
    const [a, b] = await Promise.all([svc.get(orders), svc.get(orders)]);
    expect(a.token).toBe(b.token);
    expect(signed).toBe(1);
    await vi.advanceTimersByTimeAsync(TOKEN_LIFETIME_MS - TOKEN_REFRESH_BEFORE_MS - 60_000);
    expect((await svc.get(orders)).token).toBe(a.token);
    // The background refresh fires before the reuse window closes.
    await vi.advanceTimersByTimeAsync(45_000);
    expect(signed).toBe(2);
    const c = await svc.get(orders);
    expect(c.token).not.toBe(a.token);
    expect(c.expiresAt.getTime()).toBeGreaterThan(a.expiresAt.getTime());
    svc.stop();
  });

  it('end no later than the temporary AWS credentials they are signed with', async () => {
    const svc = new TokenService({
      credentials: async () => ({
        ...creds,
        sessionToken: 'x',
        expiration: new Date(Date.now() + 7 * 60_000),
      }),
    });
    const t = await svc.get(tunnels()[0]);
    expect(t.expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + 7 * 60_000);
    expect(new URL(`https://${t.token}`).searchParams.get('X-Amz-Security-Token')).toBe('x');
    svc.stop();
  });

  it('are refused for a tunnel without db_user with the key to add and where', async () => {
    const svc = new TokenService({ credentials: async () => creds });
    const nouser = tunnels()[1];
    await expect(svc.get(nouser)).rejects.toMatchObject({
      code: 'DB_USER_MISSING',
      fix: expect.stringMatching(
        /add db_user = .* to \[tunnels\.nouser\] \(\/home\/me\/\.config\/ssmtun\/config\.toml:9\)/,
      ),
    });
    svc.stop();
  });
});
