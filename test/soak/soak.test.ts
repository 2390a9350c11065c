/**
 * The short seeded soak inside `npm test`: every scenario but the 20 s freeze (test/daemon/
 * tunnel-freeze.test.ts covers the freeze below the process level), small sizes, same checks on
 * bytes: nothing lost, nothing corrupted, every scenario's own checks pass. Stall times are only
 * printed here (speed belongs to `npm run soak` and the benchmarks, not to timed tests).
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from './run.js';

describe('soak (short, seeded)', () => {
  it('loses and corrupts nothing under drops, duplicates, reordering, delay, kills and recycles', {
    timeout: 120_000,
  }, async () => {
    const lines: string[] = [];
    const summary = await runSoak({ quick: true, tiny: true, seed: 14, log: (l) => lines.push(l) }, [
      'bulk',
      'recycles',
      'slowReader',
      'faithful',
      'quirks',
      'lossyFaithful',
    ]);
    console.log([...lines, summary.line].join('\n'));
    expect(summary.failures).toEqual([]);
    expect(summary.lost).toBe(0);
    expect(summary.corrupted).toBe(0);
    expect(summary.kills).toBeGreaterThanOrEqual(24);
    expect(summary.line).toMatch(
      /^soak: \d+\.\d\d GB over \d+ connections, \d+ WebSocket kills, 0 lost, 0 corrupted, longest stall \d+\.\d\d s$/,
    );
  });
});
