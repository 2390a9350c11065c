/**
 * The state one gateway shares between its parts (the client side, the agent side, the relay and the
 * session lifecycle): the options, the relays by session id, the live sockets, and the bounded records
 * tests read (violations, refusals, per-session events).
 */

import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { FaultInjector, type FaultSide } from '../faults.js';
import type { SimSession } from '../sessions.js';
import { pushBounded } from './http.js';
import { createRelay, type Relay } from './relay.js';
import {
  DEFAULT_MAX_QUEUED_FRAMES,
  type GatewayOptions,
  type GatewayRefusal,
  type GatewayViolation,
  MAX_FRAME_BYTES,
} from './types.js';
import { Wan } from './wan.js';

const MAX_LOG_ENTRIES = 1_000;
const MAX_EVENTS_PER_SESSION = 200;

export class GatewayCore {
  readonly violations: GatewayViolation[] = [];
  readonly refusals: GatewayRefusal[] = [];
  readonly faults: FaultInjector;
  readonly log: Logger;
  readonly relays = new Map<string, Relay>();
  readonly sockets = new Set<WebSocket>();
  readonly wss: WebSocketServer;
  readonly wan: Wan;
  closed = false;

  constructor(readonly opts: GatewayOptions) {
    this.log = opts.logger;
    this.faults = opts.faults ?? new FaultInjector([], 1);
    this.wan = opts.wan ?? new Wan(undefined);
    // ws would negotiate compression by default; upstream never does (SPEC 3.2). Pongs are sent by
    // open.ts, so that a client's ping pays the WAN's round trip like any other frame.
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      autoPong: false,
    });
  }

  now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  ensureRelay(session: SimSession): Relay {
    let relay = this.relays.get(session.sessionId);
    if (relay) return relay;
    relay = createRelay(
      session,
      this.opts.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES,
      this.now(),
      this.wan.down,
    );
    this.relays.set(session.sessionId, relay);
    return relay;
  }

  /** Destroys one side's TCP connection without a close frame; false if that side is not connected. */
  killSide(relay: Relay, side: FaultSide, why: string): boolean {
    const ws = side === 'client' ? relay.client : relay.agent;
    if (!ws || ws.readyState === WebSocket.CLOSED) return false;
    this.event(relay, `${side} socket ${why}`);
    ws.terminate();
    return true;
  }

  refuse(sessionId: string | undefined, code: number, reason: string): void {
    this.log.info({ sessionId, code, reason }, 'data channel refused');
    pushBounded(this.refusals, { at: this.now(), sessionId, code, reason }, MAX_LOG_ENTRIES);
  }

  event(relay: Relay, text: string): void {
    this.log.debug({ sessionId: relay.session.sessionId }, text);
    pushBounded(relay.events, text, MAX_EVENTS_PER_SESSION);
  }

  violation(relay: Relay, side: FaultSide, code: string, message: string): void {
    pushBounded(
      this.violations,
      { at: this.now(), sessionId: relay.session.sessionId, side, code, message },
      MAX_LOG_ENTRIES,
    );
  }
}
