/**
 * What changed in the daemon, as events for `GET /events` and counters for `/metrics`: tunnel state
 * changes and new errors (pushed by the tunnels as they happen, never sampled, so a change that lasts a
 * millisecond is still seen), tunnels added and removed, and reloads.
 */
import { EventEmitter } from 'node:events';
import type { TunnelObserver, TunnelState, TunnelStatus } from './tunnel.js';

export type DaemonEvent =
  | { type: 'state'; tunnel: string; state: string; previous: string; at: string }
  | { type: 'error'; tunnel: string; code: string; message: string; fix?: string; at: string }
  | { type: 'added' | 'removed'; tunnel: string; at: string }
  | { type: 'reload'; at: string; added: string[]; removed: string[]; changed: string[]; error?: string };

export class EventHub extends EventEmitter<{ event: [DaemonEvent] }> implements TunnelObserver {
  /** errors[tunnel][code] = count since start. */
  readonly errors = new Map<string, Map<string, number>>();

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  publish(e: DaemonEvent): void {
    this.emit('event', e);
  }

  state(tunnel: string, state: TunnelState, previous: TunnelState): void {
    this.publish({ type: 'state', tunnel, state, previous, at: new Date().toISOString() });
  }

  error(tunnel: string, e: NonNullable<TunnelStatus['lastError']>): void {
    const byCode = this.errors.get(tunnel) ?? new Map<string, number>();
    this.errors.set(tunnel, byCode);
    byCode.set(e.code, (byCode.get(e.code) ?? 0) + 1);
    this.publish({ type: 'error', tunnel, code: e.code, message: e.message, fix: e.fix, at: e.at });
  }

  added(tunnel: string): void {
    this.publish({ type: 'added', tunnel, at: new Date().toISOString() });
  }

  removed(tunnel: string): void {
    this.errors.delete(tunnel);
    this.publish({ type: 'removed', tunnel, at: new Date().toISOString() });
  }
}
