/**
 * What the real agent does that a textbook peer would not, emulated on purpose so clients are tested
 * against it (SPEC 16, 3.5, 10.2, 8.4):
 * - the stuck-message bug: an ack that beats the agent's own bookkeeping is lost (StuckMessage);
 * - the racy handshake order: HandshakeComplete sometimes ahead of the ack of the HandshakeResponse
 *   (completeBeforeAck);
 * - keepalive rules: WebSocket ping every 54 s with a 60 s pong deadline, the first one 54 + 60 s
 *   (WsKeepalive); smux keepalive by the agent's version gate on the ClientVersion (smuxKeepalive);
 * - the crash: in basic mode a refused destination kills the agent process (crashesOnRefusedDial).
 * Duplicate re-acking before 3.2.1041.0 is the data channel's `reackDuplicates` (see channel.ts).
 */

import WebSocket from 'ws';
import { type DecodedMessage, MessageType } from '../../protocol/message.js';
import { parseAcknowledge } from '../../protocol/payloads.js';
import { agentModeFor } from '../../protocol/version.js';
import { AGENT_PING_INTERVAL_MS, AGENT_PONG_TIMEOUT_MS, type AgentContext } from './options.js';

/** The agent sends a message before recording it as unacked; an ack arriving in between is lost. */
export class StuckMessage {
  private readonly seqs = new Set<number>();

  constructor(private readonly ctx: AgentContext) {}

  /** Called for every stream message the agent sends: picks the ones whose first ack will vanish. */
  sent(seq: number): void {
    const stuck = this.ctx.opts.emulate?.stuckMessage;
    if (stuck !== undefined && (typeof stuck === 'number' ? this.ctx.rand() < stuck : stuck.seq === seq)) {
      this.seqs.add(seq);
    }
  }

  /** true when this incoming message is the first ack of a chosen message, which the agent loses. */
  swallows(m: DecodedMessage): boolean {
    if (m.messageType !== MessageType.Acknowledge || this.seqs.size === 0) return false;
    const seq = parseAcknowledge(m.payload)?.AcknowledgedMessageSequenceNumber;
    // The real agent records a message as unacked only after sending it; an ack that beats the
    // recording is lost (SPEC 16). Modelled as: the first ack for the chosen message vanishes.
    if (seq !== undefined && this.seqs.delete(seq)) {
      this.ctx.counters.stuckAcksDropped++;
      return true;
    }
    return false;
  }
}

/**
 * The data channel acks only after deliver() returns: sending HandshakeComplete at once puts it ahead
 * of that ack (the racy order of SPEC 16), a microtask puts it after. Draws once per session.
 */
export function completeBeforeAck(ctx: AgentContext): boolean {
  return ctx.rand() < (ctx.opts.completeBeforeAck ?? 0);
}

/** The agent's own mode and smux keepalive, decided from the client's version (SPEC 10.2). */
export function agentDecision(
  ctx: AgentContext,
  clientVersion: string | undefined,
): ReturnType<typeof agentModeFor> {
  return agentModeFor(clientVersion ?? '', ctx.opts.properties.type, ctx.opts.agentVersion);
}

/** The agent's WebSocket keepalive (SPEC 3.5): a missed pong deadline counts as a dropped socket. */
export class WsKeepalive {
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;

  constructor(private readonly ctx: AgentContext) {}

  attach(ws: WebSocket): void {
    const pongTimeout = this.ctx.opts.pongTimeoutMs ?? AGENT_PONG_TIMEOUT_MS;
    ws.on('pong', () => {
      this.deadline = Date.now() + pongTimeout;
    });
    const interval = this.ctx.opts.pingIntervalMs ?? AGENT_PING_INTERVAL_MS;
    this.deadline = Date.now() + interval + pongTimeout;
    this.timer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.ping('keepalive');
    }, interval);
    this.timer.unref();
  }

  expired(now: number): boolean {
    return now > this.deadline;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export const CRASH_REASON = 'agent crashed';

/** Basic mode: a refused destination makes the agent process panic and exit (SPEC 16). */
export function crashesOnRefusedDial(ctx: AgentContext): boolean {
  return ctx.opts.emulate?.basicRefuseExit === true;
}
