/**
 * `npm run soak [-- --quick] [--seed N] [--only a,b]`: the fault soak of issue 14 (see run.ts).
 * Exits non-zero when anything was lost or corrupted, a stall reached 2 s, or a scenario failed.
 */
import { parseArgs } from 'node:util';
import { runSoak } from './run.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    only: { type: 'string' },
  },
});
const seed = Number(values.seed);
const started = Date.now();
const summary = await runSoak(
  { quick: values.quick ?? false, seed, log: (l) => console.log(l) },
  values.only?.split(','),
);
console.log(
  `took ${((Date.now() - started) / 1000).toFixed(0)} s, seed ${seed}${values.quick ? ', quick' : ''}`,
);
for (const f of summary.failures) console.log(`FAIL ${f}`);
const ok =
  summary.failures.length === 0 &&
  summary.lost === 0 &&
  summary.corrupted === 0 &&
  summary.longestStallMs < 2000;
console.log(summary.line);
process.exitCode = ok ? 0 : 1;
