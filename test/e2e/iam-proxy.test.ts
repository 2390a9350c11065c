/**
 * Issue 10 end to end: `auth = "iam"` makes the tunnel's local port a passwordless PostgreSQL endpoint.
 * A simulator process with a simulated RDS (TLS + IAM token check) in front of a real PostgreSQL, a
 * daemon process, real psql/pgbench, and a client that is not libpq (node-postgres).
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/net.js';
import { type PgCluster, pgTool, seedOrders, startPostgres } from '../helpers/postgres.js';
import { runTool, type ToolResult } from '../helpers/run.js';
import {
  type DaemonProcess,
  runCli,
  type SimProcess,
  startDaemonProcess,
  startSimProcess,
} from './harness.js';

for (const k of Object.keys(process.env)) if (k.startsWith('PG')) delete process.env[k];

function psql(args: string[], opts: { user?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ToolResult> {
  const psqlArgv = [pgTool('psql'), '-X', '-w', ...args];
  const [cmd, ...argv] = opts.user ? ['runuser', '-u', opts.user, '--', ...psqlArgv] : psqlArgv;
  return runTool(cmd, argv, {
    env: { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '10', ...opts.env },
    timeout: 30_000,
    cwd: '/',
  });
}

describe('auth = "iam": a passwordless local PostgreSQL port', () => {
  let cluster: PgCluster;
  let sim: SimProcess;
  let daemon: DaemonProcess;
  let port: number;
  let credsFile: string;
  const keys = () => `"AccessKeyId":"${sim.accessKeyId}","SecretAccessKey":"${sim.secretAccessKey}"`;
  const conninfo = (user = 'app_readonly') =>
    `host=127.0.0.1 port=${port} user=${user} dbname=orders sslmode=disable`;

  beforeAll(async () => {
    cluster = await startPostgres({ maxConnections: 60 });
    await seedOrders(cluster, ['reporting']);
    sim = await startSimProcess(['--no-pacing', '--rds', `orders=127.0.0.1:${cluster.port}`]);
    const db = sim.databases![0];
    port = await freePort();
    // Credentials come from a credential_process the test controls, so they can "expire" and be fixed.
    const dir = path.dirname(db.caFile);
    credsFile = path.join(dir, `creds-${port}.json`);
    const helper = path.join(dir, `creds-${port}.sh`);
    // Short-lived credentials (like SSO role credentials, only shorter): the SDK asks the process again
    // once they expire, which is when a broken login shows.
    writeFileSync(
      helper,
      [
        '#!/bin/sh',
        `[ -s '${credsFile}' ] || { echo 'the SSO session has expired; run aws sso login' >&2; exit 1; }`,
        `printf '{"Version":1,%s,"Expiration":"%s"}' "$(cat '${credsFile}')" "$(date -u -d '+4 sec' +%Y-%m-%dT%H:%M:%SZ)"`,
        '',
      ].join('\n'),
    );
    chmodSync(helper, 0o755);
    const awsConfig = path.join(dir, `aws-config-${port}`);
    writeFileSync(awsConfig, `[profile iam]\nregion = ${sim.region}\ncredential_process = ${helper}\n`);
    writeFileSync(credsFile, keys());
    daemon = await startDaemonProcess(
      sim,
      [
        {
          name: 'orders',
          localPort: port,
          remotePort: db.port,
          remoteHost: db.host,
          extra: [
            'profile = "iam"',
            'auth = "iam"',
            'db_user = "app_readonly"',
            'db_users = ["reporting"]',
            'db_name = "orders"',
            `ca_bundle = "${db.caFile}"`,
          ].join('\n'),
        },
      ],
      {
        AWS_CONFIG_FILE: awsConfig,
        AWS_ACCESS_KEY_ID: '',
        AWS_SECRET_ACCESS_KEY: '',
        SSMTUN_LOG_LEVEL: 'debug',
      },
    );
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await sim?.stop();
    await cluster?.stop();
  });

  it('psql with no password, no pgpass and no PG* variables runs queries', async () => {
    const r = await psql([conninfo(), '-Atc', 'select current_user, current_database()']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('app_readonly|orders');
    const other = await psql([conninfo('reporting'), '-Atc', 'select current_user']);
    expect(other.stdout).toBe('reporting');
  });

  it('node-postgres gets in with a wrong password on purpose (it is ignored) and runs a query', async () => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'app_readonly',
      password: 'definitely-wrong',
      database: 'orders',
    });
    await client.connect();
    try {
      const r = await client.query('select count(*)::int as n from pgbench_branches');
      expect(r.rows).toEqual([{ n: 1 }]);
    } finally {
      await client.end();
    }
  });

  it('pgbench -S -c 8 -j 2 completes through the front', async () => {
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        pgTool('pgbench'),
        [
          '-S',
          '-c',
          '8',
          '-j',
          '2',
          '-t',
          '50',
          '-n',
          '-h',
          '127.0.0.1',
          '-p',
          String(port),
          '-U',
          'app_readonly',
          'orders',
        ],
        { env: { PATH: process.env.PATH }, timeout: 90_000 },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
      ),
    );
    expect(out.stderr).not.toMatch(/error|fatal/i);
    expect(out.stdout).toMatch(/number of transactions actually processed: 400\/400/);
  });

  it("psql's cancel (SIGINT) ends a long query within 2 s with 57014", async () => {
    const child = spawn(pgTool('psql'), ['-X', '-w', conninfo(), '-c', 'select pg_sleep(30)'], {
      env: { PATH: process.env.PATH },
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    try {
      // psql is running the query once the server reports it active.
      for (let i = 0; i < 100; i++) {
        const active = await cluster.psql(
          "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'",
        );
        if (active === '1') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const t0 = Date.now();
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(stderr).toMatch(/canceling statement due to user request/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a user that is not allowed gets 28000 naming the allowed users', async () => {
    const r = await psql([conninfo('postgres'), '-Atc', 'select 1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ssmtun: .*postgres.*app_readonly.*reporting/);
  });

  it('another local user (nobody) is refused', async () => {
    const r = await psql([conninfo(), '-Atc', 'select 1'], { user: 'nobody' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ssmtun: .*another (local|OS) user/i);
  });

  it('status and /metrics count the logins and the refusals by reason', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${daemon.apiPort}/metrics`)).text();
    const logins = Number(/^ssmtun_tunnel_logins_total\{tunnel="orders"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(logins).toBeGreaterThanOrEqual(12); // psql x2, node-postgres, pgbench's 9, the cancelled psql
    expect(metrics).toMatch(
      /^ssmtun_tunnel_login_failures_total\{tunnel="orders",reason="user-not-allowed"\} 1$/m,
    );
    expect(metrics).toMatch(
      /^ssmtun_tunnel_login_failures_total\{tunnel="orders",reason="other-os-user"\} 1$/m,
    );
    const status = await runCli(['status', 'orders'], daemon.env);
    expect(status.stdout).toMatch(
      new RegExp(`IAM logins ${logins}, refused 2 \\(.*user-not-allowed 1.*\\), cancels 1`),
    );
  });

  it('expired credentials give an ErrorResponse with the fix; the next connection after the fix works', async () => {
    writeFileSync(credsFile, '');
    try {
      // The credentials the daemon holds expire within seconds; the token route shows when they did.
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const res = await fetch(`http://127.0.0.1:${daemon.apiPort}/tunnels/orders/token`, {
          headers: { authorization: `Bearer ${daemon.apiKey()}` },
        });
        if (!res.ok) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      const r = await psql([conninfo(), '-Atc', 'select 1']);
      expect(r.code, `${r.stdout}\n${r.stderr}\n${daemon.rawLog().slice(-3000)}`).not.toBe(0);
      expect(r.stderr).toMatch(/ssmtun: .*(SSO|credentials)/i);
      expect(r.stderr).toContain('aws sso login --profile iam');
    } finally {
      writeFileSync(credsFile, keys());
    }
    const ok = await psql([conninfo(), '-Atc', 'select current_user']);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('app_readonly');
  });
});
