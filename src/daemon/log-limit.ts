/**
 * Rate limit for log lines a peer can trigger at will (malformed frames, bad acks): the first few go
 * out as they come, then at most one summary per interval with how many were suppressed, so a
 * misbehaving gateway cannot flood the log (20,000 bad acks once made 14,286 lines).
 */
import type { Logger } from 'pino';

export interface RateLimitOptions {
  /** Lines let through per interval before suppressing. */
  burst?: number;
  intervalMs?: number;
  now?: () => number;
}

export class RateLimitedLog {
  private windowStart: number;
  private inWindow = 0;
  private suppressed = 0;
  private total = 0;
  private readonly burst: number;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    opts: RateLimitOptions = {},
  ) {
    this.burst = opts.burst ?? 5;
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.windowStart = this.now();
  }

  get count(): number {
    return this.total;
  }

  warn(fields: Record<string, unknown>, message: string): void {
    this.total++;
    const now = this.now();
    if (now - this.windowStart >= this.intervalMs) {
      if (this.suppressed > 0) {
        this.log.warn(
          { ...fields, suppressed: this.suppressed, total: this.total },
          `${message} (and ${this.suppressed} more like it in the last ${Math.round((now - this.windowStart) / 1000)} s)`,
        );
        this.windowStart = now;
        this.inWindow = 1;
        this.suppressed = 0;
        return;
      }
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow < this.burst) {
      this.inWindow++;
      this.log.warn({ ...fields, total: this.total }, message);
      return;
    }
    this.suppressed++;
  }
}
