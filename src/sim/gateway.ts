/**
 * The simulated message gateway (`ssmmessages`): a relay between each session's client WebSocket and
 * its agent WebSocket (SPEC 1, 3, 5, 11, 16). It authenticates both sides, consumes the agent's
 * `agent_session_state`, queues one side's frames while the other is away, tells the agent to pause
 * while the client is gone, enforces the service-side idle and maximum-duration limits, recycles client
 * sockets like the real service does, and ends sessions with `channel_closed`. Frames are relayed
 * byte for byte; acknowledgements stay end to end between client and agent.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { decodeMessage, encodeMessage, MessageType } from '../protocol/message.js';
import { buildChannelClosed, type OpenDataChannelInput, parseOpenDataChannel } from '../protocol/payloads.js';
import { sendBatched } from '../shared/batched-write.js';
import type { SimAgentOptions } from './agent.js';
import { FaultInjector, type FaultSide, frameTypeIs, isStreamData } from './faults.js';
import type { SessionRegistry, SimSession } from './sessions.js';
import { type SimCredential, verifySigV4 } from './sigv4.js';

/**
 * Close codes for data-channel sockets the gateway refuses or ends. The real service's codes are not
 * known (SPEC 15); these are private-use codes (4000-4999) chosen so tests can tell the cases apart.
 */
export const CloseCode = {
  /** The session ended; sent after channel_closed. */
  SessionEnded: 1000,
  /** First frame was not a text OpenDataChannel. */
  BadOpen: 4000,
  /** Token missing, wrong, already used, or not issued for this session/side. */
  Unauthorized: 4001,
  /** Unknown or terminated session. */
  SessionNotFound: 4004,
  /** No OpenDataChannel within the open timeout. */
  OpenTimeout: 4008,
  /** A newer connection for the same side of the same session took over. */
  Replaced: 4009,
} as const;

/** Why sessions end; the registry stores these and `channel_closed` carries a sentence for each. */
export const TerminateReason = {
  Api: 'TerminateSession API',
  Idle: 'idle timeout',
  MaxDuration: 'max session duration',
} as const;

export const DEFAULT_OPEN_TIMEOUT_MS = 10_000;
/** AWS's default idleSessionTimeout (SPEC 11.4). */
export const DEFAULT_IDLE_TIMEOUT_MS = 20 * 60_000;
/** How long an agent may stay away before the session counts as ended by the agent. */
export const DEFAULT_AGENT_GRACE_MS = 2_000;
/** Per side and session; bounded so a client that never shows up cannot exhaust memory. */
export const DEFAULT_MAX_QUEUED_FRAMES = 10_000;
/** Real frames are ~1.2 KB; anything near this is garbage and ws closes the socket with 1009. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** How long the agent gets to act on channel_closed before the gateway stops it outright. */
const AGENT_STOP_DELAY_MS = 1_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_LOG_ENTRIES = 1_000;
const MAX_EVENTS_PER_SESSION = 200;
const MAX_CREATE_BODY_BYTES = 64 * 1024;
const PATH_RE = /^\/v1\/data-channel\/([A-Za-z0-9._:@-]{1,128})$/;

const AGENT_SESSION_STATE = Buffer.from(MessageType.AgentSessionState, 'latin1');
const EMPTY = Buffer.alloc(0);

/** What the gateway needs from a simulated agent (src/sim/agent.ts's SimAgent fits). */
export interface AgentHandle {
  start(): Promise<void>;
  stop(reason?: string): void;
  stats(): unknown;
  readonly ended: boolean;
  on(event: 'ended', listener: (reason: string) => void): unknown;
}

export type AgentTuning = Partial<
  Pick<
    SimAgentOptions,
    | 'pacing'
    | 'handshakeTimeoutMs'
    | 'completeBeforeAck'
    | 'reackDuplicates'
    | 'emulate'
    | 'seed'
    | 'pingIntervalMs'
  >
>;

export interface AgentConfig {
  agentVersion: string;
  options?: AgentTuning;
}

export interface GatewayOptions {
  registry: SessionRegistry;
  region: string;
  /** Credentials accepted on signed upgrades and agent CreateDataChannel calls. */
  credentials: readonly SimCredential[];
  /** Base URL agents use, e.g. http://127.0.0.1:PORT; a function because the port is known late. */
  endpoint: () => string;
  /** Credentials the spawned agents sign with. */
  agentCredentials: { accessKeyId: string; secretAccessKey: string };
  /** Builds an agent for a session; without it no agents are spawned (tests that play the agent). */
  createAgent?: (opts: SimAgentOptions) => AgentHandle;
  /** Handed to every agent: the simulator's name table for simulated endpoints (see SimAgentOptions). */
  resolveDestination?: SimAgentOptions['resolveDestination'];
  /** Agent version and tuning for the session's target; undefined spawns no agent. */
  agentConfig?: (session: SimSession) => AgentConfig | undefined;
  /** Refuse unsigned upgrades with HTTP 403 (SPEC 3.2). Signed ones are always verified. */
  requireSignedUpgrade?: boolean;
  /** 0 disables. */
  idleTimeoutMs?: number;
  /** 0 or undefined disables. */
  maxSessionDurationMs?: number;
  /** Cut each client socket this long after it opened (0/undefined: never). */
  recycleClientMs?: number;
  openTimeoutMs?: number;
  agentGraceMs?: number;
  maxQueuedFrames?: number;
  faults?: FaultInjector;
  logger: Logger;
  now?: () => number;
}

export interface GatewaySessionStats {
  sessionId: string;
  target: string;
  clientConnected: boolean;
  agentConnected: boolean;
  clientConnects: number;
  agentConnects: number;
  agentTokensIssued: number;
  signedUpgrades: number;
  unsignedUpgrades: number;
  /** Frames handed to the agent's / client's socket. */
  framesClientToAgent: number;
  framesAgentToClient: number;
  bytesClientToAgent: number;
  bytesAgentToClient: number;
  /** Frames that had to wait for the other side (total over the session). */
  queuedForAgent: number;
  queuedForClient: number;
  /** Frames currently waiting. */
  waitingForAgent: number;
  waitingForClient: number;
  /** Oldest frames dropped because a queue was full. */
  queueDroppedForAgent: number;
  queueDroppedForClient: number;
  faultDroppedClientToAgent: number;
  faultDroppedAgentToClient: number;
  agentSessionStates: number;
  agentSessionState?: string;
  pausePublicationSent: number;
  startPublicationSent: number;
  channelClosedToClient: number;
  channelClosedToAgent: number;
  channelClosedOutput?: string;
  lastClientVersion?: string;
  lastClientId?: string;
  endReason?: string;
  /** Connection events with reasons (connects, drops, recycles, kills, replacements), oldest first. */
  events: string[];
}

export interface GatewayViolation {
  at: number;
  sessionId?: string;
  side: FaultSide;
  code: string;
  message: string;
}

export interface GatewayRefusal {
  at: number;
  sessionId?: string;
  /** WebSocket close code, or the HTTP status for refusals before the upgrade. */
  code: number;
  reason: string;
}

/** Fixed-capacity FIFO that drops its oldest entry when full; O(1) amortised. */
class FrameQueue {
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

interface Relay {
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
  stats: Omit<
    GatewaySessionStats,
    | 'clientConnected'
    | 'agentConnected'
    | 'waitingForAgent'
    | 'waitingForClient'
    | 'faultDroppedClientToAgent'
    | 'faultDroppedAgentToClient'
    | 'events'
  >;
  events: string[];
}

type Role = { kind: 'opening' } | { kind: 'client' | 'agent'; relay: Relay } | { kind: 'refused' };

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

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function sessionIdFromUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  const q = url.indexOf('?');
  const m = PATH_RE.exec(q < 0 ? url : url.slice(0, q));
  return m?.[1];
}

function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ code, message });
  const reason = status === 403 ? 'Forbidden' : status === 400 ? 'Bad Request' : 'Internal Server Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  contentType = 'application/json',
): void {
  if (res.headersSent || res.destroyed) return;
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.setHeader('content-length', payload.length);
  res.setHeader('x-amzn-requestid', randomUUID());
  res.end(payload);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function isOpen(ws: WebSocket | undefined): ws is WebSocket {
  return ws !== undefined && ws.readyState === WebSocket.OPEN;
}

export class Gateway {
  readonly violations: GatewayViolation[] = [];
  readonly refusals: GatewayRefusal[] = [];
  readonly faults: FaultInjector;
  private readonly opts: GatewayOptions;
  private readonly relays = new Map<string, Relay>();
  private readonly sockets = new Set<WebSocket>();
  private readonly wss: WebSocketServer;
  private readonly log: Logger;
  private readonly onStartedListener = (s: SimSession) => this.onStarted(s);
  private readonly onTerminatedListener = (s: SimSession, reason: string) => this.onTerminated(s, reason);
  private closed = false;

  constructor(opts: GatewayOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.faults = opts.faults ?? new FaultInjector([], 1);
    // ws would negotiate compression by default; upstream never does (SPEC 3.2).
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
    opts.registry.on('started', this.onStartedListener);
    opts.registry.on('terminated', this.onTerminatedListener);
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP: the agent's CreateDataChannel

  /** Handles `POST /v1/data-channel/:id`; false when the request is not ours. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST') return false;
    const sessionId = sessionIdFromUrl(req.url);
    if (sessionId === undefined) return false;
    this.createDataChannel(req, res, sessionId).catch((err: unknown) => {
      this.log.error({ err, sessionId }, 'CreateDataChannel failed');
      sendJson(res, 500, { code: 'InternalServerError', message: String(err) });
    });
    return true;
  }

  private async createDataChannel(
    req: IncomingMessage,
    res: ServerResponse,
    sessionId: string,
  ): Promise<void> {
    const body = await readBody(req, MAX_CREATE_BODY_BYTES).catch(() => undefined);
    if (body === undefined) return;
    if (body === 'too-large') {
      this.refuse(sessionId, 413, 'CreateDataChannel body too large');
      res.setHeader('connection', 'close');
      sendJson(res, 413, { code: 'RequestEntityTooLarge', message: 'Request body too large.' });
      return;
    }
    const auth = await verifySigV4(
      { method: 'POST', url: req.url ?? '/', headers: req.headers, body },
      {
        service: 'ssmmessages',
        region: this.opts.region,
        credentials: this.opts.credentials,
        now: this.now(),
      },
    );
    if (!auth.ok) {
      this.refuse(sessionId, 403, `CreateDataChannel: ${auth.error}`);
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
    const session = this.opts.registry.get(sessionId);
    if (!session) {
      this.refuse(sessionId, 404, 'CreateDataChannel: unknown session');
      sendJson(res, 404, { code: 'ResourceNotFound', message: `Session ${sessionId} does not exist.` });
      return;
    }
    const relay = this.ensureRelay(session);
    if (session.status !== 'Connected' || relay.ended) {
      // The real agent stops retrying on this exact phrase (SPEC 11.2).
      this.refuse(sessionId, 400, 'CreateDataChannel: session terminated');
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

  // ---------------------------------------------------------------------------------------------
  // WebSocket upgrade and the first frame

  /** Handles an upgrade of `/v1/data-channel/:id`; false when the request is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const sessionId = sessionIdFromUrl(req.url);
    if (sessionId === undefined || req.method !== 'GET') return false;
    // A reset while the signature is checked must not surface as an uncaught error.
    socket.on('error', () => {});
    this.upgrade(req, socket, head, sessionId).catch((err: unknown) => {
      this.log.error({ err, sessionId }, 'upgrade failed');
      refuseUpgrade(socket, 500, 'InternalServerError', String(err));
    });
    return true;
  }

  private async upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    sessionId: string,
  ): Promise<void> {
    const signed = req.headers.authorization !== undefined;
    if (this.closed) {
      socket.destroy();
      return;
    }
    // Old clients send no signature (SPEC 3.2), so unsigned is fine unless required; a bad one never is.
    if (signed || this.opts.requireSignedUpgrade) {
      const auth = await verifySigV4(
        { method: 'GET', url: req.url ?? '/', headers: req.headers, body: EMPTY },
        {
          service: 'ssmmessages',
          region: this.opts.region,
          credentials: this.opts.credentials,
          now: this.now(),
        },
      );
      if (!auth.ok) {
        this.refuse(sessionId, 403, `upgrade: ${auth.error}: ${auth.message}`);
        refuseUpgrade(socket, 403, auth.error, auth.message);
        return;
      }
    }
    if (socket.destroyed || this.closed) {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws, sessionId, signed));
  }

  private onSocket(ws: WebSocket, sessionId: string, signed: boolean): void {
    this.sockets.add(ws);
    let role: Role = { kind: 'opening' };
    const openTimer = setTimeout(() => {
      if (role.kind === 'opening') {
        role = { kind: 'refused' };
        this.refuseSocket(ws, sessionId, CloseCode.OpenTimeout, 'no OpenDataChannel frame in time');
      }
    }, this.opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS);
    openTimer.unref();

    ws.on('error', (err) => this.log.debug({ err, sessionId }, 'data channel socket error'));
    // One listener with a role switch, so frames right behind the open frame are never missed.
    ws.on('message', (data, isBinary) => {
      try {
        switch (role.kind) {
          case 'opening':
            clearTimeout(openTimer);
            role = this.onOpenFrame(ws, sessionId, toBuffer(data), isBinary, signed);
            return;
          case 'client':
            this.onClientFrame(role.relay, ws, toBuffer(data));
            return;
          case 'agent':
            this.onAgentFrame(role.relay, ws, toBuffer(data));
            return;
          case 'refused':
            return;
        }
      } catch (err) {
        // A frame must never take the gateway down; log it and carry on.
        this.log.error({ err, sessionId }, 'relay error');
      }
    });
    ws.on('close', (code, reason) => {
      clearTimeout(openTimer);
      this.sockets.delete(ws);
      if (role.kind === 'client') this.onClientClose(role.relay, ws, code, reason.toString());
      else if (role.kind === 'agent') this.onAgentClose(role.relay, ws, code, reason.toString());
    });
  }

  private onOpenFrame(
    ws: WebSocket,
    sessionId: string,
    frame: Buffer,
    isBinary: boolean,
    signed: boolean,
  ): Role {
    if (isBinary) {
      this.refuseSocket(ws, sessionId, CloseCode.BadOpen, 'first frame must be a text OpenDataChannel');
      return { kind: 'refused' };
    }
    const text = frame.toString('utf8');
    const open = parseOpenDataChannel(text);
    if (!open) {
      const why = hasNoToken(text) ? CloseCode.Unauthorized : CloseCode.BadOpen;
      this.refuseSocket(
        ws,
        sessionId,
        why,
        why === CloseCode.Unauthorized ? 'missing TokenValue' : 'malformed OpenDataChannel',
      );
      return { kind: 'refused' };
    }
    const session = this.opts.registry.get(sessionId);
    const relay = session ? this.ensureRelay(session) : undefined;
    if (!session || !relay || session.status !== 'Connected' || relay.ended) {
      this.refuseSocket(ws, sessionId, CloseCode.SessionNotFound, 'session not found or terminated');
      return { kind: 'refused' };
    }
    // The agent's open carries ClientInstanceId, a client's never does (SPEC 16).
    if (open.ClientInstanceId !== undefined) {
      if (!relay.agentTokens.delete(open.TokenValue)) {
        this.refuseSocket(ws, sessionId, CloseCode.Unauthorized, 'invalid agent token');
        return { kind: 'refused' };
      }
      this.attachAgent(relay, ws, signed);
      return { kind: 'agent', relay };
    }
    if (!this.opts.registry.consumeClientToken(sessionId, open.TokenValue)) {
      this.refuseSocket(ws, sessionId, CloseCode.Unauthorized, 'invalid or already used token');
      return { kind: 'refused' };
    }
    this.attachClient(relay, ws, open, signed);
    return { kind: 'client', relay };
  }

  private refuseSocket(ws: WebSocket, sessionId: string, code: number, reason: string): void {
    this.refuse(sessionId, code, reason);
    ws.close(code, reason);
  }

  private refuse(sessionId: string | undefined, code: number, reason: string): void {
    this.log.info({ sessionId, code, reason }, 'data channel refused');
    pushBounded(this.refusals, { at: this.now(), sessionId, code, reason }, MAX_LOG_ENTRIES);
  }

  // ---------------------------------------------------------------------------------------------
  // Sides coming and going

  private attachClient(relay: Relay, ws: WebSocket, open: OpenDataChannelInput, signed: boolean): void {
    const old = relay.client;
    relay.client = ws;
    relay.hadClient = true;
    const s = relay.stats;
    s.clientConnects++;
    if (signed) s.signedUpgrades++;
    else s.unsignedUpgrades++;
    s.lastClientId = open.ClientId;
    s.lastClientVersion = open.ClientVersion;
    this.event(relay, `client connected (#${s.clientConnects}${signed ? ', signed' : ''})`);
    if (old && old.readyState !== WebSocket.CLOSED) {
      this.event(relay, 'previous client socket replaced');
      old.close(CloseCode.Replaced, 'replaced by a newer connection');
    }
    for (const frame of relay.forClient.drain()) this.sendToClient(relay, frame);
    if (relay.agentPaused && isOpen(relay.agent)) {
      this.sendControl(relay, relay.agent, MessageType.StartPublication);
      s.startPublicationSent++;
      relay.agentPaused = false;
    }
    const recycle = this.opts.recycleClientMs;
    if (recycle && recycle > 0) {
      const timer = setTimeout(
        () => {
          if (relay.client === ws && ws.readyState === WebSocket.OPEN) {
            this.event(relay, 'client socket recycled');
            // The real service just drops the TCP connection; no close frame.
            ws.terminate();
          }
        },
        Math.min(recycle, MAX_TIMER_MS),
      );
      timer.unref();
      ws.once('close', () => clearTimeout(timer));
    }
  }

  private attachAgent(relay: Relay, ws: WebSocket, signed: boolean): void {
    const old = relay.agent;
    relay.agent = ws;
    const s = relay.stats;
    s.agentConnects++;
    if (signed) s.signedUpgrades++;
    else s.unsignedUpgrades++;
    this.event(relay, `agent connected (#${s.agentConnects})`);
    if (relay.graceTimer) {
      clearTimeout(relay.graceTimer);
      relay.graceTimer = undefined;
    }
    if (old && old.readyState !== WebSocket.CLOSED) {
      this.event(relay, 'previous agent socket replaced');
      old.terminate();
    }
    for (const frame of relay.forAgent.drain()) this.sendToAgent(relay, frame);
    // A reconnecting agent clears its own pause, so repeat it while the client is still away.
    relay.agentPaused = false;
    if (relay.hadClient && !isOpen(relay.client)) {
      this.sendControl(relay, ws, MessageType.PausePublication);
      s.pausePublicationSent++;
      relay.agentPaused = true;
    }
  }

  private onClientClose(relay: Relay, ws: WebSocket, code: number, reason: string): void {
    if (relay.client !== ws) return;
    relay.client = undefined;
    this.event(relay, `client disconnected (${code}${reason ? ` ${reason}` : ''})`);
    if (relay.ended) return;
    if (isOpen(relay.agent) && !relay.agentPaused) {
      this.sendControl(relay, relay.agent, MessageType.PausePublication);
      relay.stats.pausePublicationSent++;
      relay.agentPaused = true;
    }
  }

  private onAgentClose(relay: Relay, ws: WebSocket, code: number, reason: string): void {
    if (relay.agent !== ws) return;
    relay.agent = undefined;
    this.event(relay, `agent disconnected (${code}${reason ? ` ${reason}` : ''})`);
    if (relay.ended || this.closed) return;
    const grace = this.opts.agentGraceMs ?? DEFAULT_AGENT_GRACE_MS;
    relay.graceTimer = setTimeout(() => {
      relay.graceTimer = undefined;
      if (relay.agent || relay.ended) return;
      this.opts.registry.terminate(
        relay.session.sessionId,
        `agent ended the session: its data channel closed and did not come back within ${grace} ms`,
      );
    }, grace);
    relay.graceTimer.unref();
  }

  // ---------------------------------------------------------------------------------------------
  // The hot path

  private onClientFrame(relay: Relay, ws: WebSocket, frame: Buffer): void {
    // A replaced socket may still deliver a few frames; the client retransmits them on the new one.
    if (relay.client !== ws || relay.ended) return;
    if (frame.length < 120) {
      this.violation(relay, 'client', 'FRAME_TRUNCATED', `${frame.length}-byte frame relayed as is`);
    } else if (isStreamData(frame)) {
      relay.lastActivity = this.now();
    }
    if (this.faults.active) {
      this.faults.apply(
        'client->agent',
        frame,
        (f) => this.sendToAgent(relay, f),
        (side) => this.killSide(relay, side, 'fault injection'),
        relay.session.sessionId,
      );
    } else {
      this.sendToAgent(relay, frame);
    }
  }

  private onAgentFrame(relay: Relay, ws: WebSocket, frame: Buffer): void {
    if (relay.agent !== ws || relay.ended) return;
    if (frameTypeIs(frame, AGENT_SESSION_STATE)) {
      this.consumeSessionState(relay, frame);
      return;
    }
    if (frame.length < 120) {
      this.violation(relay, 'agent', 'FRAME_TRUNCATED', `${frame.length}-byte frame relayed as is`);
    } else if (isStreamData(frame)) {
      relay.lastActivity = this.now();
    }
    if (this.faults.active) {
      this.faults.apply(
        'agent->client',
        frame,
        (f) => this.sendToClient(relay, f),
        (side) => this.killSide(relay, side, 'fault injection'),
        relay.session.sessionId,
      );
    } else {
      this.sendToClient(relay, frame);
    }
  }

  private consumeSessionState(relay: Relay, frame: Buffer): void {
    relay.stats.agentSessionStates++;
    const decoded = decodeMessage(frame);
    if (!decoded.ok) {
      this.violation(relay, 'agent', decoded.error.code, `agent_session_state: ${decoded.error.message}`);
      return;
    }
    try {
      const state = JSON.parse(decoded.message.payload.toString('utf8')) as { SessionState?: unknown };
      if (typeof state.SessionState === 'string') relay.stats.agentSessionState = state.SessionState;
    } catch {
      this.violation(relay, 'agent', 'BAD_PAYLOAD', 'agent_session_state payload is not JSON');
    }
  }

  private sendToAgent(relay: Relay, frame: Buffer): void {
    if (relay.ended) return;
    const agent = relay.agent;
    if (isOpen(agent)) {
      sendBatched(agent, frame);
      relay.stats.framesClientToAgent++;
      relay.stats.bytesClientToAgent += frame.length;
      return;
    }
    relay.stats.queuedForAgent++;
    if (relay.forAgent.push(frame)) relay.stats.queueDroppedForAgent++;
  }

  private sendToClient(relay: Relay, frame: Buffer): void {
    if (relay.ended) return;
    const client = relay.client;
    if (isOpen(client)) {
      sendBatched(client, frame);
      relay.stats.framesAgentToClient++;
      relay.stats.bytesAgentToClient += frame.length;
      return;
    }
    relay.stats.queuedForClient++;
    if (relay.forClient.push(frame)) relay.stats.queueDroppedForClient++;
  }

  /** start_/pause_publication (SPEC 5.3): payload contents are unknown upstream, so none is sent. */
  private sendControl(relay: Relay, ws: WebSocket, messageType: string): void {
    ws.send(encodeMessage({ messageType, sequenceNumber: 0, flags: 3, payloadType: 0, payload: EMPTY }), {
      binary: true,
    });
    this.event(relay, `${messageType} sent to agent`);
  }

  // ---------------------------------------------------------------------------------------------
  // Session lifecycle

  private ensureRelay(session: SimSession): Relay {
    let relay = this.relays.get(session.sessionId);
    if (relay) return relay;
    const cap = this.opts.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES;
    relay = {
      session,
      forClient: new FrameQueue(cap),
      forAgent: new FrameQueue(cap),
      agentTokens: new Set(),
      ended: session.status !== 'Connected',
      hadClient: false,
      agentPaused: false,
      lastActivity: this.now(),
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
    this.relays.set(session.sessionId, relay);
    return relay;
  }

  private onStarted(session: SimSession): void {
    if (this.closed) return;
    const relay = this.ensureRelay(session);
    this.armIdle(relay);
    const max = this.opts.maxSessionDurationMs;
    if (max && max > 0) {
      relay.maxTimer = setTimeout(
        () => this.opts.registry.terminate(session.sessionId, TerminateReason.MaxDuration),
        Math.min(max, MAX_TIMER_MS),
      );
      relay.maxTimer.unref();
    }
    this.spawnAgent(relay);
  }

  private spawnAgent(relay: Relay): void {
    const { createAgent, agentConfig } = this.opts;
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
        endpoint: this.opts.endpoint(),
        region: this.opts.region,
        credentials: this.opts.agentCredentials,
        sessionId: session.sessionId,
        instanceId: session.target,
        agentVersion: config.agentVersion,
        properties,
        ...(this.opts.resolveDestination ? { resolveDestination: this.opts.resolveDestination } : {}),
        logger: this.log.child({ sessionId: session.sessionId, side: 'agent' }),
        ...config.options,
      });
    } catch (err) {
      this.log.error({ err, sessionId: session.sessionId }, 'could not create the agent');
      // Deferred: 'started' fires inside StartSession, which must still answer normally.
      setImmediate(() =>
        this.opts.registry.terminate(session.sessionId, `agent failed to start: ${String(err)}`),
      );
      return;
    }
    relay.agentProc = proc;
    proc.on('ended', (reason: string) => {
      this.event(relay, `agent ended: ${reason}`);
      if (!relay.ended) this.opts.registry.terminate(session.sessionId, `agent ended the session: ${reason}`);
    });
    proc.start().catch((err: unknown) => {
      this.log.warn({ err, sessionId: session.sessionId }, 'agent failed to start');
      if (!relay.ended) {
        const message = err instanceof Error ? err.message : String(err);
        this.opts.registry.terminate(session.sessionId, `agent ended the session: ${message}`);
      }
    });
  }

  private armIdle(relay: Relay): void {
    const idle = this.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (!(idle > 0) || relay.ended) return;
    // One timer per session, re-armed lazily: the hot path only stamps lastActivity.
    const due = relay.lastActivity + idle - this.now();
    relay.idleTimer = setTimeout(
      () => {
        relay.idleTimer = undefined;
        if (relay.ended) return;
        if (this.now() - relay.lastActivity >= idle) {
          this.opts.registry.terminate(relay.session.sessionId, TerminateReason.Idle);
        } else {
          this.armIdle(relay);
        }
      },
      Math.min(Math.max(0, due), MAX_TIMER_MS),
    );
    relay.idleTimer.unref();
  }

  private onTerminated(session: SimSession, reason: string): void {
    const relay = this.relays.get(session.sessionId);
    if (!relay || relay.ended) return;
    relay.ended = true;
    relay.stats.endReason = reason;
    this.clearTimers(relay);
    const output = channelClosedOutput(reason);
    relay.stats.channelClosedOutput = output;
    this.event(relay, `session ended: ${reason}`);
    const closed = this.channelClosed(session, output);
    if (isOpen(relay.client)) {
      relay.client.send(closed, { binary: true });
      relay.stats.channelClosedToClient++;
      relay.client.close(CloseCode.SessionEnded, 'session ended');
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

  private channelClosed(session: SimSession, output: string): Buffer {
    const messageId = randomUUID();
    return encodeMessage({
      messageType: MessageType.ChannelClosed,
      sequenceNumber: 0,
      flags: 3,
      payloadType: 0,
      messageId,
      payload: buildChannelClosed({
        messageId,
        createdDate: new Date(this.now()).toISOString(),
        destinationId: session.target,
        sessionId: session.sessionId,
        output,
      }),
    });
  }

  private clearTimers(relay: Relay): void {
    for (const t of [relay.idleTimer, relay.maxTimer, relay.graceTimer]) if (t) clearTimeout(t);
    relay.idleTimer = relay.maxTimer = relay.graceTimer = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Control surface for tests and /_sim

  /** Destroys one side's TCP connection without a close frame; false if that side is not connected. */
  kill(sessionId: string, side: FaultSide): boolean {
    const relay = this.relays.get(sessionId);
    if (!relay) return false;
    return this.killSide(relay, side, 'killed on request');
  }

  private killSide(relay: Relay, side: FaultSide, why: string): boolean {
    const ws = side === 'client' ? relay.client : relay.agent;
    if (!ws || ws.readyState === WebSocket.CLOSED) return false;
    this.event(relay, `${side} socket ${why}`);
    ws.terminate();
    return true;
  }

  sessionStats(sessionId: string): GatewaySessionStats | undefined {
    const relay = this.relays.get(sessionId);
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
    return [...this.relays.keys()].map((id) => this.sessionStats(id)!);
  }

  /** The spawned agent's own statistics, if the session has one. */
  agentStats(sessionId: string): unknown {
    return this.relays.get(sessionId)?.agentProc?.stats();
  }

  /** The spawned agent, for in-process tests. */
  agent(sessionId: string): AgentHandle | undefined {
    return this.relays.get(sessionId)?.agentProc;
  }

  private event(relay: Relay, text: string): void {
    this.log.debug({ sessionId: relay.session.sessionId }, text);
    pushBounded(relay.events, text, MAX_EVENTS_PER_SESSION);
  }

  private violation(relay: Relay, side: FaultSide, code: string, message: string): void {
    pushBounded(
      this.violations,
      { at: this.now(), sessionId: relay.session.sessionId, side, code, message },
      MAX_LOG_ENTRIES,
    );
  }

  /** Stops every agent and drops every socket. Sessions are left as they are in the registry. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.opts.registry.off('started', this.onStartedListener);
    this.opts.registry.off('terminated', this.onTerminatedListener);
    this.faults.dispose();
    for (const relay of this.relays.values()) {
      this.clearTimers(relay);
      if (relay.stopTimer) clearTimeout(relay.stopTimer);
      relay.ended = true;
      const proc = relay.agentProc;
      if (proc && !proc.ended) {
        try {
          proc.stop('simulator closing');
        } catch (err) {
          this.log.warn({ err }, 'agent stop failed');
        }
      }
    }
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
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
