/** The keys of the IAM login front: auth, db_users, allow_other_users (config file and API JSON). */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, validateTunnel } from '../../src/daemon/config.js';

const file = '/etc/ssmtun/config.toml';
// Line 1 is the header; keys follow one per line.
const base = `[tunnels.orders]
region = "eu-west-1"
target = "i-0123456789abcdef0"
remote_host = "orders.cluster-abc.eu-west-1.rds.amazonaws.com"
remote_port = 5432
local_port = 15432
db_user = "app_readonly"
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

describe('auth, db_users and allow_other_users', () => {
  it('default to plain forwarding, no extra users, other users refused (keys absent from the config object)', () => {
    const [t] = parseConfig(base, file).tunnels;
    expect(t.auth).toBeUndefined();
    expect(t.dbUsers).toBeUndefined();
    expect(t.allowOtherUsers).toBeUndefined();
    const [n] = parseConfig(`${base}auth = "none"\nallow_other_users = false\n`, file).tunnels;
    expect(n.auth).toBeUndefined();
    expect(n.allowOtherUsers).toBeUndefined();
  });

  it('parse auth = "iam" with db_users and allow_other_users', () => {
    const [t] = parseConfig(
      `${base}auth = "iam"\ndb_users = ["app_admin", "app_rw", "app_admin"]\nallow_other_users = true\n`,
      file,
    ).tunnels;
    expect(t.auth).toBe('iam');
    expect(t.dbUsers).toEqual(['app_admin', 'app_rw']);
    expect(t.allowOtherUsers).toBe(true);
  });

  it('auth = "iam" without db_user or remote_host names both at the auth line', () => {
    const text = `[tunnels.orders]
region = "eu-west-1"
target = "i-0123456789abcdef0"
remote_port = 5432
local_port = 15432
auth = "iam"
`;
    const out = issues(text);
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(
      /^\/etc\/ssmtun\/config\.toml:6: auth = "iam" in \[tunnels\.orders\] needs db_user/,
    );
    expect(out[0]).toContain('Add db_user = "app_readonly"');
    expect(out[1]).toMatch(
      /^\/etc\/ssmtun\/config\.toml:6: auth = "iam" in \[tunnels\.orders\] needs remote_host/,
    );
    expect(out[1]).toContain('Add remote_host = "');
  });

  it('auth = "iam" with engine mysql is refused', () => {
    const out = issues(`${base}engine = "mysql"\nauth = "iam"\n`);
    expect(out).toEqual([
      expect.stringMatching(
        /^\/etc\/ssmtun\/config\.toml:9: auth = "iam" in \[tunnels\.orders\] needs engine = "postgres", not "mysql"\. /,
      ),
    ]);
  });

  it('an unknown auth mode suggests the closest, a misspelt key is renamed', () => {
    expect(issues(`${base}auth = "IAM"\n`)).toEqual([
      expect.stringMatching(
        /config\.toml:8: auth "IAM" in \[tunnels\.orders\] is not an auth mode\. Did you mean auth = "iam"\?/,
      ),
    ]);
    expect(issues(`${base}auth = "rds-iam"\n`)[0]).toContain('Did you mean auth = "iam"?');
    expect(issues(`${base}authentication = "iam"\n`)[0]).toMatch(
      /config\.toml:8: unknown key authentication .*Did you mean auth\?/,
    );
    expect(issues(`${base}allowed_users = ["x"]\n`)[0]).toContain('Did you mean db_users?');
  });

  it('db_users must be an array of non-empty strings; allow_other_users a boolean', () => {
    expect(issues(`${base}db_users = "app_rw"\n`)).toEqual([
      expect.stringMatching(
        /config\.toml:8: db_users in \[tunnels\.orders\] must be an array of strings, not a string\. Write db_users = \["app_rw"\]\./,
      ),
    ]);
    expect(issues(`${base}db_users = ["ok", ""]\n`)[0]).toMatch(
      /config\.toml:8: db_users .* non-empty strings/,
    );
    expect(issues(`${base}db_users = [1]\n`)[0]).toMatch(/config\.toml:8: db_users /);
    expect(issues(`${base}allow_other_users = "yes"\n`)[0]).toMatch(
      /config\.toml:8: allow_other_users in \[tunnels\.orders\] must be true or false/,
    );
  });

  it('the API (JSON) gets the same checks with JSON examples', () => {
    const body = {
      region: 'eu-west-1',
      target: 'i-0123456789abcdef0',
      remote_port: 5432,
      local_port: 15432,
      auth: 'iam',
    };
    expect(() => validateTunnel('orders', body)).toThrow(/needs db_user.*Add "db_user": "app_readonly"/s);
    const t = validateTunnel('orders', {
      ...body,
      db_user: 'app',
      remote_host: 'orders.cluster-abc.eu-west-1.rds.amazonaws.com',
      db_users: ['b'],
    });
    expect(t).toMatchObject({ auth: 'iam', dbUser: 'app', dbUsers: ['b'] });
  });
});
