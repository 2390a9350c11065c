/** pgbench -S against the throw-away PostgreSQL with 1 and 8 clients, and the CPU spent with 8. */

import type { Client } from '../clients.js';
import { pgbenchTps } from '../pgbench.js';
import { treeCpu } from '../procfs.js';
import { type Row, ratioAtLeast, row } from '../report.js';
import { withCpu } from '../resources.js';
import type { SectionName } from '../setup.js';
import { type BenchPart, type Ctx, eachRun } from './part.js';

export const pgbench: BenchPart = {
  name: 'pgbench',

  async measure(ctx, section) {
    const rows: Row[] = [];
    const pg = ctx.pg;
    // No PostgreSQL server binaries: the runner says so in a note.
    if (!pg) return { rows };
    const { plan } = ctx;
    const paced = section === 'paced';
    for (const clients of [1, 8]) {
      const target = !paced && clients === 8 ? ratioAtLeast(50) : undefined;
      const r = row(
        `pgbench-${clients}`,
        `pgbench -S, ${clients} client${clients > 1 ? 's' : ''}`,
        'tps',
        'higher',
        'ratio',
        target,
      );
      rows.push(r);
      const info =
        clients === 8
          ? [
              row('pg-busy', 'client CPU busy during pgbench -c 8 (info)', '% core', 'lower', 'none'),
              row('pg-sim-busy', 'simulator CPU busy during pgbench -c 8 (info)', '% core', 'lower', 'none'),
            ]
          : [];
      await eachRun(
        ctx,
        section,
        plan.runs,
        `pgbench -c ${clients}`,
        [r, ...info],
        async (c) => {
          const t0 = performance.now();
          const simBefore = treeCpu([ctx.sim.pid]);
          const { result, cpuSeconds } = await withCpu(c.pids(section), () =>
            pgbenchTps(pg, c.ports(section)!.pg!, clients, plan.pgSeconds),
          );
          const secs = (performance.now() - t0) / 1000;
          const simSeconds = treeCpu([ctx.sim.pid]) - simBefore;
          const tunnelled = c.kind !== 'direct';
          return [
            result,
            Number.isFinite(cpuSeconds) ? (cpuSeconds / secs) * 100 : undefined,
            tunnelled ? (simSeconds / secs) * 100 : undefined,
          ];
        },
        (c) => c.ports(section)?.pg !== undefined,
      );
      rows.push(...info);
      if (clients === 8) rows.push(await iamRow(ctx, section, plan.runs, plan.pgSeconds));
    }
    return { rows };
  },
};

/**
 * `auth = "iam"` (issue 10): the same pgbench through the local PostgreSQL front, which logs each
 * connection in to a simulated RDS (TLS verify-full, IAM token) and then splices bytes. The login
 * costs only at connect time; pgbench excludes connection time from its tps, so the figure should
 * match plain forwarding (the pgbench-8 row above).
 */
async function iamRow(ctx: Ctx, section: SectionName, runs: number, seconds: number): Promise<Row> {
  const r = row(
    'pgbench-8-iam',
    'pgbench -S, 8 clients, auth = "iam" (login by the tunnel)',
    'tps',
    'higher',
    'ratio',
  );
  const port = (c: Client) => (c.kind === 'direct' ? c.ports(section)?.pg : c.ports(section)?.pgIam);
  await eachRun(
    ctx,
    section,
    runs,
    'pgbench -c 8 auth=iam',
    [r],
    async (c) => [await pgbenchTps(ctx.pg!, port(c)!, 8, seconds)],
    (c) => port(c) !== undefined,
  );
  return r;
}
