/**
 * With pacing on only: an upload much faster than the destination drains (a slow sink), which must
 * complete; meanwhile what the agent held out of order or received twice, what the client resent, and
 * the simulator's peak RSS.
 */
import { treeRss } from '../procfs.js';
import { type Row, row } from '../report.js';
import type { SimProcess } from '../setup.js';
import { slowSinkUpload } from '../throughput.js';
import { MB } from '../util.js';
import { type BenchPart, eachRun } from './part.js';

/** The simulated agents' receive counters, summed over every session. */
async function agentCounters(sim: SimProcess): Promise<{ duplicates: number; reordered: number }> {
  const st = (await sim.control('/_sim/state')) as {
    sessions: Array<{ agent: { dataChannel?: { duplicates?: number; reordered?: number } } | null }>;
  };
  let duplicates = 0;
  let reordered = 0;
  for (const s of st.sessions) {
    duplicates += s.agent?.dataChannel?.duplicates ?? 0;
    reordered += s.agent?.dataChannel?.reordered ?? 0;
  }
  return { duplicates, reordered };
}

export const overrun: BenchPart = {
  name: 'overrun',
  stress: true,

  async measure(ctx, section) {
    const rows: Row[] = [];
    if (section !== 'paced') return { rows };
    const { plan } = ctx;
    const mb = Math.round(plan.overrunBytes / MB);
    const rate = plan.slowSinkRate / MB;
    const info = (key: string, label: string, unit: string) => row(key, `  ${label}`, unit, 'lower', 'none');
    rows.push(
      row('overrun', `${mb} MB upload into a ${rate} MB/s sink`, 'MB/s', 'higher', 'none', {
        text: 'completes',
        ok: () => true,
      }),
      info(
        'overrun-reordered',
        'meanwhile: messages the agent held out of order (refused an earlier one)',
        'count',
      ),
      info('overrun-dups', 'meanwhile: messages the agent received twice', 'count'),
      info('overrun-resent', 'meanwhile: messages the client retransmitted', 'count'),
      info('overrun-sim-rss', 'meanwhile: simulator RSS, peak', 'MB'),
    );
    await eachRun(
      ctx,
      section,
      1,
      'slow-sink upload',
      rows,
      async (c) => {
        const before = await agentCounters(ctx.sim);
        const resentBefore = await c.retransmissions?.(section);
        let simPeak = treeRss([ctx.sim.pid]);
        const sampler = setInterval(() => {
          simPeak = Math.max(simPeak, treeRss([ctx.sim.pid]));
        }, 100);
        const timeout = 60_000 + (plan.overrunBytes / plan.slowSinkRate) * 3000;
        let r: Awaited<ReturnType<typeof slowSinkUpload>>;
        try {
          r = await slowSinkUpload(
            ctx.server,
            c.ports(section)!.server,
            plan.overrunBytes,
            plan.slowSinkRate,
            timeout,
          );
        } finally {
          clearInterval(sampler);
        }
        const after = await agentCounters(ctx.sim);
        const resentAfter = await c.retransmissions?.(section);
        return [
          r.mbps,
          after.reordered - before.reordered,
          after.duplicates - before.duplicates,
          resentBefore === undefined || resentAfter === undefined ? undefined : resentAfter - resentBefore,
          simPeak / MB,
        ];
      },
      (c) => c.kind !== 'direct',
    );
    return { rows };
  },
};
