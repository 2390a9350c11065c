/**
 * Issue 8 end to end: log in to "RDS" with no token step. A simulator process with a simulated RDS
 * endpoint (TLS with its own CA, IAM token check) in front of a real PostgreSQL, a daemon process, the
 * real ssmtun CLI, real psql and pgbench. The simulated RDS accepts nothing but a valid token over TLS.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_BEGIN } from '../../src/daemon/pgpass.js';
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

// libpq must see only what each test gives it.
for (const k of Object.keys(process.env)) if (k.startsWith('PG')) delete process.env[k];

interface Db {
  name: string;
  host: string;
  port: number;
  caFile: string;
}

function psql(args: string[], env: NodeJS.ProcessEnv): Promise<ToolResult> {
  return runTool(pgTool('psql'), ['-X', '-w', ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PGCONNECT_TIMEOUT: '10', ...env },
    timeout: 30_000,
  });
}

function unixGet(
  socketPath: string,
  url: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: url, headers: { host: 'localhost' } }, (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      })
      .on('error', reject);
  });
}

describe('database login through a tunnel to a simulated RDS', () => {
  let pg: PgCluster;
  let sim: SimProcess;
  let daemon: DaemonProcess;
  let db: Db;
  let localPort: number;
  let pgpassFile: string;
  let cliEnv: NodeJS.ProcessEnv;
  const seenTokens = new Set<string>();

  beforeAll(async () => {
    pg = await startPostgres({ maxConnections: 40 });
    await seedOrders(pg);
    sim = await startSimProcess(['--no-pacing', '--rds', `orders=127.0.0.1:${pg.port}`]);
    db = sim.databases![0];
    localPort = await freePort();
    const dir = path.dirname(db.caFile);
    pgpassFile = path.join(dir, `pgpass-${localPort}`);
    writeFileSync(pgpassFile, 'other.example:5432:*:someone:their-password\n', { mode: 0o600 });
    daemon = await startDaemonProcess(
      sim,
      [
        {
          name: 'orders',
          localPort,
          remotePort: db.port,
          remoteHost: db.host,
          extra: `db_user = "app_readonly"\ndb_name = "orders"\nca_bundle = "${db.caFile}"\n`,
        },
        {
          name: 'nouser',
          localPort: await freePort(),
          remotePort: db.port,
          remoteHost: db.host,
        },
      ],
      { SSMTUN_LOG_LEVEL: 'debug' },
      `pgpass = "${pgpassFile}"`,
    );
    cliEnv = { ...daemon.env, PATH: `${pg.binDir}:${process.env.PATH}` };
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await sim?.stop();
    await pg?.stop();
  });

  it('ssmtun psql NAME signs in as db_user through the tunnel with TLS verify-full', async () => {
    const r = await runCli(
      ['psql', 'orders', '--', '-X', '-Atc', 'select current_user, current_database()'],
      cliEnv,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('app_readonly|orders');
    const state = await sim.state();
    expect(state.databases?.[0].stats.logins).toBeGreaterThanOrEqual(1);
  });

  it('ssmtun token, env and url hand out the same fresh token; psql connects with each', async () => {
    const token = await runCli(['token', 'orders'], cliEnv);
    expect(token.code).toBe(0);
    const t = token.stdout.trim();
    seenTokens.add(t);
    expect(t).toMatch(
      new RegExp(`^${db.host.replace(/\./g, '\\.')}:5432/\\?Action=connect&DBUser=app_readonly&`),
    );

    const env = await runCli(['env', 'orders', '--json'], cliEnv);
    const vars = JSON.parse(env.stdout) as Record<string, string>;
    expect(vars).toEqual({
      PGHOST: db.host,
      PGHOSTADDR: '127.0.0.1',
      PGPORT: String(localPort),
      PGUSER: 'app_readonly',
      PGDATABASE: 'orders',
      PGPASSWORD: t,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: db.caFile,
    });
    expect((await psql(['-Atc', 'select 1'], vars)).stdout).toBe('1');

    const sh = await runCli(['env', 'orders'], cliEnv);
    expect(sh.stdout).toContain(`export PGHOST=${db.host}\n`);
    expect(sh.stdout).toContain("export PGPASSWORD='");

    const url = await runCli(['url', 'orders'], cliEnv);
    expect(url.stdout.startsWith(`postgresql://app_readonly:`)).toBe(true);
    expect((await psql([url.stdout.trim(), '-Atc', 'select current_user'], {})).stdout).toBe('app_readonly');
  });

  it('pgpass alone is enough: the daemon keeps its block in the file and libpq finds the token there', async () => {
    const text = readFileSync(pgpassFile, 'utf8');
    expect(statSync(pgpassFile).mode & 0o777).toBe(0o600);
    expect(text.startsWith(`${BLOCK_BEGIN}\n${db.host}:${localPort}:orders:app_readonly:`)).toBe(true);
    expect(text.endsWith('other.example:5432:*:someone:their-password\n')).toBe(true);
    for (const l of text.split('\n'))
      if (l.includes('X-Amz-Signature')) seenTokens.add(l.split(':').slice(4).join(':'));

    const conninfo = `host=${db.host} hostaddr=127.0.0.1 port=${localPort} user=app_readonly dbname=orders sslmode=verify-full sslrootcert=${db.caFile}`;
    const ok = await psql([conninfo, '-Atc', 'select current_user'], { PGPASSFILE: pgpassFile });
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('app_readonly');

    // Without the real name, verify-full must fail on the certificate: the check is real, and no
    // /etc/hosts entry is needed when host= carries the name.
    const byAddress = await psql(
      [conninfo.replace(`host=${db.host} hostaddr=127.0.0.1`, 'host=127.0.0.1'), '-Atc', 'select 1'],
      { PGPASSFILE: pgpassFile },
    );
    expect(byAddress.code).not.toBe(0);
    expect(byAddress.stderr).toMatch(/does not match host name "127\.0\.0\.1"/);
  });

  it('pgbench -S -c 4 runs through the tunnel with only the pgpass file for credentials', async () => {
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        pgTool('pgbench'),
        ['-S', '-c', '4', '-j', '2', '-t', '50', '-n'],
        {
          env: {
            PATH: process.env.PATH,
            PGHOST: db.host,
            PGHOSTADDR: '127.0.0.1',
            PGPORT: String(localPort),
            PGUSER: 'app_readonly',
            PGDATABASE: 'orders',
            PGSSLMODE: 'verify-full',
            PGSSLROOTCERT: db.caFile,
            PGPASSFILE: pgpassFile,
          },
          timeout: 60_000,
        },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
      ),
    );
    expect(out.stderr).not.toMatch(/error|fatal/i);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/number of transactions actually processed: 200\/200/);
  });

  it('the simulated RDS refuses a wrong password and plaintext through the same tunnel', async () => {
    const base = {
      PGHOST: db.host,
      PGHOSTADDR: '127.0.0.1',
      PGPORT: String(localPort),
      PGUSER: 'app_readonly',
      PGDATABASE: 'orders',
    };
    const wrong = await psql(['-Atc', 'select 1'], {
      ...base,
      PGPASSWORD: 'not-a-token',
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: db.caFile,
    });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('PAM authentication failed for user "app_readonly"');
    const plain = await psql(['-Atc', 'select 1'], { ...base, PGPASSWORD: 'x', PGSSLMODE: 'disable' });
    expect(plain.stderr).toMatch(/no pg_hba\.conf entry .* no encryption/);
  });

  it('guards the token route: 401 without or with a wrong key, 403 from a browser, works on the unix socket', async () => {
    const url = `http://127.0.0.1:${daemon.apiPort}/tunnels/orders/token`;
    expect((await fetch(url)).status).toBe(401);
    expect(
      (await fetch(url, { headers: { authorization: 'Bearer wrong-key-000000000000000000000000000' } }))
        .status,
    ).toBe(401);
    const key = daemon.apiKey();
    expect(
      (await fetch(url, { headers: { authorization: `Bearer ${key}`, origin: 'http://localhost:3000' } }))
        .status,
    ).toBe(403);
    const ok = (await (await fetch(url, { headers: { authorization: `Bearer ${key}` } })).json()) as Record<
      string,
      string
    >;
    expect(ok).toMatchObject({
      host: db.host,
      port: localPort,
      user: 'app_readonly',
      sslrootcert: db.caFile,
    });
    seenTokens.add(ok.token);
    const socketPath = path.join(daemon.dir, 'run', 'ssmtun', 'api.sock');
    const viaSocket = await unixGet(socketPath, '/tunnels/orders/token');
    expect(viaSocket.status).toBe(200);
    expect(statSync(path.join(daemon.dir, 'state', 'ssmtun', 'api-key')).mode & 0o777).toBe(0o600);
    // Reads stay open for curl.
    expect((await fetch(`http://127.0.0.1:${daemon.apiPort}/tunnels`)).status).toBe(200);
  });

  it('CLI errors are clear and non-zero: unknown tunnel, missing db_user (with file:line), no daemon', async () => {
    const unknown = await runCli(['psql', 'nope'], cliEnv);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no tunnel named nope');
    const nouser = await runCli(['token', 'nouser'], cliEnv);
    expect(nouser.code).toBe(1);
    expect(nouser.stderr).toMatch(/fix: add db_user = .* to \[tunnels\.nouser\] \(.*config\.toml:\d+\)/);
    const none = await runCli(['token', 'orders', '--api-port', String(await freePort())], {
      ...cliEnv,
      XDG_RUNTIME_DIR: path.join(daemon.dir, 'elsewhere'),
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no ssmtun daemon is running');
    expect(none.stderr).toContain('fix: start it: ssmtun daemon');
  });

  it('never writes a token to the daemon log', async () => {
    expect(seenTokens.size).toBeGreaterThan(0);
    const log = daemon.rawLog();
    expect(log).toContain('signed RDS auth token');
    for (const t of seenTokens) {
      expect(log).not.toContain(t);
      expect(log).not.toContain(new URL(`https://${t}`).searchParams.get('X-Amz-Signature'));
    }
  });
});
