/**
 * A tunnel whose local port is busy (another program, or a daemon that is still shutting down) is not
 * left silently dead: the manager retries the bind with exponential back-off, forever, and the
 * status shows the attempt and when the next one is.
 */
import type { TunnelLike as Tunnel } from './pool.js';

export const LISTEN_RETRY_BASE_MS = 1000;
export const LISTEN_RETRY_MAX_MS = 30_000;

export function listenRetryDelay(
  attempt: number,
  baseMs = LISTEN_RETRY_BASE_MS,
  maxMs = LISTEN_RETRY_MAX_MS,
): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

export function failedToListen(t: Tunnel): boolean {
  const s = t.status();
  return s.state !== 'stopped' && s.listening.length === 0 && s.lastError?.code === 'LISTEN_FAILED';
}

export class ListenRetries {
  private readonly timers = new Map<Tunnel, NodeJS.Timeout>();

  constructor(private readonly baseMs = LISTEN_RETRY_BASE_MS) {}

  /** Call after `tunnel.start()`: schedules the next bind attempt if it could not listen. */
  watch(tunnel: Tunnel, attempt = 1): void {
    this.cancel(tunnel);
    if (!failedToListen(tunnel)) {
      tunnel.listenRetry = undefined;
      return;
    }
    const delay = listenRetryDelay(attempt, this.baseMs);
    tunnel.listenRetry = { attempt, nextAt: new Date(Date.now() + delay).toISOString() };
    const timer = setTimeout(() => {
      this.timers.delete(tunnel);
      void tunnel.start().then(() => this.watch(tunnel, attempt + 1));
    }, delay);
    timer.unref();
    this.timers.set(tunnel, timer);
  }

  cancel(tunnel: Tunnel): void {
    const t = this.timers.get(tunnel);
    if (t) clearTimeout(t);
    this.timers.delete(tunnel);
    tunnel.listenRetry = undefined;
  }

  cancelAll(): void {
    for (const t of [...this.timers.keys()]) this.cancel(t);
  }
}
