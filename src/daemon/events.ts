/**
 * What changed in the daemon, as events for `GET /events` and counters for `/metrics`: tunnel state
 * changes, new errors (counted by code), tunnels added and removed, reloads.
 *
 * Tunnels keep their state in plain fields, so the hub compares snapshots of their status a few times a
 * second instead of hooking every assignment: cheap (a handful of objects), and it cannot miss a
 * change that lasts longer than one period.
 */
import { EventEmitter } from 'node:events';
import type { TunnelManager } from './manager.js';
import type { TunnelStatus } from './tunnel.js';

export const EVENT_PERIOD_MS = 200;

export type DaemonEvent =
  | { type: 'state'; tunnel: string; state: string; previous: string; at: string }
  | { type: 'error'; tunnel: string; code: string; message: string; fix?: string; at: string }
  | { type: 'added' | 'removed'; tunnel: string; at: string }
  | { type: 'reload'; at: string; added: string[]; removed: string[]; changed: string[]; error?: string };

interface Seen {
  state: string;
  errorAt?: string;
}

export class EventHub extends EventEmitter<{ event: [DaemonEvent] }> {
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | undefined;
  /** errors[tunnel][code] = count since start. */
  readonly errors = new Map<string, Map<string, number>>();

  constructor(private readonly manager: TunnelManager) {
    super();
    this.setMaxListeners(0);
  }

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), EVENT_PERIOD_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  publish(e: DaemonEvent): void {
    this.emit('event', e);
  }

  /** Compares the tunnels' status with the last look; public so a route can force a look. */
  check(): void {
    const at = new Date().toISOString();
    const now = new Map<string, TunnelStatus>(this.manager.list().map((s) => [s.name, s]));
    for (const [name, s] of now) {
      const before = this.seen.get(name);
      if (!before) this.publish({ type: 'added', tunnel: name, at });
      else if (before.state !== s.state)
        this.publish({ type: 'state', tunnel: name, state: s.state, previous: before.state, at });
      const err = s.lastError;
      if (err && err.at !== before?.errorAt) {
        const byCode = this.errors.get(name) ?? new Map<string, number>();
        this.errors.set(name, byCode);
        byCode.set(err.code, (byCode.get(err.code) ?? 0) + 1);
        this.publish({ type: 'error', tunnel: name, code: err.code, message: err.message, fix: err.fix, at });
      }
      this.seen.set(name, { state: s.state, errorAt: err?.at });
    }
    for (const name of [...this.seen.keys()]) {
      if (now.has(name)) continue;
      this.seen.delete(name);
      this.publish({ type: 'removed', tunnel: name, at });
    }
  }
}
