/**
 * The agent's side of a session (SPEC 16 "the agent's side of the service", 11.2): spawning the
 * simulated agent when a session starts, its signed CreateDataChannel POST (HTTP 201 with an XML
 * TokenValue, or the "already terminated" answer that stops its retryer), its socket taking over from
 * an earlier one, and the grace period after which an agent that stays away has ended the session.
 */

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { WebSocket } from 'ws';
import type { SimAgentOptions } from '../agent/index.js';
import { readBody } from '../read-body.js';
import { verifySigV4 } from '../sigv4.js';
import type { GatewayCore } from './core.js';
import { isOpen, sendJson } from './http.js';
import { detach, flush, type Relay, setAgentPaused } from './relay.js';
import { type AgentHandle, DEFAULT_AGENT_GRACE_MS } from './types.js';

const MAX_CREATE_BODY_BYTES = 64 * 1024;

/** `POST /v1/data-channel/:id`: a one-use token for the agent's next OpenDataChannel. */
export async function createDataChannel(
  core: GatewayCore,
  req: IncomingMessage,
  res: ServerResponse,
  sessionId: string,
): Promise<void> {
  const body = await readBody(req, MAX_CREATE_BODY_BYTES).catch(() => undefined);
  if (body === undefined) return;
  if (body === 'too-large') {
    core.refuse(sessionId, 413, 'CreateDataChannel body too large');
    res.setHeader('connection', 'close');
    sendJson(res, 413, { code: 'RequestEntityTooLarge', message: 'Request body too large.' });
    return;
  }
  const auth = await verifySigV4(
    { method: 'POST', url: req.url ?? '/', headers: req.headers, body },
    {
      service: 'ssmmessages',
      region: core.opts.region,
      credentials: core.opts.credentials,
      now: core.now(),
    },
  );
  if (!auth.ok) {
    core.refuse(sessionId, 403, `CreateDataChannel: ${auth.error}`);
    sendJson(res, 403, { code: auth.error, message: auth.message });
    return;
  }
  try {
    const parsed: unknown = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('not an object');
  } catch {
    sendJson(res, 400, {
      code: 'SerializationException',
      message: 'The request body must be a JSON object.',
    });
    return;
  }
  const session = core.opts.registry.get(sessionId);
  if (!session) {
    core.refuse(sessionId, 404, 'CreateDataChannel: unknown session');
    sendJson(res, 404, { code: 'ResourceNotFound', message: `Session ${sessionId} does not exist.` });
    return;
  }
  const relay = core.ensureRelay(session);
  if (session.status !== 'Connected' || relay.ended) {
    // The real agent stops retrying on this exact phrase (SPEC 11.2).
    core.refuse(sessionId, 400, 'CreateDataChannel: session terminated');
    sendJson(res, 400, { code: 'SessionTerminated', message: 'Session is already terminated' });
    return;
  }
  const token = randomBytes(48).toString('base64url');
  relay.agentTokens.add(token);
  relay.stats.agentTokensIssued++;
  sendJson(
    res,
    201,
    `<?xml version="1.0" encoding="UTF-8"?>\n<CreateDataChannelResponse><TokenValue>${token}</TokenValue></CreateDataChannelResponse>`,
    'application/xml',
  );
}

export function attachAgent(core: GatewayCore, relay: Relay, ws: WebSocket, signed: boolean): void {
  const old = relay.agent;
  relay.agent = ws;
  const s = relay.stats;
  s.agentConnects++;
  if (signed) s.signedUpgrades++;
  else s.unsignedUpgrades++;
  core.event(relay, `agent connected (#${s.agentConnects})`);
  if (relay.graceTimer) {
    clearTimeout(relay.graceTimer);
    relay.graceTimer = undefined;
  }
  if (old && old.readyState !== WebSocket.CLOSED) {
    core.event(relay, 'previous agent socket replaced');
    old.terminate();
  }
  flush(relay, 'agent');
  // A reconnecting agent clears its own pause, so repeat it while the client is still away.
  relay.agentPaused = false;
  if (relay.hadClient && !isOpen(relay.client)) setAgentPaused(core, relay, ws, true);
}

export function onAgentClose(core: GatewayCore, relay: Relay, ws: WebSocket, why: string): void {
  if (!detach(core, relay, 'agent', ws, why) || relay.ended || core.closed) return;
  const grace = core.opts.agentGraceMs ?? DEFAULT_AGENT_GRACE_MS;
  relay.graceTimer = setTimeout(() => {
    relay.graceTimer = undefined;
    if (relay.agent || relay.ended) return;
    core.opts.registry.terminate(
      relay.session.sessionId,
      `agent ended the session: its data channel closed and did not come back within ${grace} ms`,
    );
  }, grace);
  relay.graceTimer.unref();
}

/** A simulated agent for the session's target, if the gateway spawns agents and the target has one. */
export function spawnAgent(core: GatewayCore, relay: Relay): void {
  const { createAgent, agentConfig } = core.opts;
  const session = relay.session;
  const config = createAgent && agentConfig?.(session);
  if (!createAgent || !config) return;
  const param = (name: string) => session.parameters[name]?.[0];
  const properties: SimAgentOptions['properties'] = { portNumber: param('portNumber') ?? '80' };
  const host = param('host');
  const localPortNumber = param('localPortNumber');
  if (host !== undefined) properties.host = host;
  if (localPortNumber !== undefined) properties.localPortNumber = localPortNumber;
  // SPEC 2.2: only the two port-forwarding documents set type; AWS-StartSSHSession has none.
  if (session.documentName.startsWith('AWS-StartPortForwardingSession'))
    properties.type = 'LocalPortForwarding';
  let proc: AgentHandle;
  try {
    proc = createAgent({
      endpoint: core.opts.endpoint(),
      region: core.opts.region,
      credentials: core.opts.agentCredentials,
      sessionId: session.sessionId,
      instanceId: session.target,
      agentVersion: config.agentVersion,
      properties,
      ...(core.opts.resolveDestination ? { resolveDestination: core.opts.resolveDestination } : {}),
      logger: core.log.child({ sessionId: session.sessionId, side: 'agent' }),
      ...config.options,
    });
  } catch (err) {
    core.log.error({ err, sessionId: session.sessionId }, 'could not create the agent');
    // Deferred: 'started' fires inside StartSession, which must still answer normally.
    setImmediate(() =>
      core.opts.registry.terminate(session.sessionId, `agent failed to start: ${String(err)}`),
    );
    return;
  }
  relay.agentProc = proc;
  proc.on('ended', (reason: string) => {
    core.event(relay, `agent ended: ${reason}`);
    if (!relay.ended) core.opts.registry.terminate(session.sessionId, `agent ended the session: ${reason}`);
  });
  proc.start().catch((err: unknown) => {
    core.log.warn({ err, sessionId: session.sessionId }, 'agent failed to start');
    if (!relay.ended) {
      const message = err instanceof Error ? err.message : String(err);
      core.opts.registry.terminate(session.sessionId, `agent ended the session: ${message}`);
    }
  });
}
