/**
 * Basic mode's connection gate. Basic mode carries raw bytes with no connection id (SPEC 10.5): Output
 * the agent read from the previous destination connection is indistinguishable from output of the next
 * one. The agent only redials on the client's first Output after DisconnectToPort, so everything that
 * arrives before the next local connection sends anything belongs to the connection that ended.
 *
 * The gate therefore keeps the slot closed after a disconnect until (1) the agent has acknowledged the
 * DisconnectToPort flag (it processed it and closed the old destination), (2) no hole is left in the
 * incoming sequence (a lost message of the old connection would otherwise be resent into the next
 * one) and (3) no Output has arrived for a quiet period. Output arriving meanwhile is acknowledged and
 * discarded, so the agent never resends it into the next connection. A reconnect in between lengthens
 * the quiet period past the agent's largest RTO (1 s, SPEC 7.5), since its resends of what the dead
 * socket lost only start then. This costs a few hundred ms per connection switch; basic mode is for
 * agents old enough that correctness is worth more than that.
 *
 * The quiet period is still a timing guess: an agent stalled longer than it (a loaded machine) can
 * deliver old output after the gate opened. The daemon therefore gives each basic-mode connection a
 * session of its own (daemon/tunnel.ts); this gate is the second line, for users of PortSession that
 * keep a session across connections.
 */

export const BASIC_QUIET_MS = 300;
/** Agent RTO ceiling (1 s) plus its 100 ms tick plus margin. */
export const BASIC_QUIET_AFTER_RECONNECT_MS = 1_300;

export interface BasicGateOptions {
  quietMs?: number;
  quietAfterReconnectMs?: number;
}

export interface GateProbe {
  /** Whether the agent acknowledged our message with this sequence number. */
  isAcknowledged(seq: number): boolean;
  /** Whether incoming messages wait behind a missing one (reorder buffer not empty). */
  inboundGap(): boolean;
}

export class BasicGate {
  private disconnectSeq: number | undefined;
  private lastOutputAt = 0;
  private quietMs: number;
  private closed = false;
  private discarded = 0;
  private discardedBytes = 0;

  constructor(private readonly opts: BasicGateOptions = {}) {
    this.quietMs = opts.quietMs ?? BASIC_QUIET_MS;
  }

  /** True while a finished connection's output may still arrive. */
  get isDraining(): boolean {
    return this.closed;
  }

  get stats(): { discardedMessages: number; discardedBytes: number } {
    return { discardedMessages: this.discarded, discardedBytes: this.discardedBytes };
  }

  /** The local connection ended and DisconnectToPort went out with sequence number `seq`. */
  disconnected(seq: number, now: number): void {
    this.closed = true;
    this.disconnectSeq = seq;
    this.lastOutputAt = now;
    this.quietMs = this.opts.quietMs ?? BASIC_QUIET_MS;
  }

  /** Output while draining: it belongs to the finished connection. */
  discard(bytes: number, now: number): void {
    this.discarded++;
    this.discardedBytes += bytes;
    this.lastOutputAt = now;
  }

  /** The WebSocket came back: the agent's resends of lost messages start now. */
  reconnected(now: number): void {
    if (!this.closed) return;
    this.lastOutputAt = now;
    this.quietMs = Math.max(this.quietMs, this.opts.quietAfterReconnectMs ?? BASIC_QUIET_AFTER_RECONNECT_MS);
  }

  /** Returns true when the gate opened on this call. */
  poll(now: number, probe: GateProbe): boolean {
    if (!this.closed) return false;
    if (this.disconnectSeq !== undefined && !probe.isAcknowledged(this.disconnectSeq)) return false;
    if (probe.inboundGap()) return false;
    if (now - this.lastOutputAt < this.quietMs) return false;
    this.closed = false;
    this.disconnectSeq = undefined;
    return true;
  }
}
