/**
 * Opening a data channel (SPEC 3.2, 3.3, 16): the WebSocket upgrade of `/v1/data-channel/:id` (SigV4
 * checked when signed, or always when required), then the first frame, a text OpenDataChannel, which
 * says which side this socket is: the agent's carries ClientInstanceId and a token from
 * CreateDataChannel, a client's the token StartSession issued. Anything else is refused with a close
 * code of its own (CloseCode).
 */

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { parseOpenDataChannel } from '../../protocol/payloads.js';
import { verifySigV4 } from '../sigv4.js';
import { attachAgent, onAgentClose } from './agent-side.js';
import { attachClient, onClientClose } from './client-side.js';
import type { GatewayCore } from './core.js';
import { EMPTY, refuseUpgrade, toBuffer } from './http.js';
import { fromAgent, fromClient, type Relay } from './relay.js';
import { CloseCode, DEFAULT_OPEN_TIMEOUT_MS } from './types.js';

type Role = { kind: 'opening' } | { kind: 'client' | 'agent'; relay: Relay } | { kind: 'refused' };

export async function upgrade(
  core: GatewayCore,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  sessionId: string,
): Promise<void> {
  const signed = req.headers.authorization !== undefined;
  if (core.closed) {
    socket.destroy();
    return;
  }
  // Old clients send no signature (SPEC 3.2), so unsigned is fine unless required; a bad one never is.
  if (signed || core.opts.requireSignedUpgrade) {
    const auth = await verifySigV4(
      { method: 'GET', url: req.url ?? '/', headers: req.headers, body: EMPTY },
      {
        service: 'ssmmessages',
        region: core.opts.region,
        credentials: core.opts.credentials,
        now: core.now(),
      },
    );
    if (!auth.ok) {
      core.refuse(sessionId, 403, `upgrade: ${auth.error}: ${auth.message}`);
      refuseUpgrade(socket, 403, auth.error, auth.message);
      return;
    }
  }
  // Over the client's WAN the 101 answer arrives one round trip after the request left.
  const viaWan = core.opts.viaWan?.(req) ?? true;
  if (viaWan) await core.wan.delayRtt();
  if (socket.destroyed || core.closed) {
    socket.destroy();
    return;
  }
  core.wss.handleUpgrade(req, socket, head, (ws) => onSocket(core, ws, sessionId, signed, viaWan));
}

function onSocket(
  core: GatewayCore,
  ws: WebSocket,
  sessionId: string,
  signed: boolean,
  viaWan: boolean,
): void {
  core.sockets.add(ws);
  let role: Role = { kind: 'opening' };
  const openTimer = setTimeout(() => {
    if (role.kind === 'opening') {
      role = { kind: 'refused' };
      refuseSocket(core, ws, sessionId, CloseCode.OpenTimeout, 'no OpenDataChannel frame in time');
    }
  }, core.opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS);
  openTimer.unref();

  ws.on('error', (err) => core.log.debug({ err, sessionId }, 'data channel socket error'));
  ws.on('ping', (data) => {
    const pong = () => {
      if (ws.readyState === ws.OPEN) ws.pong(data);
    };
    if (viaWan) core.wan.up.send(data.length, () => core.wan.down.send(data.length, pong));
    else pong();
  });
  // One listener with a role switch, so frames right behind the open frame are never missed. A client's
  // frames, its open frame included, first cross the WAN's uplink (in order, as they were sent).
  ws.on('message', (data, isBinary) => {
    const frame = toBuffer(data);
    if (viaWan) core.wan.up.send(frame.length, () => onFrame(frame, isBinary));
    else onFrame(frame, isBinary);
  });
  const onFrame = (frame: Buffer, isBinary: boolean) => {
    if (core.closed) return;
    try {
      switch (role.kind) {
        case 'opening':
          clearTimeout(openTimer);
          role = onOpenFrame(core, ws, sessionId, frame, isBinary, signed);
          return;
        case 'client':
          fromClient(core, role.relay, ws, frame);
          return;
        case 'agent':
          fromAgent(core, role.relay, ws, frame);
          return;
        case 'refused':
          return;
      }
    } catch (err) {
      // A frame must never take the gateway down; log it and carry on.
      core.log.error({ err, sessionId }, 'relay error');
    }
  };
  ws.on('close', (code, reason) => {
    clearTimeout(openTimer);
    core.sockets.delete(ws);
    const closed = () => {
      if (role.kind !== 'client' && role.kind !== 'agent') return;
      const text = reason.toString();
      const why = `${code}${text ? ` ${text}` : ''}`;
      if (role.kind === 'client') onClientClose(core, role.relay, ws, why);
      else onAgentClose(core, role.relay, ws, why);
    };
    // The close travels behind the frames sent before it.
    if (viaWan) core.wan.up.send(0, closed);
    else closed();
  });
}

function onOpenFrame(
  core: GatewayCore,
  ws: WebSocket,
  sessionId: string,
  frame: Buffer,
  isBinary: boolean,
  signed: boolean,
): Role {
  if (isBinary) {
    refuseSocket(core, ws, sessionId, CloseCode.BadOpen, 'first frame must be a text OpenDataChannel');
    return { kind: 'refused' };
  }
  const text = frame.toString('utf8');
  const open = parseOpenDataChannel(text);
  if (!open) {
    const why = hasNoToken(text) ? CloseCode.Unauthorized : CloseCode.BadOpen;
    refuseSocket(
      core,
      ws,
      sessionId,
      why,
      why === CloseCode.Unauthorized ? 'missing TokenValue' : 'malformed OpenDataChannel',
    );
    return { kind: 'refused' };
  }
  const session = core.opts.registry.get(sessionId);
  const relay = session ? core.ensureRelay(session) : undefined;
  if (!session || !relay || session.status !== 'Connected' || relay.ended) {
    refuseSocket(core, ws, sessionId, CloseCode.SessionNotFound, 'session not found or terminated');
    return { kind: 'refused' };
  }
  // The agent's open carries ClientInstanceId, a client's never does (SPEC 16).
  if (open.ClientInstanceId !== undefined) {
    if (!relay.agentTokens.delete(open.TokenValue)) {
      refuseSocket(core, ws, sessionId, CloseCode.Unauthorized, 'invalid agent token');
      return { kind: 'refused' };
    }
    attachAgent(core, relay, ws, signed);
    return { kind: 'agent', relay };
  }
  if (!core.opts.registry.consumeClientToken(sessionId, open.TokenValue)) {
    refuseSocket(core, ws, sessionId, CloseCode.Unauthorized, 'invalid or already used token');
    return { kind: 'refused' };
  }
  attachClient(core, relay, ws, open, signed);
  return { kind: 'client', relay };
}

function refuseSocket(
  core: GatewayCore,
  ws: WebSocket,
  sessionId: string,
  code: number,
  reason: string,
): void {
  core.refuse(sessionId, code, reason);
  ws.close(code, reason);
}

/** A JSON object without a string TokenValue: a missing token rather than a malformed frame. */
function hasNoToken(text: string): boolean {
  try {
    const o: unknown = JSON.parse(text);
    return (
      typeof o === 'object' &&
      o !== null &&
      !Array.isArray(o) &&
      typeof (o as Record<string, unknown>).TokenValue !== 'string'
    );
  } catch {
    return false;
  }
}
