/**
 * The IAM login front with real parts: a throw-away PostgreSQL behind the simulated RDS front (its own
 * CA, TLS required, IAM tokens checked), our front on a loopback port, real IAM tokens from
 * @aws-sdk/rds-signer, and real clients: psql and pgbench (libpq) and the pg driver (not libpq).
 * The upstream stream is a TCP connection seen through a duplexPair end, as the tunnel will hand it.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type Duplex, PassThrough } from 'node:stream';
import { Signer } from '@aws-sdk/rds-signer';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type TunnelConfig, validateTunnel } from '../../../src/daemon/config.js';
import { TunnelError } from '../../../src/daemon/errors.js';
import {
  allowedUsersOf,
  createPgFrontStats,
  handlePgClient,
  type PgClientOutcome,
  type PgFrontStats,
} from '../../../src/daemon/pgfront/index.js';
import { duplexPair } from '../../../src/shared/duplex-pair.js';
import { rdsHostName } from '../../../src/sim/databases.js';
import { DEFAULT_CREDENTIALS } from '../../../src/sim/index.js';
import { type RdsFront, startRdsFront } from '../../../src/sim/rds.js';
import { createSimCa, type SimCa } from '../../../src/sim/tls-ca.js';
import { type PgCluster, pgTool, startPostgres } from '../../helpers/postgres.js';

const REGION = 'us-east-1';
const HOST = rdsHostName('orders', REGION);
const LEGACY = 'legacy_user';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

describe('PostgreSQL IAM login front (real psql, pgbench, pg driver, PostgreSQL, simulated RDS)', () => {
  let cluster: PgCluster;
  let ca: SimCa;
  let otherCa: SimCa;
  let rds: RdsFront;
  let server: net.Server;
  let frontPort: number;
  let tunnel: TunnelConfig;
  let stats: PgFrontStats;
  const outcomes: PgClientOutcome[] = [];
  const children = new Set<ChildProcess>();
  const minted: string[] = [];
  const home = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-pgfront-home-'));
  let logText = '';
  const logSink = new PassThrough();
  logSink.on('data', (c: Buffer) => {
    logText += c.toString();
  });

  // What each test may change; reset before every test.
  let token: (user: string) => Promise<string>;
  let caPem: string;
  let servername: string;
  let upstreamMode: 'pair' | 'socket';

  const realToken = async (user: string) => {
    const t = await new Signer({
      hostname: HOST,
      port: 5432,
      username: user,
      region: REGION,
      credentials: DEFAULT_CREDENTIALS,
    }).getAuthToken();
    minted.push(t);
    return t;
  };

  async function openUpstream(): Promise<Duplex> {
    const s = net.connect({ host: '127.0.0.1', port: rds.port });
    s.on('error', () => {});
    await once(s, 'connect');
    if (upstreamMode === 'socket') return s;
    const [mine, theirs] = duplexPair();
    theirs.pipe(s);
    s.pipe(theirs);
    s.on('close', () => theirs.destroy());
    theirs.on('close', () => s.destroy());
    return mine;
  }

  beforeAll(async () => {
    cluster = await startPostgres();
    await cluster.psql(
      `create role app_readonly login; create role ${LEGACY} login; create role mallory login;`,
    );
    [ca, otherCa] = await Promise.all([createSimCa(), createSimCa()]);
    rds = await startRdsFront({
      host: HOST,
      port: 5432,
      region: REGION,
      upstream: { host: '127.0.0.1', port: cluster.port },
      credentials: [DEFAULT_CREDENTIALS],
      tls: await ca.serverCert(HOST),
      passwordUsers: [LEGACY],
    });
    tunnel = validateTunnel('orders', {
      region: REGION,
      target: 'i-05e1a000000000001',
      remote_host: HOST,
      remote_port: 5432,
      local_port: 15432,
      db_user: 'app_readonly',
      db_users: ['postgres', LEGACY],
      auth: 'iam',
    });
    stats = createPgFrontStats();
    const logger = pino({ level: 'debug' }, logSink);
    server = net.createServer((sock) => {
      void handlePgClient(sock, {
        tunnel,
        allowedUsers: allowedUsersOf(tunnel),
        token: (u) => token(u),
        openUpstream,
        ca: caPem,
        servername,
        logger,
        stats,
      }).then((o) => outcomes.push(o));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    frontPort = (server.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    server?.close();
    await rds?.close();
    await ca?.close();
    await otherCa?.close();
    await cluster?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  beforeEach(() => {
    token = realToken;
    caPem = ca.caPem;
    servername = HOST;
    upstreamMode = 'pair';
  });

  /** No PG* variables, no password, an empty HOME (so no ~/.pgpass). */
  function cleanEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
    env.HOME = home;
    return env;
  }

  function conninfo(user: string): string {
    return `host=127.0.0.1 port=${frontPort} user=${user} dbname=postgres sslmode=disable connect_timeout=10`;
  }

  function run(file: string, args: string[], onSpawn?: (c: ChildProcess) => void): Promise<Run> {
    const start = Date.now();
    return new Promise((resolve) => {
      const child = execFile(file, args, { env: cleanEnv(), cwd: home }, (err, stdout, stderr) => {
        children.delete(child);
        resolve({
          code: err ? ((err as { code?: number }).code ?? 1) : 0,
          stdout: stdout.trim(),
          stderr,
          ms: Date.now() - start,
        });
      });
      children.add(child);
      onSpawn?.(child);
    });
  }

  /** psql that never prompts for a password (-w): it must get in without one. */
  const psql = (user: string, sql: string) =>
    run(pgTool('psql'), [
      '-X',
      '-w',
      '-A',
      '-t',
      '-v',
      'ON_ERROR_STOP=1',
      '-v',
      'VERBOSITY=verbose',
      '-c',
      sql,
      conninfo(user),
    ]);

  async function pgConnect(user: string, password?: string): Promise<pg.Client> {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: frontPort,
      user,
      database: 'postgres',
      ssl: false,
      ...(password !== undefined && { password }),
    });
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  async function pgError(user: string): Promise<pg.DatabaseError> {
    try {
      const c = await pgConnect(user, 'whatever');
      await c.end();
    } catch (e) {
      return e as pg.DatabaseError;
    }
    throw new Error(`${user} got in`);
  }

  it('psql with no password, no pgpass and no PG* env runs queries as the IAM user', async () => {
    const logins = stats.logins;
    const rdsLogins = rds.stats.logins;
    const r = await psql('app_readonly', 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('app_readonly');
    expect(stats.logins).toBe(logins + 1);
    // The simulated RDS accepted exactly one IAM login over TLS for it.
    expect(rds.stats.logins).toBe(rdsLogins + 1);
    // libpq's default sslmode=prefer asks for TLS first, is told N, and goes on in plaintext.
    const prefer = await run(pgTool('psql'), [
      '-X',
      '-w',
      '-A',
      '-t',
      '-c',
      'select current_user',
      conninfo('app_readonly').replace(' sslmode=disable', ''),
    ]);
    expect(prefer.stdout).toBe('app_readonly');
  });

  it('the pg driver (not libpq) with a wrong password still gets in: the password is ignored', async () => {
    for (const mode of ['pair', 'socket'] as const) {
      upstreamMode = mode;
      const client = await pgConnect('app_readonly', 'wrong-on-purpose');
      const res = await client.query('select current_user as u, 6 * 7 as n');
      expect(res.rows).toEqual([{ u: 'app_readonly', n: 42 }]);
      await client.end();
    }
  });

  it('pgbench -S -c 8 -j 2 -t 50 completes through the front', async () => {
    const env = cluster.env();
    await new Promise<void>((resolve, reject) => {
      execFile(pgTool('pgbench'), ['-i', '-q', '-s', '1'], { env }, (err, _o, stderr) =>
        err ? reject(new Error(stderr)) : resolve(),
      );
    });
    const logins = stats.logins;
    const r = await run(pgTool('pgbench'), [
      '-n',
      '-S',
      '-c',
      '8',
      '-j',
      '2',
      '-t',
      '50',
      conninfo('postgres'),
    ]);
    expect(r.stderr).not.toMatch(/error|FATAL/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/number of transactions actually processed: 400\/400/);
    // One login per client, plus the one pgbench makes first to read the scale factor.
    expect(stats.logins).toBe(logins + 9);
    const tps = /tps = ([\d.]+)/.exec(r.stdout)?.[1];
    console.log(`pgbench -S -c 8 -j 2 -t 50 through the IAM front: tps = ${tps}`);
  });

  it('SIGINT to psql running pg_sleep(30) cancels it within 2 s with 57014', async () => {
    const cancels = stats.cancels;
    const rdsCancels = rds.stats.cancels;
    const done = psql('app_readonly', 'select pg_sleep(30)');
    // Wait for the query to be running on the real server.
    const pid = await (async () => {
      for (let i = 0; i < 200; i++) {
        const p = await cluster.psql(
          "select pid from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'",
        );
        if (p) return p;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('the query never started');
    })();
    expect(pid).not.toBe('');
    const child = [...children].at(-1);
    const sent = Date.now();
    child?.kill('SIGINT');
    const r = await done;
    const elapsed = Date.now() - sent;
    expect(r.stderr).toMatch(/ERROR: {2}57014: canceling statement due to user request/);
    expect(elapsed).toBeLessThan(2000);
    expect(stats.cancels).toBe(cancels + 1);
    expect(stats.cancelFailures).toBe(0);
    expect(rds.stats.cancels).toBe(rdsCancels + 1);
  });

  it('a user that is not allowed gets 28000 naming the allowed users', async () => {
    const before = stats.loginFailures['user-not-allowed'];
    const err = await pgError('mallory');
    expect(err.code).toBe('28000');
    expect(err.message).toBe(
      'ssmtun: user "mallory" may not log in through tunnel orders; allowed users: app_readonly, postgres, legacy_user',
    );
    expect(err.hint).toMatch(/add "mallory" to db_users in \[tunnels\.orders\]/);
    const r = await psql('mallory', 'select 1');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('allowed users: app_readonly, postgres, legacy_user');
    expect(stats.loginFailures['user-not-allowed']).toBe(before + 2);
  });

  it('a role without rds_iam (the server asks for SCRAM) gets the GRANT rds_iam message', async () => {
    const err = await pgError(LEGACY);
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/^ssmtun: .*SCRAM-SHA-256.*"legacy_user".*lacks GRANT rds_iam/);
    expect(err.hint).toContain('GRANT rds_iam TO "legacy_user"');
    expect(stats.loginFailures['no-rds-iam']).toBeGreaterThanOrEqual(1);
  });

  it('a token the database refuses shows the server error plus the ssmtun hint', async () => {
    token = async () => 'not-a-token';
    const err = await pgError('app_readonly');
    expect(err.code).toBe('28P01');
    expect(err.message).toBe('PAM authentication failed for user "app_readonly"');
    expect(err.hint).toMatch(/^ssmtun: the database refused the IAM login for "app_readonly"/);
    expect(stats.loginFailures['server-refused']).toBeGreaterThanOrEqual(1);
  });

  it('SSO expired: the client sees the fixing command, and the next connection after the fix works', async () => {
    let fixed = false;
    token = async (u) => {
      if (!fixed) {
        throw new TunnelError(
          'SSO_LOGIN_REQUIRED',
          'the SSO session of profile dev has expired',
          'run aws sso login --profile dev',
        );
      }
      return realToken(u);
    };
    const err = await pgError('app_readonly');
    expect(err.code).toBe('28000');
    expect(err.message).toBe(
      'ssmtun: could not get an IAM token for app_readonly: the SSO session of profile dev has expired',
    );
    expect(err.hint).toBe('run aws sso login --profile dev');
    expect(err.detail).toBe('ssmtun error code SSO_LOGIN_REQUIRED');
    const bad = await psql('app_readonly', 'select 1');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/FATAL: {2}(28000: )?ssmtun: could not get an IAM token/);
    expect(bad.stderr).toContain('aws sso login --profile dev');
    fixed = true;
    const ok = await psql('app_readonly', 'select current_user');
    expect(ok.stdout).toBe('app_readonly');
  });

  it('a session that cannot start reaches the client as 08001 with its fix', async () => {
    const front = net.createServer((sock) => {
      void handlePgClient(sock, {
        tunnel,
        allowedUsers: ['app_readonly'],
        token: realToken,
        openUpstream: () =>
          Promise.reject(
            new TunnelError(
              'TARGET_NOT_CONNECTED',
              'target i-05e1a000000000001 is not connected',
              'start the SSM agent on the instance',
            ),
          ),
        ca: caPem,
        servername: HOST,
        logger: pino({ level: 'silent' }),
        stats,
      });
    });
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    try {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: (front.address() as net.AddressInfo).port,
        user: 'app_readonly',
        database: 'postgres',
      });
      const err = (await client.connect().then(
        () => undefined,
        (e) => e,
      )) as pg.DatabaseError;
      expect(err.code).toBe('08001');
      expect(err.message).toMatch(
        /^ssmtun: could not open a connection to .* target i-05e1a000000000001 is not connected/,
      );
      expect(err.hint).toBe('start the SSM agent on the instance');
    } finally {
      front.close();
    }
  });

  it('a certificate from another CA fails TLS with a clear ssmtun: message (08006), verify-full', async () => {
    caPem = otherCa.caPem;
    const err = await pgError('app_readonly');
    expect(err.code).toBe('08006');
    expect(err.message).toMatch(
      new RegExp(`^ssmtun: TLS with ${HOST.replace(/\./g, '\\.')} failed: .*certificate`),
    );
    expect(err.hint).toMatch(/ca_bundle/);
    const r = await psql('app_readonly', 'select 1');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`ssmtun: TLS with ${HOST} failed`);
    expect(stats.loginFailures.tls).toBeGreaterThanOrEqual(2);
  });

  it('verify-full checks the name: a certificate for another host is refused', async () => {
    servername = 'billing.cluster-c0ffee.us-east-1.rds.amazonaws.com';
    const err = await pgError('app_readonly');
    expect(err.code).toBe('08006');
    expect(err.message).toMatch(
      /^ssmtun: TLS with billing\.cluster-c0ffee\.us-east-1\.rds\.amazonaws\.com failed: Hostname\/IP does not match/,
    );
  });

  it("an error after AuthenticationOk (no such database) is the server's own, passed through", async () => {
    const before = stats.loginFailures['server-refused'];
    const client = new pg.Client({
      host: '127.0.0.1',
      port: frontPort,
      user: 'app_readonly',
      database: 'nope',
    });
    const err = (await client.connect().then(
      () => undefined,
      (e) => e,
    )) as pg.DatabaseError;
    expect(err.code).toBe('3D000');
    expect(err.message).toBe('database "nope" does not exist');
    expect(stats.loginFailures['server-refused']).toBe(before + 1);
  });

  it('no IAM token ever reaches the log', () => {
    expect(minted.length).toBeGreaterThan(5);
    for (const t of minted) expect(logText).not.toContain(t.split('X-Amz-Signature=')[1]);
    expect(logText).toContain('IAM login through the front');
  });

  it('a connection from another OS user (runuser -u nobody -- psql) is refused on Linux', async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip();
    const before = stats.loginFailures['other-os-user'];
    const r = await run('runuser', [
      '-u',
      'nobody',
      '--',
      pgTool('psql'),
      '-X',
      '-w',
      '-c',
      'select 1',
      conninfo('app_readonly'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ssmtun: the connection comes from another local user \(uid 65534\)/);
    expect(r.stderr).toContain('allow_other_users = true');
    expect(stats.loginFailures['other-os-user']).toBe(before + 1);
  });
});
