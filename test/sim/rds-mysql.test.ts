/**
 * The simulated RDS MySQL front with real parts: a throw-away MariaDB behind it, the simulator's own CA,
 * and the real `mariadb` client doing TLS with --ssl-ca and the mysql_clear_password exchange with IAM
 * tokens minted by @aws-sdk/rds-signer.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Signer } from '@aws-sdk/rds-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_CREDENTIALS,
  type SimDatabase,
  type Simulator,
  startSimulator,
} from '../../src/sim/index.js';
import { type MariaDb, mariadbAvailable, startMariaDb } from '../../src/sim/mariadb.js';
import { createSimCa } from '../../src/sim/tls-ca.js';

// Without MariaDB on a developer machine the suite is skipped; under CI it must run (and fail if missing).
const run = mariadbAvailable() || process.env.CI ? describe : describe.skip;

async function mintToken(host: string, user = 'app', port = 3306): Promise<string> {
  return new Signer({
    hostname: host,
    port,
    username: user,
    region: 'us-east-1',
    credentials: DEFAULT_CREDENTIALS,
  }).getAuthToken();
}

interface ClientResult {
  code: number;
  stdout: string;
  stderr: string;
}

run('simulated RDS MySQL front (real mariadb client, real MariaDB)', () => {
  let mdb: MariaDb;
  let sim: Simulator;
  let db: SimDatabase;
  let clockOffsetMs = 0;
  const children = new Set<ChildProcess>();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-rds-mysql-'));

  beforeAll(async () => {
    mdb = await startMariaDb();
    await mdb.sql(
      "create user app@'%' identified by ''; create database shop; grant all on shop.* to app@'%'",
    );
    sim = await startSimulator({
      agentDefaults: { pacing: false },
      now: () => Date.now() + clockOffsetMs,
      databases: [{ name: 'shop', engine: 'mysql', upstream: { host: '127.0.0.1', port: mdb.port } }],
    });
    db = sim.databases[0];
  }, 60_000);
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await sim?.close();
    await mdb?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  function client(args: string[], o: { password?: string; tls?: string[] } = {}): Promise<ClientResult> {
    const tlsArgs = o.tls ?? ['--ssl', `--ssl-ca=${db.caFile}`];
    const full = [
      '--no-defaults',
      '--protocol=tcp',
      '--host=127.0.0.1',
      `--port=${db.frontPort}`,
      '--connect-timeout=10',
      ...tlsArgs,
      '--user=app',
      ...(o.password !== undefined ? [`--password=${o.password}`] : []),
      '-N',
      '-B',
      ...args,
    ];
    return new Promise((resolve) => {
      const child = execFile(mdb.client, full, { env: { PATH: process.env.PATH } }, (err, stdout, stderr) => {
        children.delete(child);
        resolve({
          code: err ? Number((err as { code?: number }).code ?? 1) : 0,
          stdout: stdout.trim(),
          stderr,
        });
      });
      children.add(child);
    });
  }

  it('names the RDS host on port 3306 and the shared CA', () => {
    expect(db).toMatchObject({
      name: 'shop',
      host: 'shop.cluster-c0ffee.us-east-1.rds.amazonaws.com',
      port: 3306,
      engine: 'mysql',
    });
    expect(sim.databases[0].frontPort).toBeGreaterThan(0);
  });

  it('a valid IAM token over TLS logs in as that user and reaches the real MariaDB', async () => {
    const before = db.stats.logins;
    const r = await client(['-e', 'select current_user(), database(), @@version_comment'], {
      password: await mintToken(db.host),
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [user, database, comment] = r.stdout.split('\t');
    expect(user).toBe('app@%');
    expect(database).toBe('NULL');
    expect(comment).toMatch(/Debian|MariaDB/);
    expect(db.stats.logins).toBe(before + 1);
  });

  it('the client reports TLS on its side; the database is passed on; queries of any size go through', async () => {
    const token = await mintToken(db.host);
    const status = await client(['--database=shop', '-e', 'status'], { password: token });
    expect(status.stderr).toBe('');
    expect(status.stdout).toMatch(/SSL:\s+Cipher in use is \S+/);
    expect(status.stdout).toMatch(/Current database:\s+shop/);
    const big = await client(
      [
        '--database=shop',
        '-e',
        'create table t (v longtext); insert into t values (repeat("x", 3000000)); select length(v) from t',
      ],
      { password: token },
    );
    expect(big.stderr).toBe('');
    expect(big.stdout).toBe('3000000');
  });

  it('a CA that did not sign the server certificate fails the TLS check before any password is sent', async () => {
    const other = await createSimCa();
    try {
      const before = db.stats.refusals.length + db.stats.logins;
      const r = await client(['-e', 'select 1'], {
        password: await mintToken(db.host),
        tls: ['--ssl', `--ssl-ca=${other.caFile}`],
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/ERROR 2026 .*TLS\/SSL error/);
      expect(db.stats.refusals.length + db.stats.logins).toBe(before);
    } finally {
      await other.close();
    }
  });

  it('without TLS the login is refused with 3159 like require_secure_transport=ON', async () => {
    const before = db.stats.plaintextRefused;
    const r = await client(['-e', 'select 1'], { password: await mintToken(db.host), tls: ['--skip-ssl'] });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'ERROR 3159 (HY000): Connections using insecure transport are prohibited while --require_secure_transport=ON.',
    );
    expect(db.stats.plaintextRefused).toBe(before + 1);
  });

  const denied = "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)";

  it.each([
    ['wrong-host', () => mintToken('other.cluster-c0ffee.us-east-1.rds.amazonaws.com')],
    ['wrong-port', () => mintToken('shop.cluster-c0ffee.us-east-1.rds.amazonaws.com', 'app', 5432)],
    ['wrong-user', () => mintToken('shop.cluster-c0ffee.us-east-1.rds.amazonaws.com', 'admin')],
    ['malformed', async () => 'not-a-token'],
    [
      'bad-signature',
      async () => {
        const t = await mintToken('shop.cluster-c0ffee.us-east-1.rds.amazonaws.com');
        return t.replace(
          /X-Amz-Signature=([0-9a-f])/,
          (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`,
        );
      },
    ],
  ])('a %s token is refused with RDS 1045', async (reason, token) => {
    const before = db.stats.logins;
    const r = await client(['-e', 'select 1'], { password: await token() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(denied);
    expect(db.stats.refusals.at(-1)).toEqual({ user: 'app', reason, sqlstate: '28000' });
    expect(db.stats.logins).toBe(before);
  });

  it('a token is refused once the simulator clock is 16 minutes later, and accepted again after', async () => {
    const token = await mintToken(db.host);
    clockOffsetMs = 16 * 60_000;
    try {
      const r = await client(['-e', 'select 1'], { password: token });
      expect(r.stderr).toContain(denied);
      expect(db.stats.refusals.at(-1)?.reason).toBe('expired');
    } finally {
      clockOffsetMs = 0;
    }
    expect((await client(['-e', 'select current_user()'], { password: token })).stdout).toBe('app@%');
  });

  it('a valid token for a user the upstream does not know passes on the upstream refusal', async () => {
    const r = await client(['--user=ghost', '-e', 'select 1'], {
      password: await mintToken(db.host, 'ghost'),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /ERROR 1045 \(28000\): Access denied for user 'ghost'@'(localhost|127\.0\.0\.1)'/,
    );
    expect(db.stats.refusals.at(-1)).toEqual({ user: 'ghost', reason: 'upstream', sqlstate: '28000' });
  });

  it("MariaDB's client sends the token for mysql_clear_password on its own; --enable-cleartext-plugin only warns", async () => {
    // MariaDB's client has no cleartext opt-in (the option is obsolete there), and it says so on stdout.
    const r = await client(['--enable-cleartext-plugin', '-e', 'select current_user()'], {
      password: await mintToken(db.host),
    });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      "WARNING: option '--enable-cleartext-plugin' is obsolete.",
      'app@%',
    ]);
  });
});
