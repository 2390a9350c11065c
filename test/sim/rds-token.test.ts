import { Signer } from '@aws-sdk/rds-signer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CREDENTIALS, DEFAULT_REGION } from '../../src/sim/index.js';
import { type RdsTokenCheck, verifyRdsToken } from '../../src/sim/rds-token.js';

const HOST = `orders.cluster-c0ffee.${DEFAULT_REGION}.rds.amazonaws.com`;
const endpoint = { host: HOST, port: 5432, region: DEFAULT_REGION };
const credentials = [DEFAULT_CREDENTIALS];

function mint(
  o: {
    hostname?: string;
    port?: number;
    username?: string;
    region?: string;
    key?: { accessKeyId: string; secretAccessKey: string };
  } = {},
) {
  return new Signer({
    hostname: o.hostname ?? HOST,
    port: o.port ?? 5432,
    username: o.username ?? 'app_user',
    region: o.region ?? DEFAULT_REGION,
    credentials: o.key ?? DEFAULT_CREDENTIALS,
  }).getAuthToken();
}

function check(token: string, extra: Partial<RdsTokenCheck> = {}) {
  return verifyRdsToken({ token, user: 'app_user', endpoint, credentials, ...extra });
}

describe('verifyRdsToken with tokens from @aws-sdk/rds-signer', () => {
  it('accepts a token signed for this endpoint, user and region', async () => {
    const token = await mint();
    const before = Date.now();
    const r = await check(token);
    expect(r).toMatchObject({ ok: true, accessKeyId: DEFAULT_CREDENTIALS.accessKeyId });
    if (r.ok) {
      expect(r.expiresAt).toBeGreaterThan(before + 890_000);
      expect(r.expiresAt).toBeLessThanOrEqual(before + 900_000 + 1000);
    }
  });

  it('accepts a user name that needs percent-encoding', async () => {
    const token = await mint({ username: 'app user+1@x' });
    expect(token).toContain('DBUser=app%20user%2B1%40x');
    expect(await check(token, { user: 'app user+1@x' })).toMatchObject({ ok: true });
  });

  it('accepts the host name in another case (DNS names are case-insensitive)', async () => {
    expect(await check(await mint({ hostname: HOST.toUpperCase() }))).toMatchObject({ ok: true });
  });

  it('refuses a token for another host, saying which', async () => {
    const r = await check(await mint({ hostname: '127.0.0.1' }));
    expect(r).toEqual({
      ok: false,
      reason: 'wrong-host',
      detail: `IAM token signed for host 127.0.0.1:5432, not ${HOST}:5432`,
    });
  });

  it('refuses a token for another port (e.g. the local tunnel port)', async () => {
    const r = await check(await mint({ port: 15432 }));
    expect(r).toMatchObject({ ok: false, reason: 'wrong-port' });
    expect(!r.ok && r.detail).toContain(':15432');
  });

  it('refuses a token for another user', async () => {
    expect(await check(await mint({ username: 'admin' }))).toMatchObject({ ok: false, reason: 'wrong-user' });
  });

  it('refuses a token signed for another region', async () => {
    expect(await check(await mint({ region: 'eu-west-1' }))).toMatchObject({
      ok: false,
      reason: 'wrong-region',
    });
  });

  it('refuses a token signed with an unknown access key', async () => {
    const r = await check(
      await mint({
        key: { accessKeyId: 'AKIAOTHER00000000001', secretAccessKey: DEFAULT_CREDENTIALS.secretAccessKey },
      }),
    );
    expect(r).toMatchObject({ ok: false, reason: 'unknown-key' });
  });

  it('refuses a token signed with the right key id but another secret', async () => {
    const r = await check(await mint({ key: { ...DEFAULT_CREDENTIALS, secretAccessKey: 'not-the-secret' } }));
    expect(r).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('refuses a token with one signature character changed', async () => {
    const token = await mint();
    const tampered = token.replace(
      /(X-Amz-Signature=[0-9a-f]{10})([0-9a-f])/,
      (_m, head: string, c: string) => head + (c === '0' ? '1' : '0'),
    );
    expect(tampered).not.toBe(token);
    expect(await check(tampered)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('refuses a token whose DBUser was swapped after signing', async () => {
    const token = (await mint()).replace('DBUser=app_user', 'DBUser=admin');
    expect(await check(token, { user: 'admin' })).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('refuses an expired token (fake clock 16 minutes later)', async () => {
    const token = await mint();
    const r = await check(token, { now: Date.now() + 16 * 60_000 });
    expect(r).toMatchObject({ ok: false, reason: 'expired' });
    expect(!r.ok && r.detail).toMatch(/^IAM token expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    // Still fine 14 minutes later.
    expect(await check(token, { now: Date.now() + 14 * 60_000 })).toMatchObject({ ok: true });
  });

  it('refuses a token dated more than 5 minutes in the future', async () => {
    const r = await check(await mint(), { now: Date.now() - 6 * 60_000 });
    expect(r).toMatchObject({ ok: false, reason: 'future' });
  });

  it('refuses a lifetime above 900 s and other malformed tokens', async () => {
    const token = await mint();
    expect(await check(token.replace('X-Amz-Expires=900', 'X-Amz-Expires=3600'))).toMatchObject({
      ok: false,
      reason: 'malformed',
    });
    for (const bad of ['', 'hunter2', `${HOST}:5432`, `${HOST}:5432/?Action=connect`, `${token}&Extra=1`]) {
      expect(await check(bad)).toMatchObject({ ok: false, reason: 'malformed' });
    }
    expect(await check(token.replace('Action=connect', 'Action=admin'))).toMatchObject({
      reason: 'malformed',
    });
  });

  it('checks the session token of temporary credentials', async () => {
    const temp = {
      accessKeyId: 'ASIATEMP000000000001',
      secretAccessKey: 'temp-secret',
      sessionToken: 'sess-1',
    };
    const signed = await new Signer({
      hostname: HOST,
      port: 5432,
      username: 'app_user',
      region: DEFAULT_REGION,
      credentials: temp,
    }).getAuthToken();
    expect(signed).toContain('X-Amz-Security-Token=sess-1');
    expect(await check(signed, { credentials: [temp] })).toMatchObject({
      ok: true,
      accessKeyId: temp.accessKeyId,
    });
    expect(await check(signed, { credentials: [{ ...temp, sessionToken: 'sess-2' }] })).toMatchObject({
      reason: 'unknown-key',
    });
  });

  it('accepts no one-character change of a valid token unless it means the same thing', async () => {
    const token = await mint();
    /** What a token says: host (DNS, any case), then the percent-decoded query, order-free. */
    const meaning = (t: string) => {
      const [authority, query] = t.split('/?');
      const params = query.split('&').map((p) => p.split('=').map(decodeURIComponent).join('='));
      return `${authority.toLowerCase()} ${params.sort().join('&')}`;
    };
    const alphabet = 'abcdefABCDEF0123456789%:/?&=._-xZ';
    await fc.assert(
      fc.asyncProperty(fc.nat(token.length - 1), fc.constantFrom(...alphabet), async (at, c) => {
        fc.pre(token[at] !== c);
        const mutated = token.slice(0, at) + c + token.slice(at + 1);
        const r = await check(mutated);
        if (r.ok) {
          let same = false;
          try {
            same = meaning(mutated) === meaning(token);
          } catch {
            same = false;
          }
          expect(same).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
