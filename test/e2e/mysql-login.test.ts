/**
 * Issue 8, MySQL side, end to end: a simulator process with a simulated RDS MySQL endpoint (TLS with its
 * own CA, IAM token through mysql_clear_password) in front of a real MariaDB, a daemon process with an
 * `engine = "mysql"` tunnel, the real ssmtun CLI and the real mariadb client. The simulated RDS accepts
 * nothing but a valid token over TLS.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDb, mariadbAvailable, startMariaDb } from '../../src/sim/mariadb.js';
import { freePort } from '../helpers/net.js';
import { runTool } from '../helpers/run.js';
import {
  type DaemonProcess,
  runCli,
  type SimProcess,
  startDaemonProcess,
  startSimProcess,
} from './harness.js';

// Without MariaDB on a developer machine the suite is skipped; under CI it must run (and fail if missing).
const run = mariadbAvailable() || process.env.CI ? describe : describe.skip;

interface Db {
  name: string;
  host: string;
  port: number;
  caFile: string;
  engine?: string;
}

run('MySQL login through a tunnel to a simulated RDS MySQL (real MariaDB)', () => {
  let mdb: MariaDb;
  let sim: SimProcess;
  let daemon: DaemonProcess;
  let db: Db;
  let localPort: number;
  let cliEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    mdb = await startMariaDb();
    await mdb.sql(
      "create user app@'%' identified by ''; create database shop; grant all on shop.* to app@'%'; " +
        'create table shop.items (id int primary key, name text); ' +
        "insert into shop.items values (1, 'kettle'), (2, 'teapot')",
    );
    sim = await startSimProcess(['--no-pacing', '--rds-mysql', `shop=127.0.0.1:${mdb.port}`]);
    db = sim.databases![0];
    localPort = await freePort();
    daemon = await startDaemonProcess(sim, [
      {
        name: 'shop',
        localPort,
        remotePort: db.port,
        remoteHost: db.host,
        extra: `engine = "mysql"\ndb_user = "app"\ndb_name = "shop"\nca_bundle = "${db.caFile}"\n`,
      },
    ]);
    // The CLI runs `mysql` from PATH: put the MariaDB client's directory first.
    cliEnv = { ...daemon.env, PATH: `${path.dirname(mdb.client)}:${process.env.PATH}` };
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await sim?.stop();
    await mdb?.stop();
  });

  it('ssmtun sim --rds-mysql announces the endpoint on port 3306 with the CA', () => {
    expect(db).toMatchObject({
      name: 'shop',
      host: 'shop.cluster-c0ffee.us-east-1.rds.amazonaws.com',
      port: 3306,
      engine: 'mysql',
    });
    expect(db.caFile).toMatch(/ca\.pem$/);
  });

  it('ssmtun mysql NAME -- -e runs the real client through the tunnel as db_user, over TLS', async () => {
    const before = (await sim.state()).databases?.[0].stats.logins ?? 0;
    const r = await runCli(
      [
        'mysql',
        'shop',
        '--',
        '-N',
        '-B',
        '-e',
        'select current_user(), database(); select name from items order by id',
      ],
      cliEnv,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Nothing but the query's rows: scripts read this output.
    expect(r.stdout.trim().split('\n')).toEqual(['app@%\tshop', 'kettle', 'teapot']);
    expect((await sim.state()).databases?.[0].stats.logins).toBe(before + 1);
  });

  it('ssmtun mysql NAME -- -e status shows the client side of the TLS session', async () => {
    const r = await runCli(['mysql', 'shop', '--', '-e', 'status'], cliEnv);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/SSL:\s+Cipher in use is \S+/);
    expect(r.stdout).toMatch(/Current user:\s+app@/);
  });

  it('ssmtun env NAME --json gives the mysql client what it needs; the token logs in', async () => {
    const r = await runCli(['env', 'shop', '--json'], cliEnv);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const env = JSON.parse(r.stdout) as Record<string, string>;
    expect(env).toMatchObject({
      MYSQL_HOST: '127.0.0.1',
      MYSQL_TCP_PORT: String(localPort),
      LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN: '1',
    });
    expect(env.MYSQL_PWD).toMatch(
      /^shop\.cluster-c0ffee\.us-east-1\.rds\.amazonaws\.com:3306\/\?Action=connect&DBUser=app&/,
    );
    // The same settings by hand, the way a user would export them (MYSQL_HOST is read by mysql only when
    // --host is absent; MariaDB's client takes the port from MYSQL_TCP_PORT and the password from MYSQL_PWD).
    const out = await runTool(
      mdb.client,
      [
        '--no-defaults',
        '--protocol=tcp',
        `--host=${env.MYSQL_HOST}`,
        '--ssl',
        `--ssl-ca=${db.caFile}`,
        '--user=app',
        '-N',
        '-B',
        '-e',
        'select current_user()',
      ],
      {
        env: { PATH: process.env.PATH, MYSQL_TCP_PORT: env.MYSQL_TCP_PORT, MYSQL_PWD: env.MYSQL_PWD },
        timeout: 30_000,
      },
    );
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('app@%');
  });

  it('a token for another user is refused by the simulated RDS with 1045 through the tunnel', async () => {
    const r = await runCli(['mysql', 'shop', '--', '--user=root', '-e', 'select 1'], cliEnv);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      "ERROR 1045 (28000): Access denied for user 'root'@'127.0.0.1' (using password: YES)",
    );
    const stats = (await sim.state()).databases?.[0].stats as unknown as {
      refusals: Array<{ reason: string }>;
    };
    expect(stats.refusals.at(-1)?.reason).toBe('wrong-user');
  });
});
