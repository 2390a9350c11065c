import { execFile } from 'node:child_process';
import { type PgCluster, pgTool } from '../../src/sim/postgres.js';

export * from '../../src/sim/postgres.js';

/**
 * The login tests' database: `orders` holding pgbench's tables, readable by the login role
 * `app_readonly`; `otherRoles` are created as plain login roles beside it.
 */
export async function seedOrders(pg: PgCluster, otherRoles: string[] = []): Promise<void> {
  await pg.psql('create role app_readonly login');
  for (const r of otherRoles) await pg.psql(`create role ${r} login`);
  await pg.psql('create database orders');
  await new Promise<void>((resolve, reject) =>
    execFile(pgTool('pgbench'), ['-i', '-s', '1', '-q', 'orders'], { env: pg.env() }, (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  await pg.psql('grant select on all tables in schema public to app_readonly', {
    extraEnv: { PGDATABASE: 'orders' },
  });
}
