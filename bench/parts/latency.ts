/** 64-byte ping-pong round trips on one connection: median and p99. */
import { pingPong } from '../latency.js';
import { addedAtMost, row } from '../report.js';
import { type BenchPart, eachRun } from './part.js';

export const latency: BenchPart = {
  name: 'latency',

  async measure(ctx, section) {
    const paced = section === 'paced';
    const med = row(
      'ping-median',
      '64-byte ping-pong round trip, median',
      'ms',
      'lower',
      'added',
      paced ? undefined : addedAtMost(0.3, ' ms'),
    );
    const p99 = row('ping-p99', '64-byte ping-pong round trip, p99', 'ms', 'lower', 'added');
    await eachRun(ctx, section, ctx.plan.runs, 'ping-pong', [med, p99], async (c) => {
      const r = await pingPong(c.ports(section)!.server, ctx.plan.pingIters, 120_000);
      return [r.medianMs, r.p99Ms];
    });
    return { rows: [med, p99] };
  },
};
