/**
 * Everything a bench run measures against, started and stopped together: the simulator and the bench
 * server, a throw-away PostgreSQL when pgbench is wanted, and the clients (direct, ssmtun, and any
 * --client), plus the warm-up each section starts with.
 */
import { pgAvailable, startPostgres } from '../src/sim/postgres.js';
import { type Client, CmdClient, DirectClient, type Env, PortClient, SsmtunClient } from './clients.js';
import { warmFirstByte } from './open-time.js';
import type { Options } from './options.js';
import type { Ctx } from './parts/part.js';
import { pgbenchInit } from './pgbench.js';
import { startBenchServer } from './server.js';
import { addInstances, ensureBuild, INSTANCES, type SectionName, startSim, waitListening } from './setup.js';
import { log } from './util.js';

export interface Rig {
  ctx: Ctx;
  stop(): Promise<void>;
}

/** Starts the rig; `notes` gets what the report should say about what could not be started. */
export async function startRig(opts: Options, notes: string[]): Promise<Rig> {
  if (opts.runtime === 'build') await ensureBuild();
  const wantPg = opts.parts.has('pgbench') || opts.parts.has('wan') || opts.parts.has('pool');
  const usePg = wantPg && pgAvailable();
  if (wantPg && !usePg) notes.push('PostgreSQL server binaries not found: pgbench rows skipped');
  const [sim, server, pg] = await Promise.all([
    startSim(opts.runtime, opts.simPort, opts.simNodeArgs),
    startBenchServer(opts.serverPort),
    usePg ? startPostgres({ maxConnections: 60 }) : Promise.resolve(undefined),
  ]);
  const clients: Client[] = [];
  const ctx: Ctx = { opts, plan: opts.plan, sim, server, pg, clients };
  const stop = async () => {
    for (const c of clients.reverse())
      await c.stop().catch((e: Error) => log(`stopping ${c.name}: ${e.message}`));
    await Promise.all([sim.stop(), server.close(), pg?.stop()]);
  };
  try {
    await addInstances(sim);
    if (pg) await pgbenchInit(pg);
    log(
      `simulator ${sim.endpoint} (instances: unpaced ${INSTANCES.unpaced}, paced ${INSTANCES.paced}), ` +
        `bench server 127.0.0.1:${server.port}${pg ? `, postgres 127.0.0.1:${pg.port}` : ''}`,
    );
    // The IAM login row: a simulated RDS (TLS, token check) in front of the same PostgreSQL.
    const iamDb = pg
      ? await sim
          .control('/_sim/databases', { name: 'bench', upstream: { host: '127.0.0.1', port: pg.port } })
          .then((d) => ({ ...(d as { host: string; port: number; caFile: string }), user: pg.user }))
          .catch((e: Error) => {
            notes.push(`no simulated RDS for the auth = "iam" row: ${e.message}`);
            return undefined;
          })
      : undefined;
    const env: Env = {
      sim,
      serverPort: server.port,
      pgPort: pg?.port,
      iamDb,
      runtime: opts.runtime,
      daemonNodeArgs: opts.daemonNodeArgs,
      sections: opts.sections,
    };
    clients.push(new DirectClient(env));
    const ssmtun = new SsmtunClient(env);
    await ssmtun.start();
    clients.push(ssmtun);
    for (const spec of opts.clients) {
      if (spec.startsWith('cmd:')) {
        const c = new CmdClient(spec.slice(4), env);
        await c.start();
        clients.push(c);
      } else {
        const c = new PortClient(spec.slice(5));
        log(
          `waiting up to ${opts.clientWaitMs / 1000} s for ${c.name} to listen on ${c.allPorts().join(', ')}`,
        );
        for (const p of c.allPorts()) await waitListening(p, opts.clientWaitMs);
        clients.push(c);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { ctx, stop };
}

/** Warm every session up (ssmtun opens lazily), so the first figure doesn't carry the open. */
export async function warmUp(ctx: Ctx, section: SectionName): Promise<void> {
  for (const c of ctx.clients) {
    const p = c.ports(section);
    if (!p) continue;
    await warmFirstByte(p.server).catch((e: Error) => log(`${section} warm-up ${c.name}: ${e.message}`));
    if (p.pg && ctx.pg) {
      await ctx.pg
        .psql('select 1', { port: p.pg, host: '127.0.0.1' })
        .catch((e: Error) => log(`${section} pg warm-up ${c.name}: ${e.message}`));
    }
  }
}
