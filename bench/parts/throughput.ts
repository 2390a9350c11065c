/**
 * Bulk transfers through one connection and eight on one session, upload, download and both at once,
 * with the client's and the simulator's CPU during the single-connection runs (summary rows).
 */

import { treeCpu } from '../procfs.js';
import { atLeast, atMost, type Row, row } from '../report.js';
import { withCpu } from '../resources.js';
import { type Direction, transfer } from '../throughput.js';
import { MB } from '../util.js';
import { type BenchPart, eachRun } from './part.js';

const CASES: Array<[Direction, number]> = [
  ['upload', 1],
  ['download', 1],
  ['both', 1],
  ['upload', 8],
  ['download', 8],
  ['both', 8],
];

export const throughput: BenchPart = {
  name: 'throughput',

  async measure(ctx, section) {
    const { plan } = ctx;
    const paced = section === 'paced';
    const rows: Row[] = [];
    const cpuUp = row(
      'cpu-up',
      'client CPU per GB uploaded, 1 conn',
      's/GB',
      'lower',
      'none',
      paced ? undefined : atMost(15),
    );
    const cpuDown = row(
      'cpu-down',
      'client CPU per GB downloaded, 1 conn',
      's/GB',
      'lower',
      'none',
      paced ? undefined : atMost(15),
    );
    // Where the cycles go on this machine: a process at ~100% of a core is the bottleneck.
    const busy = (key: string, who: string, dir: string) =>
      row(key, `${who} CPU busy during the 1-conn ${dir} (info)`, '% core', 'lower', 'none');
    const busyRows = [
      busy('busy-up', 'client', 'upload'),
      busy('busy-down', 'client', 'download'),
      busy('sim-busy-up', 'simulator', 'upload'),
      busy('sim-busy-down', 'simulator', 'download'),
    ];

    for (const [dir, conns] of CASES) {
      const oneWay = dir !== 'both';
      const target = paced
        ? dir === 'upload'
          ? { text: '> 1 (sleep cap)', ok: (v: number) => v > 1 }
          : undefined
        : oneWay
          ? atLeast(50)
          : undefined;
      const label = `${dir === 'both' ? 'upload+download at once' : dir}, ${conns} conn${conns > 1 ? 's on one session' : ''}`;
      const r = row(`${dir}-${conns}`, label, 'MB/s', 'higher', 'ratio', target);
      rows.push(r);
      const bytes = paced && dir !== 'upload' ? plan.pacedDown : plan.bulk;
      await eachRun(
        ctx,
        section,
        plan.runs,
        `${dir} x${conns}`,
        [r, cpuUp, cpuDown, ...busyRows],
        async (c) => {
          const size = c.kind === 'direct' ? bytes * plan.directScale : bytes;
          const timeout = 20_000 + (size / ((c.kind === 'direct' ? 50 : 0.5) * MB)) * 1000;
          const pids = c.pids(section);
          const simBefore = treeCpu([ctx.sim.pid]);
          const { result, cpuSeconds } = await withCpu(pids, () =>
            transfer(ctx.server, c.ports(section)!.server, dir, size, conns, timeout),
          );
          const simSeconds = treeCpu([ctx.sim.pid]) - simBefore;
          const perGb = (s: number) => (Number.isFinite(s) ? s / (result.bytes / 1e9) : undefined);
          const pct = (s: number) => (Number.isFinite(s) ? (s / (result.ms / 1000)) * 100 : undefined);
          const up = conns === 1 && dir === 'upload';
          const down = conns === 1 && dir === 'download';
          const tunnelled = c.kind !== 'direct';
          return [
            result.mbps,
            up ? perGb(cpuSeconds) : undefined,
            down ? perGb(cpuSeconds) : undefined,
            up ? pct(cpuSeconds) : undefined,
            down ? pct(cpuSeconds) : undefined,
            up && tunnelled ? pct(simSeconds) : undefined,
            down && tunnelled ? pct(simSeconds) : undefined,
          ];
        },
      );
    }
    return { rows, summary: [cpuUp, cpuDown, ...busyRows] };
  },

  notes({ plan, opts }) {
    const notes: string[] = [];
    if (plan.directScale !== 1) {
      notes.push(
        `direct bulk transfers move ${plan.directScale}x the bytes of tunnelled ones so that they last long enough to time`,
      );
    }
    if (opts.sections.includes('paced')) {
      notes.push(
        `with pacing on, downloads are ${Math.round(plan.pacedDown / 1024)} KiB: the agent sends at most one 1024-byte message per ms (~1 MB/s) by design`,
      );
    }
    return notes;
  },
};
