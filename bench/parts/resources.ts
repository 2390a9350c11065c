/**
 * Memory and many connections: the client's RSS idle with 10 tunnels (once, before the first section:
 * never connected, and for ssmtun again after one session has come and gone, the state a daemon
 * that has been used sits in),
 * its peak RSS with `manyConns` active connections, and their round trips per second all together.
 */
import { atMost, record, row } from '../report.js';
import { manyConnections } from '../resources.js';
import { log, MB } from '../util.js';
import { type BenchPart, eachRun } from './part.js';

export const resources: BenchPart = {
  name: 'resources',

  async before(ctx) {
    const idleRow = row(
      'rss-idle',
      'client RSS, idle with 10 tunnels never connected (settled, see clients.ts)',
      'MB',
      'lower',
      'none',
      atMost(80),
    );
    const usedRow = row(
      'rss-idle-used',
      'client RSS, idle with 10 tunnels after one session opened and closed (AWS SDK loaded)',
      'MB',
      'lower',
      'none',
      atMost(80),
    );
    for (const c of ctx.clients) {
      if (!c.idleRss10) continue;
      try {
        const { fresh, afterUse } = await c.idleRss10();
        record(idleRow, c.name, fresh / MB);
        if (afterUse !== undefined) record(usedRow, c.name, afterUse / MB);
        log(
          `idle RSS with 10 tunnels ${c.name}: ${(fresh / MB).toFixed(1)} MB${afterUse === undefined ? '' : `, ${(afterUse / MB).toFixed(1)} MB after one session`}`,
        );
      } catch (e) {
        record(idleRow, c.name, e as Error);
        if (c.kind === 'ssmtun') record(usedRow, c.name, e as Error);
        log(`idle RSS ${c.name}: FAILED ${(e as Error).message}`);
      }
    }
    return [idleRow, usedRow];
  },

  async measure(ctx, section) {
    const { plan } = ctx;
    const paced = section === 'paced';
    const rss = row(
      'rss-200',
      `client RSS, peak with ${plan.manyConns} active connections`,
      'MB',
      'lower',
      'none',
      paced ? undefined : atMost(200),
    );
    const rts = row(
      'rt-200',
      `${plan.manyConns} connections: 64-byte round trips per second, all together`,
      '1/s',
      'higher',
      'ratio',
    );
    await eachRun(ctx, section, plan.manyRuns, `${plan.manyConns} connections`, [rss, rts], async (c) => {
      const r = await manyConnections(c.ports(section)!.server, plan.manyConns, plan.manyMs, c.pids(section));
      return [Number.isFinite(r.peakRss) ? r.peakRss / MB : undefined, r.roundTripsPerSec];
    });
    return { rows: [rss, rts] };
  },
};
