import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from './net.js';
import { type PgCluster, pgAvailable, pgTool, startPostgres } from './postgres.js';

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

const NOT_INSTALLED =
  'PostgreSQL server binaries are not installed (initdb/pg_ctl/postgres); run `sudo .ci/install-postgres.sh` or set PG_BIN.';

describe('throw-away PostgreSQL clusters', () => {
  // Deliberately not skipped when PostgreSQL is missing: CI installs it, and the e2e suites depend on it,
  // so every test below fails with NOT_INSTALLED instead.
  let cluster: PgCluster | undefined;
  const pgc = (): PgCluster => {
    if (!cluster) throw new Error(NOT_INSTALLED);
    return cluster;
  };

  beforeAll(async () => {
    if (!pgAvailable()) return;
    const t0 = performance.now();
    cluster = await startPostgres();
    console.log(`cluster started on 127.0.0.1:${cluster.port} in ${Math.round(performance.now() - t0)} ms`);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('PostgreSQL is installed', () => {
    expect(pgAvailable(), NOT_INSTALLED).toBe(true);
  });

  it('answers select 1 through real psql over TCP', async () => {
    const pg = pgc();
    expect(pg.host).toBe('127.0.0.1');
    expect(await pg.psql('select 1')).toBe('1');
    expect(await pg.psql("select inet_server_addr()::text || ' ' || current_user")).toBe(
      '127.0.0.1/32 postgres',
    );
    expect(await pg.psql('show max_connections')).toBe('50');
  });

  it('rejects with the server error on bad SQL', async () => {
    const pg = pgc();
    await expect(pg.psql('select * from no_such_table')).rejects.toThrow(/no_such_table/);
  });

  it('runs real pgbench', async () => {
    const pg = pgc();
    const env = pg.env();
    const pgbench = pgTool('pgbench');
    await run(pgbench, ['-i', '-s', '1', '-q'], env);
    const out = await run(pgbench, ['-S', '-c', '2', '-j', '1', '-t', '50'], env);
    expect(out).toMatch(/number of transactions actually processed: 100\/100/);
    expect(await pg.psql('select count(*) from pgbench_accounts')).toBe('100000');
  });

  it('two clusters at once get different ports; stop removes the dir and closes the port', async () => {
    const pg = pgc();
    const [a, b] = await Promise.all([startPostgres({ maxConnections: 20 }), startPostgres()]);
    try {
      expect(a.port).not.toBe(b.port);
      expect(a.port).not.toBe(pg.port);
      expect(a.dir).not.toBe(b.dir);
      await a.psql('create table only_in_a (x int)');
      expect(await b.psql("select count(*) from pg_tables where tablename = 'only_in_a'")).toBe('0');
      expect(await a.psql('show max_connections')).toBe('20');
      // psql port override: talk to b while holding a's env
      expect(await a.psql('select current_setting($$port$$)', { port: b.port })).toBe(String(b.port));
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    for (const c of [a, b]) {
      expect(existsSync(c.dir)).toBe(false);
      await expect(connect(c.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await c.stop(); // idempotent
    }
  });
});
