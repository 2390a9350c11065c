// `pgbench -S` (select-only) tps with 1 and 8 clients, against a throw-away PostgreSQL; or a script.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type PgCluster, pgTool } from '../src/sim/postgres.js';
import { tempDir } from './setup.js';

/**
 * Ten consecutive accounts, every column: about 1.3 KB per answer (filler is char(84)), more than the
 * agent's 1024-byte read, where `-S`'s answer is about 80 bytes. It is the result-set side of a
 * database workload, the one a session's read rate limits.
 */
export const RANGE_SCRIPT = `\\set aid random(1, 100000 * :scale - 9)
SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 9;
`;

let rangeFile: string | undefined;
function scriptFile(): string {
  if (!rangeFile) {
    rangeFile = path.join(tempDir('ssmtun-bench-pgbench-'), 'range.sql');
    writeFileSync(rangeFile, RANGE_SCRIPT);
  }
  return rangeFile;
}

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

/** Select-only (or RANGE_SCRIPT) tps through `port`, excluding connection time as pgbench reports it. */
export async function pgbenchTps(
  pg: PgCluster,
  port: number,
  clients: number,
  seconds: number,
  workload: 'select' | 'range' = 'select',
): Promise<number> {
  const env = { ...pg.env(), PGHOST: '127.0.0.1', PGPORT: String(port) };
  const jobs = Math.min(clients, 2);
  const out = await run(
    [
      ...(workload === 'range' ? ['-f', scriptFile()] : ['-S']),
      ...['-n', '-c', String(clients), '-j', String(jobs), '-T', String(seconds)],
    ],
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
