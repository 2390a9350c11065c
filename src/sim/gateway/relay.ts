/**
 * The relay itself (SPEC 1, 16 "everything else is relayed unchanged"): per session, the two sockets,
 * a bounded queue per direction for frames whose receiver is away (SPEC 11.2), and the hot path that
 * moves frames byte for byte from one side to the other. It consumes only the agent's
 * `agent_session_state`; acknowledgements stay end to end. `forward` is the one place every relayed
 * frame goes through on its way out, so a model of the link (delay, bandwidth) belongs there.
 */

import type { WebSocket } from 'ws';
import { decodeMessage, encodeMessage, MessageType } from '../../protocol/message.js';
import { sendBatched } from '../../shared/batched-write.js';
import type { FaultSide } from '../faults.js';
import { frameTypeIs, isStreamData } from '../frames.js';
import type { SimSession } from '../sessions.js';
import type { GatewayCore } from './core.js';
import { EMPTY, isOpen } from './http.js';
import type { AgentHandle, GatewaySessionStats } from './types.js';
import type { WanLink } from './wan.js';

const AGENT_SESSION_STATE = Buffer.from(MessageType.AgentSessionState, 'latin1');
/** Shorter than a message header: relayed anyway (the gateway does not parse), but recorded. */
const MIN_FRAME_BYTES = 120;

/** Fixed-capacity FIFO that drops its oldest entry when full; O(1) amortised. */
export class FrameQueue {
  private items: (Buffer | undefined)[] = [];
  private head = 0;
  constructor(private readonly capacity: number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** true when the oldest frame had to go to make room. */
  push(frame: Buffer): boolean {
    let dropped = false;
    if (this.length >= this.capacity) {
      this.items[this.head++] = undefined;
      dropped = true;
    }
    this.items.push(frame);
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return dropped;
  }

  drain(): Buffer[] {
    const out = this.items.slice(this.head) as Buffer[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

export type RelayStats = Omit<
  GatewaySessionStats,
  | 'clientConnected'
  | 'agentConnected'
  | 'waitingForAgent'
  | 'waitingForClient'
  | 'faultDroppedClientToAgent'
  | 'faultDroppedAgentToClient'
  | 'events'
>;

export interface Relay {
  session: SimSession;
  client?: WebSocket;
  agent?: WebSocket;
  /** Agent frames waiting for a client. */
  forClient: FrameQueue;
  /** Client frames waiting for an agent. */
  forAgent: FrameQueue;
  agentTokens: Set<string>;
  agentProc?: AgentHandle;
  ended: boolean;
  hadClient: boolean;
  agentPaused: boolean;
  lastActivity: number;
  idleTimer?: NodeJS.Timeout;
  maxTimer?: NodeJS.Timeout;
  graceTimer?: NodeJS.Timeout;
  stopTimer?: NodeJS.Timeout;
  stats: RelayStats;
  events: string[];
  /** The WAN's downlink (gateway to client); the uplink shapes client frames as they arrive (open.ts). */
  down?: WanLink;
}

export function createRelay(session: SimSession, queueCapacity: number, now: number, down?: WanLink): Relay {
  return {
    session,
    down,
    forClient: new FrameQueue(queueCapacity),
    forAgent: new FrameQueue(queueCapacity),
    agentTokens: new Set(),
    ended: session.status !== 'Connected',
    hadClient: false,
    agentPaused: false,
    lastActivity: now,
    events: [],
    stats: {
      sessionId: session.sessionId,
      target: session.target,
      clientConnects: 0,
      agentConnects: 0,
      agentTokensIssued: 0,
      signedUpgrades: 0,
      unsignedUpgrades: 0,
      framesClientToAgent: 0,
      framesAgentToClient: 0,
      bytesClientToAgent: 0,
      bytesAgentToClient: 0,
      queuedForAgent: 0,
      queuedForClient: 0,
      queueDroppedForAgent: 0,
      queueDroppedForClient: 0,
      agentSessionStates: 0,
      pausePublicationSent: 0,
      startPublicationSent: 0,
      channelClosedToClient: 0,
      channelClosedToAgent: 0,
    },
  };
}

/** A frame from the client's socket. */
export function fromClient(core: GatewayCore, relay: Relay, ws: WebSocket, frame: Buffer): void {
  // A replaced socket may still deliver a few frames; the client retransmits them on the new one.
  if (relay.client !== ws || relay.ended) return;
  relayFrame(core, relay, 'client', frame);
}

/** A frame from the agent's socket; its agent_session_state is for the service, not the client. */
export function fromAgent(core: GatewayCore, relay: Relay, ws: WebSocket, frame: Buffer): void {
  if (relay.agent !== ws || relay.ended) return;
  if (frameTypeIs(frame, AGENT_SESSION_STATE)) {
    consumeSessionState(core, relay, frame);
    return;
  }
  relayFrame(core, relay, 'agent', frame);
}

function relayFrame(core: GatewayCore, relay: Relay, from: FaultSide, frame: Buffer): void {
  if (frame.length < MIN_FRAME_BYTES) {
    core.violation(relay, from, 'FRAME_TRUNCATED', `${frame.length}-byte frame relayed as is`);
  } else if (isStreamData(frame)) {
    relay.lastActivity = core.now();
  }
  const to: FaultSide = from === 'client' ? 'agent' : 'client';
  if (core.faults.active) {
    core.faults.apply(
      from === 'client' ? 'client->agent' : 'agent->client',
      frame,
      (f) => forward(relay, to, f),
      (side) => core.killSide(relay, side, 'fault injection'),
      relay.session.sessionId,
    );
  } else {
    forward(relay, to, frame);
  }
}

function consumeSessionState(core: GatewayCore, relay: Relay, frame: Buffer): void {
  relay.stats.agentSessionStates++;
  const decoded = decodeMessage(frame);
  if (!decoded.ok) {
    core.violation(relay, 'agent', decoded.error.code, `agent_session_state: ${decoded.error.message}`);
    return;
  }
  try {
    const state = JSON.parse(decoded.message.payload.toString('utf8')) as { SessionState?: unknown };
    if (typeof state.SessionState === 'string') relay.stats.agentSessionState = state.SessionState;
  } catch {
    core.violation(relay, 'agent', 'BAD_PAYLOAD', 'agent_session_state payload is not JSON');
  }
}

/** Hands a frame to `to`'s socket, or queues it while that side is away; the client's across the WAN. */
export function forward(relay: Relay, to: FaultSide, frame: Buffer): void {
  if (relay.ended) return;
  const s = relay.stats;
  if (to === 'agent') {
    const agent = relay.agent;
    if (isOpen(agent)) {
      sendBatched(agent, frame);
      s.framesClientToAgent++;
      s.bytesClientToAgent += frame.length;
      return;
    }
    s.queuedForAgent++;
    if (relay.forAgent.push(frame)) s.queueDroppedForAgent++;
    return;
  }
  // The service holds what it has for an absent client on its own side: it cannot send before a
  // client's OpenDataChannel told it where, so a queued frame crosses the WAN only after that.
  if (relay.down && isOpen(relay.client)) relay.down.send(frame.length, () => toClient(relay, frame));
  else toClient(relay, frame);
}

/**
 * The downlink's far end. No `ended` check: what was in flight when the session ended still arrives,
 * ahead of the channel_closed that followed it on the same link.
 */
function toClient(relay: Relay, frame: Buffer): void {
  const s = relay.stats;
  const client = relay.client;
  if (isOpen(client)) {
    sendBatched(client, frame);
    s.framesAgentToClient++;
    s.bytesAgentToClient += frame.length;
    return;
  }
  if (relay.ended) return;
  s.queuedForClient++;
  if (relay.forClient.push(frame)) s.queueDroppedForClient++;
}

/** `side`'s socket closed (`why`: code and reason): forgotten if still current; false if replaced. */
export function detach(
  core: GatewayCore,
  relay: Relay,
  side: FaultSide,
  ws: WebSocket,
  why: string,
): boolean {
  if (relay[side] !== ws) return false;
  relay[side] = undefined;
  core.event(relay, `${side} disconnected (${why})`);
  return true;
}

/** Everything queued for `to`, sent now that it is back. */
export function flush(relay: Relay, to: FaultSide): void {
  const queue = to === 'agent' ? relay.forAgent : relay.forClient;
  for (const frame of queue.drain()) forward(relay, to, frame);
}

/**
 * pause_publication while the client is away, start_publication when it is back (SPEC 5.3). The
 * payload's contents are unknown upstream, so none is sent.
 */
export function setAgentPaused(core: GatewayCore, relay: Relay, ws: WebSocket, paused: boolean): void {
  const messageType = paused ? MessageType.PausePublication : MessageType.StartPublication;
  ws.send(encodeMessage({ messageType, sequenceNumber: 0, flags: 3, payloadType: 0, payload: EMPTY }), {
    binary: true,
  });
  core.event(relay, `${messageType} sent to agent`);
  if (paused) relay.stats.pausePublicationSent++;
  else relay.stats.startPublicationSent++;
  relay.agentPaused = paused;
}
