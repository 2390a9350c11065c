import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RateLimitedLog } from '../../src/daemon/log-limit.js';

describe('RateLimitedLog', () => {
  it('20,000 malformed frames in a burst make a handful of lines, with counts', () => {
    let now = 0;
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const limited = new RateLimitedLog(log, { burst: 5, intervalMs: 10_000, now: () => now });
    for (let i = 0; i < 20_000; i++) {
      now += 1; // 20 s in all
      limited.warn({ code: 'BAD_PAYLOAD' }, 'dropped malformed frame');
    }
    expect(lines.length).toBeLessThanOrEqual(12);
    const summaries = lines.filter((l) => typeof l.suppressed === 'number');
    expect(summaries.length).toBeGreaterThanOrEqual(1);
    expect(String(summaries[0].msg)).toMatch(/and \d+ more like it/);
    expect(limited.count).toBe(20_000);
    // Every frame is accounted for: lines let through plus the suppressed counts reported or pending.
    const reported =
      lines.length - summaries.length + summaries.reduce((n, l) => n + 1 + (l.suppressed as number), 0);
    expect(reported).toBeLessThanOrEqual(20_000);
    expect(lines.at(-1)?.total).toBeGreaterThan(9_000);
  });

  it('lets sparse lines through unchanged', () => {
    let now = 0;
    const lines: unknown[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const limited = new RateLimitedLog(log, { burst: 2, intervalMs: 1000, now: () => now });
    for (let i = 0; i < 10; i++) {
      now += 5000;
      limited.warn({}, 'rare');
    }
    expect(lines.length).toBe(10);
  });
});
