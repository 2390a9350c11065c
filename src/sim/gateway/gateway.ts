/**
 * The simulated message gateway (`ssmmessages`): a relay between each session's client WebSocket and
 * its agent WebSocket (SPEC 1, 3, 5, 11, 16). This class is its public face: the HTTP and upgrade
 * entry points, the registry's session events, and the control surface tests and /_sim use. The
 * behaviour is in the files next to it: open.ts (upgrade and first frame), client-side.ts,
 * agent-side.ts, relay.ts (the frames and their queues), lifecycle.ts (timeouts, recycling, the end).
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FaultInjector, FaultSide } from '../faults.js';
import type { SimSession } from '../sessions.js';
import { createDataChannel, spawnAgent } from './agent-side.js';
import { GatewayCore } from './core.js';
import { isOpen, refuseUpgrade, sendJson, sessionIdFromUrl } from './http.js';
import { armSessionTimers, clearTimers, endSession } from './lifecycle.js';
import { upgrade } from './open.js';
import type {
  AgentHandle,
  GatewayOptions,
  GatewayRefusal,
  GatewaySessionStats,
  GatewayViolation,
} from './types.js';
import type { Wan } from './wan.js';

export class Gateway {
  readonly violations: GatewayViolation[];
  readonly refusals: GatewayRefusal[];
  readonly faults: FaultInjector;
  private readonly core: GatewayCore;
  private readonly onStartedListener = (s: SimSession) => this.onStarted(s);
  private readonly onTerminatedListener = (s: SimSession, reason: string) => this.onTerminated(s, reason);

  constructor(opts: GatewayOptions) {
    this.core = new GatewayCore(opts);
    this.violations = this.core.violations;
    this.refusals = this.core.refusals;
    this.faults = this.core.faults;
    opts.registry.on('started', this.onStartedListener);
    opts.registry.on('terminated', this.onTerminatedListener);
  }

  /** Handles `POST /v1/data-channel/:id` (the agent's CreateDataChannel); false when not ours. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST') return false;
    const sessionId = sessionIdFromUrl(req.url);
    if (sessionId === undefined) return false;
    createDataChannel(this.core, req, res, sessionId).catch((err: unknown) => {
      this.core.log.error({ err, sessionId }, 'CreateDataChannel failed');
      sendJson(res, 500, { code: 'InternalServerError', message: String(err) });
    });
    return true;
  }

  /** Handles an upgrade of `/v1/data-channel/:id`; false when the request is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const sessionId = sessionIdFromUrl(req.url);
    if (sessionId === undefined || req.method !== 'GET') return false;
    // A reset while the signature is checked must not surface as an uncaught error.
    socket.on('error', () => {});
    upgrade(this.core, req, socket, head, sessionId).catch((err: unknown) => {
      this.core.log.error({ err, sessionId }, 'upgrade failed');
      refuseUpgrade(socket, 500, 'InternalServerError', String(err));
    });
    return true;
  }

  private onStarted(session: SimSession): void {
    if (this.core.closed) return;
    const relay = this.core.ensureRelay(session);
    armSessionTimers(this.core, relay);
    spawnAgent(this.core, relay);
  }

  private onTerminated(session: SimSession, reason: string): void {
    const relay = this.core.relays.get(session.sessionId);
    if (relay) endSession(this.core, relay, reason);
  }

  // ---- control surface for tests and /_sim ---------------------------------------------------------

  /** Destroys one side's TCP connection without a close frame; false if that side is not connected. */
  kill(sessionId: string, side: FaultSide): boolean {
    const relay = this.core.relays.get(sessionId);
    if (!relay) return false;
    return this.core.killSide(relay, side, 'killed on request');
  }

  sessionStats(sessionId: string): GatewaySessionStats | undefined {
    const relay = this.core.relays.get(sessionId);
    if (!relay) return undefined;
    const faults = this.faults.sessionStats(sessionId);
    return {
      ...relay.stats,
      clientConnected: isOpen(relay.client),
      agentConnected: isOpen(relay.agent),
      waitingForAgent: relay.forAgent.length,
      waitingForClient: relay.forClient.length,
      faultDroppedClientToAgent: faults['client->agent'].dropped,
      faultDroppedAgentToClient: faults['agent->client'].dropped,
      events: [...relay.events],
    };
  }

  allStats(): GatewaySessionStats[] {
    return [...this.core.relays.keys()].map((id) => this.sessionStats(id)!);
  }

  /** The client's WAN link: its settings and what crossed it. */
  wanStats(): ReturnType<Wan['stats']> {
    return this.core.wan.stats();
  }

  /** The spawned agent's own statistics, if the session has one. */
  agentStats(sessionId: string): unknown {
    return this.core.relays.get(sessionId)?.agentProc?.stats();
  }

  /** The spawned agent, for in-process tests. */
  agent(sessionId: string): AgentHandle | undefined {
    return this.core.relays.get(sessionId)?.agentProc;
  }

  /** Stops every agent and drops every socket. Sessions are left as they are in the registry. */
  async close(): Promise<void> {
    const core = this.core;
    if (core.closed) return;
    core.closed = true;
    core.opts.registry.off('started', this.onStartedListener);
    core.opts.registry.off('terminated', this.onTerminatedListener);
    this.faults.dispose();
    core.wan.dispose();
    for (const relay of core.relays.values()) {
      clearTimers(relay);
      if (relay.stopTimer) clearTimeout(relay.stopTimer);
      relay.ended = true;
      const proc = relay.agentProc;
      if (proc && !proc.ended) {
        try {
          proc.stop('simulator closing');
        } catch (err) {
          core.log.warn({ err }, 'agent stop failed');
        }
      }
    }
    for (const ws of core.sockets) ws.terminate();
    core.sockets.clear();
    await new Promise<void>((resolve) => core.wss.close(() => resolve()));
  }
}
