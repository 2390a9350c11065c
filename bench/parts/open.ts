/** Time to first byte: a lazily opened tunnel's first connection, and a new connection on a warm session. */
import { lazyOpen, warmFirstByte } from '../open-time.js';
import { atMost, row } from '../report.js';
import { type BenchPart, eachRun } from './part.js';

export const open: BenchPart = {
  name: 'open',

  async measure(ctx, section) {
    const paced = section === 'paced';
    const lazy = row(
      'first-byte-lazy',
      'lazy open: first connection to first byte',
      'ms',
      'lower',
      'ratio',
      paced ? undefined : atMost(150),
    );
    await eachRun(ctx, section, ctx.plan.lazyRuns, 'lazy open', [lazy], async (c) => {
      const v = await lazyOpen(c, section);
      return v === undefined ? undefined : [v];
    });
    const warm = row('first-byte-warm', 'warm session: new connection to first byte', 'ms', 'lower', 'ratio');
    await eachRun(ctx, section, ctx.plan.warmRuns, 'warm first byte', [warm], async (c) => [
      await warmFirstByte(c.ports(section)!.server),
    ]);
    return { rows: [lazy, warm] };
  },
};
