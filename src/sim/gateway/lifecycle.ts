/**
 * The service's clock on a session (SPEC 11.3-11.5): the idle timeout (stream data in either direction
 * counts as activity) and the maximum duration, client-socket recycling like the real service's (TCP
 * dropped, no close frame), and the end of a session: `channel_closed` to both sides with the sentence
 * for its reason, then the sockets closed and the agent stopped if it does not stop by itself.
 */

import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { encodeMessage, MessageType } from '../../protocol/message.js';
import { buildChannelClosed } from '../../protocol/payloads.js';
import type { SimSession } from '../sessions.js';
import type { GatewayCore } from './core.js';
import { isOpen } from './http.js';
import type { Relay } from './relay.js';
import { CloseCode, DEFAULT_IDLE_TIMEOUT_MS, TerminateReason } from './types.js';

/** How long the agent gets to act on channel_closed before the gateway stops it outright. */
const AGENT_STOP_DELAY_MS = 1_000;
/** setTimeout's limit; longer limits are cut to it (24.8 days is beyond any test). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The sentence channel_closed carries for a termination reason. */
export function channelClosedOutput(reason: string): string {
  switch (reason) {
    case TerminateReason.Api:
      return 'Session terminated by TerminateSession API';
    case TerminateReason.Idle:
      return 'Your session timed out due to inactivity and has been terminated.';
    case TerminateReason.MaxDuration:
      return 'Your session has reached the maximum session duration and has been terminated.';
    default:
      return reason;
  }
}

/** A session has started: its idle and maximum-duration clocks start too. */
export function armSessionTimers(core: GatewayCore, relay: Relay): void {
  armIdle(core, relay);
  const max = core.opts.maxSessionDurationMs;
  if (max && max > 0) {
    relay.maxTimer = setTimeout(
      () => core.opts.registry.terminate(relay.session.sessionId, TerminateReason.MaxDuration),
      Math.min(max, MAX_TIMER_MS),
    );
    relay.maxTimer.unref();
  }
}

function armIdle(core: GatewayCore, relay: Relay): void {
  const idle = core.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  if (!(idle > 0) || relay.ended) return;
  // One timer per session, re-armed lazily: the hot path only stamps lastActivity.
  const due = relay.lastActivity + idle - core.now();
  relay.idleTimer = setTimeout(
    () => {
      relay.idleTimer = undefined;
      if (relay.ended) return;
      if (core.now() - relay.lastActivity >= idle) {
        core.opts.registry.terminate(relay.session.sessionId, TerminateReason.Idle);
      } else {
        armIdle(core, relay);
      }
    },
    Math.min(Math.max(0, due), MAX_TIMER_MS),
  );
  relay.idleTimer.unref();
}

/** Cuts this client socket `recycleClientMs` after it opened, as the real service does. */
export function armRecycle(core: GatewayCore, relay: Relay, ws: WebSocket): void {
  const recycle = core.opts.recycleClientMs;
  if (!recycle || recycle <= 0) return;
  const timer = setTimeout(
    () => {
      if (relay.client === ws && ws.readyState === WebSocket.OPEN) {
        core.event(relay, 'client socket recycled');
        // The real service just drops the TCP connection; no close frame.
        ws.terminate();
      }
    },
    Math.min(recycle, MAX_TIMER_MS),
  );
  timer.unref();
  ws.once('close', () => clearTimeout(timer));
}

/** The registry ended the session (API, idle, max duration, or the agent): tell both sides. */
export function endSession(core: GatewayCore, relay: Relay, reason: string): void {
  if (relay.ended) return;
  const session = relay.session;
  relay.ended = true;
  relay.stats.endReason = reason;
  clearTimers(relay);
  const output = channelClosedOutput(reason);
  relay.stats.channelClosedOutput = output;
  core.event(relay, `session ended: ${reason}`);
  const closed = channelClosed(core, session, output);
  const client = relay.client;
  if (isOpen(client)) {
    relay.stats.channelClosedToClient++;
    // Behind whatever is still in flight to the client on the WAN's downlink.
    const send = () => {
      if (!isOpen(client)) return;
      client.send(closed, { binary: true });
      client.close(CloseCode.SessionEnded, 'session ended');
    };
    if (relay.down) relay.down.send(closed.length, send);
    else send();
  }
  if (isOpen(relay.agent)) {
    relay.agent.send(closed, { binary: true });
    relay.stats.channelClosedToAgent++;
    relay.agent.close(CloseCode.SessionEnded, 'session ended');
  }
  relay.forAgent.drain();
  relay.forClient.drain();
  relay.agentTokens.clear();
  const proc = relay.agentProc;
  if (proc && !proc.ended) {
    // Give the agent time to act on channel_closed itself before making sure it is gone.
    relay.stopTimer = setTimeout(() => {
      relay.stopTimer = undefined;
      if (!proc.ended) proc.stop(`session terminated: ${reason}`);
    }, AGENT_STOP_DELAY_MS);
    relay.stopTimer.unref();
  }
}

function channelClosed(core: GatewayCore, session: SimSession, output: string): Buffer {
  const messageId = randomUUID();
  return encodeMessage({
    messageType: MessageType.ChannelClosed,
    sequenceNumber: 0,
    flags: 3,
    payloadType: 0,
    messageId,
    payload: buildChannelClosed({
      messageId,
      createdDate: new Date(core.now()).toISOString(),
      destinationId: session.target,
      sessionId: session.sessionId,
      output,
    }),
  });
}

export function clearTimers(relay: Relay): void {
  for (const t of [relay.idleTimer, relay.maxTimer, relay.graceTimer]) if (t) clearTimeout(t);
  relay.idleTimer = relay.maxTimer = relay.graceTimer = undefined;
}
