// `pgbench -S` (select-only) tps with 1 and 8 clients, against a throw-away PostgreSQL.
import { execFile } from 'node:child_process';
import { type PgCluster, pgTool } from '../src/sim/postgres.js';

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      pgTool('pgbench'),
      args,
      { env, timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`pgbench ${args.join(' ')}: ${(stderr || err.message).trim().slice(-500)}`));
        else resolve(stdout);
      },
    );
  });
}

/** pgbench -i -s 1 on the cluster itself (once). */
export async function pgbenchInit(pg: PgCluster): Promise<void> {
  await run(['-i', '-s', '1', '-q'], pg.env(), 120_000);
}

/** Select-only tps through `port` (excluding connection time, as pgbench reports it). */
export async function pgbenchTps(
  pg: PgCluster,
  port: number,
  clients: number,
  seconds: number,
): Promise<number> {
  const env = { ...pg.env(), PGHOST: '127.0.0.1', PGPORT: String(port) };
  const jobs = Math.min(clients, 2);
  const out = await run(
    ['-S', '-n', '-c', String(clients), '-j', String(jobs), '-T', String(seconds)],
    env,
    seconds * 1000 + 60_000,
  );
  const failed = /number of failed transactions: (\d+)/.exec(out);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench: ${failed[1]} failed transactions`);
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(
    out,
  );
  if (!m) throw new Error(`pgbench printed no tps: ${out.slice(-300)}`);
  return Number(m[1]);
}
