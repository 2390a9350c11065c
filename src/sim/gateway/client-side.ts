/**
 * The client's side of a session (SPEC 3, 11.2): a client socket takes over from any earlier one
 * (which is closed with CloseCode.Replaced), receives what was queued while it was away, and lifts the
 * agent's pause; when it goes, the agent is told to pause publication until a client is back.
 */

import { WebSocket } from 'ws';
import type { OpenDataChannelInput } from '../../protocol/payloads.js';
import type { GatewayCore } from './core.js';
import { isOpen } from './http.js';
import { armRecycle } from './lifecycle.js';
import { detach, flush, type Relay, setAgentPaused } from './relay.js';
import { CloseCode } from './types.js';

export function attachClient(
  core: GatewayCore,
  relay: Relay,
  ws: WebSocket,
  open: OpenDataChannelInput,
  signed: boolean,
): void {
  const old = relay.client;
  relay.client = ws;
  relay.hadClient = true;
  const s = relay.stats;
  s.clientConnects++;
  if (signed) s.signedUpgrades++;
  else s.unsignedUpgrades++;
  s.lastClientId = open.ClientId;
  s.lastClientVersion = open.ClientVersion;
  core.event(relay, `client connected (#${s.clientConnects}${signed ? ', signed' : ''})`);
  if (old && old.readyState !== WebSocket.CLOSED) {
    core.event(relay, 'previous client socket replaced');
    old.close(CloseCode.Replaced, 'replaced by a newer connection');
  }
  flush(relay, 'client');
  if (relay.agentPaused && isOpen(relay.agent)) setAgentPaused(core, relay, relay.agent, false);
  armRecycle(core, relay, ws);
}

export function onClientClose(core: GatewayCore, relay: Relay, ws: WebSocket, why: string): void {
  if (!detach(core, relay, 'client', ws, why) || relay.ended) return;
  if (isOpen(relay.agent) && !relay.agentPaused) setAgentPaused(core, relay, relay.agent, true);
}
