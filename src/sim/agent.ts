/**
 * The agent side of one simulated Port session, behaving like the real amazon-ssm-agent (SPEC 8, 10,
 * 11, 16), quirks included. It reaches the simulated service only over the network, exactly as the
 * real agent does: a SigV4-signed POST for a token, then a signed WebSocket carrying its
 * OpenDataChannel, `agent_session_state` and the stream messages. Destinations are dialled over real
 * TCP, loopback only.
 */

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { type Logger, pino } from 'pino';
import WebSocket from 'ws';
import { DataChannel, type DataChannelStats } from '../protocol/data-channel.js';
import {
  type DecodedMessage,
  decodeFlag,
  decodeMessage,
  encodeFlag,
  encodeMessage,
  HEADER_LENGTH,
  HeaderFlags,
  MessageType,
  PayloadFlag,
  PayloadType,
} from '../protocol/message.js';
import {
  ActionStatus,
  buildHandshakeComplete,
  buildHandshakeRequest,
  buildOpenDataChannel,
  parseAcknowledge,
  parseHandshakeResponse,
} from '../protocol/payloads.js';
import { encodeSmuxHeader, SmuxCmd, SmuxSession } from '../protocol/smux.js';
import { agentModeFor } from '../protocol/version.js';
import { sendBatched, writeBatched, zeroMask } from '../shared/batched-write.js';
import { mulberry32 } from './faults.js';
import { connect } from './net.js';

export interface SimAgentOptions {
  /** 'http://127.0.0.1:PORT': the sim's shared HTTP/WebSocket server. */
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  sessionId: string;
  instanceId: string;
  /** e.g. '3.3.987.0' (mux, no keepalive), '3.1.1000.0' (mux + keepalive), '3.0.161.0' (basic on the client side). */
  agentVersion: string;
  /** The document's properties after parameter substitution; all values strings. */
  properties: { host?: string; portNumber: string; localPortNumber?: string; type?: string };
  /**
   * The simulator's own name table, standing in for the VPC's DNS: maps a simulated endpoint's name and
   * port (e.g. an RDS host name, 5432) to the loopback address it really listens on. Names it does not
   * know go through the loopback-only rule as before.
   */
  resolveDestination?: DestinationResolver;
  /** One Output message per ms, like the agent's 1 ms sleep per read (default true). */
  pacing?: boolean;
  handshakeTimeoutMs?: number;
  /** Probability (0..1) of sending HandshakeComplete before acking the HandshakeResponse. */
  completeBeforeAck?: number;
  /** false emulates agents before 3.2.1041.0, which drop duplicates without re-acking. */
  reackDuplicates?: boolean;
  emulate?: {
    /** Probability per sent message, or one exact agent sequence number, whose first ack is lost. */
    stuckMessage?: number | { seq: number };
    /** Basic mode: a refused destination makes the agent process die. */
    basicRefuseExit?: boolean;
  };
  seed?: number;
  /** WebSocket ping interval (agent: 54 s). */
  pingIntervalMs?: number;
  /** Dead connection after this long without a pong (agent: 60 s, first deadline ping interval + 60 s). */
  pongTimeoutMs?: number;
  /** smux keepalive timing when the version gate turns keepalive on (smux defaults 10 s / 30 s). */
  smuxKeepaliveIntervalMs?: number;
  smuxKeepaliveTimeoutMs?: number;
  /**
   * Bytes the agent holds for destinations (unwritten socket buffers plus data for streams still
   * dialling) before it stops taking Output; default 4 MiB, smux v1's session-wide receive buffer.
   */
  maxDestinationBufferBytes?: number;
  logger?: Logger;
}

export interface SimAgentStats {
  mode?: 'mux' | 'basic';
  clientVersion?: string;
  streamsAccepted: number;
  dialFailures: number;
  discardedBeforeHandshake: number;
  reconnects: number;
  bytesToDestination: number;
  bytesFromDestination: number;
  /** Acks discarded by the stuck-message emulation. */
  stuckAcksDropped: number;
  /** SPEC 12.6 checks on received client messages. */
  violations: string[];
  dataChannel: DataChannelStats;
}

export interface SimAgentEvents {
  ended: [reason: string];
  ready: [mode: 'mux' | 'basic'];
}

export const AGENT_HANDSHAKE_TIMEOUT_MS = 15_000;
export const AGENT_PING_INTERVAL_MS = 54_000;
export const AGENT_PONG_TIMEOUT_MS = 60_000;
export const HANDSHAKE_TIMEOUT_REASON =
  'Handshake timed out. Please ensure that you have the latest version of the session manager plugin.';
const RESEND_TICK_MS = 100;
/** Until the HandshakeRequest is acked: the real agent resends it every 100-200 ms. */
const HANDSHAKE_TICK_MS = 10;
const MAX_PAYLOAD = 1024;
const AGENT_BUFFER_CAPACITY = 100_000;
const DRAIN_WAIT_MS = 2_000;
const DRAIN_POLL_MS = 10;
const RECONNECT_INITIAL_MS = 100;
const RECONNECT_JITTER_MS = 100;
const RECONNECT_MAX_DELAY_MS = 5_000;
const RECONNECT_MAX_RETRIES = 5;
const DEFAULT_DESTINATION_BUFFER = 4 * 1024 * 1024;
/** Stop reading destinations while this much is queued for the data channel. */
const OUT_QUEUE_HIGH_WATER = 64 * 1024;
const CANONICAL_ACK =
  /^\{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}","AcknowledgedMessageSequenceNumber":\d{1,16},"IsSequentialMessage":true\}$/;
const MAX_VIOLATIONS = 1000;
const HTTP_TIMEOUT_MS = 10_000;

type FlagItem = { flag: number };
type OutItem = Buffer | FlagItem;

interface MuxStream {
  sid: number;
  sock?: net.Socket;
  /** Data for the stream that arrived while its destination was still being dialled. */
  pending: Buffer[];
  pendingBytes: number;
  clientFin: boolean;
  closed: boolean;
}

type State = 'new' | 'handshake' | 'running' | 'ending' | 'ended';

export type DestinationResolver = (host: string, port: number) => { host: string; port: number } | undefined;

/** Only loopback destinations are ever dialled; anything else fails like a refused connection. */
function loopbackCandidates(host: string | undefined): string[] {
  const h = (host ?? '').trim().replace(/^\[(.*)\]$/, '$1');
  if (h === '' || h.toLowerCase() === 'localhost') return ['127.0.0.1', '::1'];
  if (net.isIPv4(h)) return h.startsWith('127.') ? [h] : [];
  if (net.isIPv6(h)) {
    const lower = h.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return [h];
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped && net.isIPv4(mapped[1]) && mapped[1].startsWith('127.') ? [h] : [];
  }
  return [];
}

function refused(host: string | undefined, port: number): Error {
  const err = new Error(`dial tcp ${host || 'localhost'}:${port}: connect: connection refused`);
  (err as NodeJS.ErrnoException).code = 'ECONNREFUSED';
  return err;
}

/** Each resolved address in order, first success wins, first failure reported (SPEC 10.3.3). */
async function dialDestination(
  host: string | undefined,
  portText: string,
  resolve?: DestinationResolver,
): Promise<net.Socket> {
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port number ${portText}`);
  // A simulated endpoint (e.g. an RDS name) resolves through the simulator's table, as if by VPC DNS.
  const mapped = host ? resolve?.(host.trim(), port) : undefined;
  if (mapped) return await connect(mapped.port, mapped.host);
  const candidates = loopbackCandidates(host);
  if (candidates.length === 0) throw refused(host, port);
  let first: unknown;
  for (const addr of candidates) {
    try {
      return await connect(port, addr);
    } catch (err) {
      first ??= err;
    }
  }
  throw first;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

class SessionTerminatedError extends Error {}

export class SimAgent extends EventEmitter<SimAgentEvents> {
  private readonly opts: SimAgentOptions;
  private readonly log: Logger;
  private readonly rand: () => number;
  private readonly clientId = randomUUID();
  private readonly dc: DataChannel;
  private readonly pacing: boolean;
  private readonly maxDestBuffer: number;
  private readonly signer: SignatureV4;
  private readonly endpoint: URL;

  private state: State = 'new';
  private endReason: string | undefined;
  private ws: WebSocket | undefined;
  private reconnecting = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pongDeadline = 0;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private handshakeSentAt = 0;
  private responded = false;
  private completeSent = false;
  private readyEmitted = false;

  private mode: 'mux' | 'basic' | undefined;
  private clientVersion: string | undefined;
  private smux: SmuxSession | undefined;
  private readonly streams = new Map<number, MuxStream>();
  private basicSock: net.Socket | undefined;
  private basicDialing = false;
  private basicPending: Buffer[] = [];
  private readonly destSockets = new Set<net.Socket>();
  private reading = true;
  /** Output refused for back-pressure; the destinations' 'drain' lifts it. */
  private inputBlocked = false;

  private out: OutItem[] = [];
  private outBytes = 0;
  private pumpImmediate: NodeJS.Immediate | undefined;
  private pumpTimer: NodeJS.Timeout | undefined;

  private readonly stuckSeqs = new Set<number>();
  private readonly counters = {
    streamsAccepted: 0,
    dialFailures: 0,
    discardedBeforeHandshake: 0,
    reconnects: 0,
    bytesToDestination: 0,
    bytesFromDestination: 0,
    stuckAcksDropped: 0,
  };
  private readonly violations: string[] = [];

  constructor(opts: SimAgentOptions) {
    super();
    this.opts = opts;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ sim: 'agent', sessionId: opts.sessionId });
    this.rand = mulberry32(opts.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.pacing = opts.pacing ?? true;
    this.maxDestBuffer = opts.maxDestinationBufferBytes ?? DEFAULT_DESTINATION_BUFFER;
    this.endpoint = new URL(opts.endpoint);
    this.signer = new SignatureV4({
      service: 'ssmmessages',
      region: opts.region,
      credentials: opts.credentials,
      sha256: Sha256,
    });
    this.dc = new DataChannel({
      role: 'agent',
      now: Date.now,
      // The real agent resends only its oldest unacked message, once per RTO, even after reconnecting.
      // Paced (as it really is), little is ever in flight, so a dropped socket costs a few ticks. Run
      // flat out for benchmarks, thousands of messages can be in flight: without round-trip recovery
      // a dropped client socket would stall for minutes, an artefact no real agent produces.
      fastRecovery: !this.pacing,
      resendAllOnReconnect: false,
      send: (frame) => this.sendFrame(frame),
      deliver: (msg) => this.deliver(msg),
      onChannelClosed: (c) => this.finish(`channel_closed${c.Output ? `: ${c.Output}` : ''}`, 'close'),
      onError: (err) => this.finish(`data channel failed: ${err.message}`, 'close'),
      onInvalid: (err) => this.log.debug({ err: err.message }, 'dropped malformed frame'),
      onDrain: () => this.kick(),
      reackDuplicates: opts.reackDuplicates ?? true,
      // The agent's own capacities (SPEC 7.7) and no resend limit (SPEC 7.6).
      maxUnackedMessages: AGENT_BUFFER_CAPACITY,
      maxUnackedBytes: AGENT_BUFFER_CAPACITY * MAX_PAYLOAD,
      reorderCapacity: AGENT_BUFFER_CAPACITY,
      resendDeadlineMs: Number.POSITIVE_INFINITY,
      connected: false,
    });
  }

  get ended(): boolean {
    return this.state === 'ended';
  }

  stats(): SimAgentStats {
    return {
      mode: this.mode,
      clientVersion: this.clientVersion,
      ...this.counters,
      violations: [...this.violations],
      dataChannel: this.dc.stats(),
    };
  }

  /** POST + WebSocket + HandshakeRequest; resolves once the WebSocket is open. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('SimAgent already started');
    this.state = 'handshake';
    let ws: WebSocket;
    try {
      ws = await this.connectWithRetry();
    } catch (err) {
      if (this.isEnding()) return; // stopped while connecting
      this.finish(`unable to open data channel: ${(err as Error).message}`, 'close');
      throw err;
    }
    if (this.isEnding()) {
      ws.terminate();
      return;
    }
    this.attach(ws);
    // Meant for the service; it takes no sequence number (SPEC 16).
    ws.send(
      encodeMessage({
        messageType: MessageType.AgentSessionState,
        sequenceNumber: 0,
        flags: HeaderFlags.Ack,
        payloadType: PayloadType.None,
        payload: Buffer.from(
          JSON.stringify({ SchemaVersion: 1, SessionState: 'Connected', SessionId: this.opts.sessionId }),
        ),
      }),
    );
    this.dc.setConnected(true);
    this.handshakeSentAt = performance.now();
    this.sendStream(
      PayloadType.HandshakeRequest,
      buildHandshakeRequest({
        AgentVersion: this.opts.agentVersion,
        RequestedClientActions: [
          {
            ActionType: 'SessionType',
            ActionParameters: { SessionType: 'Port', Properties: this.handshakeProperties() },
          },
        ],
      }),
    );
    this.handshakeTimer = setTimeout(
      () => this.finish(HANDSHAKE_TIMEOUT_REASON, 'close'),
      this.opts.handshakeTimeoutMs ?? AGENT_HANDSHAKE_TIMEOUT_MS,
    );
    this.handshakeTimer.unref();
    this.scheduleTick();
  }

  /** Immediate end: destinations and WebSocket closed at once, 'ended' emitted before returning. */
  stop(reason = 'stopped'): void {
    this.finish(reason, 'terminate');
  }

  // ---- network: token, WebSocket, reconnect -------------------------------------------------------

  private handshakeProperties(): Record<string, string> {
    const p = this.opts.properties as Record<string, string | undefined>;
    const props: Record<string, string> = {};
    for (const key of Object.keys(p).sort()) {
      const value = p[key];
      if (value !== undefined) props[key] = String(value);
    }
    return props;
  }

  private async sign(method: string, path: string, query: Record<string, string>, body: string) {
    const headers: Record<string, string> = { host: this.endpoint.host };
    if (body) headers['content-type'] = 'application/json';
    const signed = await this.signer.sign(
      new HttpRequest({
        method,
        protocol: this.endpoint.protocol,
        hostname: this.endpoint.hostname,
        port: this.endpoint.port ? Number(this.endpoint.port) : undefined,
        path,
        query,
        headers,
        body,
      }),
    );
    return signed.headers as Record<string, string>;
  }

  private channelPath(): string {
    return `/v1/data-channel/${encodeURIComponent(this.opts.sessionId)}`;
  }

  /** CreateDataChannel: a fresh token for every (re)connect. */
  private async createDataChannel(): Promise<string> {
    const path = this.channelPath();
    const body = JSON.stringify({
      MessageSchemaVersion: '1.0',
      RequestId: randomUUID(),
      ClientId: this.clientId,
    });
    const headers = await this.sign('POST', path, {}, body);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: this.endpoint.hostname,
          port: this.endpoint.port,
          method: 'POST',
          path,
          headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
          timeout: HTTP_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('CreateDataChannel timed out')));
      req.on('error', reject);
      req.end(body);
    });
    if (/already terminated/i.test(text)) throw new SessionTerminatedError(text.trim());
    if (status !== 201) throw new Error(`CreateDataChannel answered HTTP ${status}: ${text.slice(0, 200)}`);
    const token = /<TokenValue>([^<]*)<\/TokenValue>/.exec(text)?.[1];
    if (!token) throw new Error('CreateDataChannel response carries no TokenValue');
    return token;
  }

  private async connect(): Promise<WebSocket> {
    const token = await this.createDataChannel();
    const query = { role: 'publish_subscribe' };
    const { host: _host, ...headers } = await this.sign('GET', this.channelPath(), query, '');
    const wsBase = this.endpoint.origin.replace(/^http/, 'ws');
    const url = `${wsBase}${this.channelPath()}?role=publish_subscribe`;
    return await new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        generateMask: zeroMask,
        headers,
        handshakeTimeout: HTTP_TIMEOUT_MS,
      });
      const onError = (err: Error) => fail(err);
      const onResponse = (_req: http.ClientRequest, res: http.IncomingMessage) =>
        fail(new Error(`upgrade refused with HTTP ${res.statusCode}`));
      const fail = (err: Error) => {
        ws.off('error', onError);
        ws.off('unexpected-response', onResponse);
        ws.on('error', () => {});
        ws.terminate();
        reject(err);
      };
      ws.once('error', onError);
      ws.once('unexpected-response', onResponse);
      ws.once('open', () => {
        ws.off('error', onError);
        ws.off('unexpected-response', onResponse);
        ws.send(
          buildOpenDataChannel({
            MessageSchemaVersion: '1.0',
            RequestId: randomUUID(),
            TokenValue: token,
            ClientInstanceId: this.opts.instanceId,
            ClientId: this.clientId,
          }),
        );
        resolve(ws);
      });
    });
  }

  /** The agent's retryer: first try at once, then 100-199 ms doubling up to 5 s, 5 retries (SPEC 11.2). */
  private async connectWithRetry(): Promise<WebSocket> {
    let delay = RECONNECT_INITIAL_MS + Math.floor(this.rand() * RECONNECT_JITTER_MS);
    let lastErr: unknown;
    for (let attempt = 0; attempt <= RECONNECT_MAX_RETRIES; attempt++) {
      if (attempt > 0) {
        await sleep(delay);
        delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS);
      }
      if (this.isEnding()) throw new Error('session ended');
      try {
        return await this.connect();
      } catch (err) {
        if (err instanceof SessionTerminatedError) throw err;
        lastErr = err;
        this.log.debug({ err: (err as Error).message, attempt }, 'data channel open failed');
      }
    }
    throw lastErr;
  }

  private attach(ws: WebSocket): void {
    this.ws = ws;
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('pong', () => {
      this.pongDeadline = Date.now() + (this.opts.pongTimeoutMs ?? AGENT_PONG_TIMEOUT_MS);
    });
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'WebSocket error'));
    ws.on('close', () => {
      if (ws !== this.ws) return;
      this.ws = undefined;
      this.stopPing();
      if (this.state === 'ending') this.completeEnd(this.endReason ?? 'WebSocket closed');
      else if (this.state === 'handshake' || this.state === 'running') void this.reconnect();
    });
    const interval = this.opts.pingIntervalMs ?? AGENT_PING_INTERVAL_MS;
    this.pongDeadline = Date.now() + interval + (this.opts.pongTimeoutMs ?? AGENT_PONG_TIMEOUT_MS);
    this.pingTimer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.ping('keepalive');
    }, interval);
    this.pingTimer.unref();
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.dc.setConnected(false);
    this.log.debug('WebSocket dropped; reconnecting');
    let ws: WebSocket;
    try {
      ws = await this.connectWithRetry();
    } catch (err) {
      this.reconnecting = false;
      this.finish(`data channel reconnect failed: ${(err as Error).message}`, 'close');
      return;
    }
    this.reconnecting = false;
    if (this.isEnding()) {
      ws.terminate();
      return;
    }
    this.counters.reconnects++;
    this.attach(ws);
    // The agent clears its pause flag after reconnecting (SPEC 11.2); the data channel only lifts a
    // pause on traffic from the peer, so hand it a start_publication.
    this.dc.receive(
      encodeMessage({
        messageType: MessageType.StartPublication,
        sequenceNumber: 0,
        flags: 0,
        payloadType: PayloadType.None,
        payload: Buffer.alloc(0),
      }),
    );
    this.dc.setConnected(true);
    this.kick();
  }

  private sendFrame(frame: Buffer): void {
    const ws = this.ws;
    if (ws) sendBatched(ws, frame);
  }

  private sendStream(payloadType: number, payload: Buffer): number {
    const seq = this.dc.sendStream(payloadType, payload);
    const stuck = this.opts.emulate?.stuckMessage;
    if (stuck !== undefined && (typeof stuck === 'number' ? this.rand() < stuck : stuck.seq === seq)) {
      this.stuckSeqs.add(seq);
    }
    return seq;
  }

  private onFrame(data: Buffer): void {
    if (this.state === 'ended') return;
    const decoded = decodeMessage(data);
    if (!decoded.ok) {
      this.violation(`${decoded.error.code}: ${decoded.error.message}`);
    } else {
      const m = decoded.message;
      this.checkClientMessage(m);
      if (m.messageType === MessageType.Acknowledge && this.stuckSeqs.size > 0) {
        const seq = parseAcknowledge(m.payload)?.AcknowledgedMessageSequenceNumber;
        // The real agent records a message as unacked only after sending it; an ack that beats the
        // recording is lost (SPEC 16). Modelled as: the first ack for the chosen message vanishes.
        if (seq !== undefined && this.stuckSeqs.delete(seq)) {
          this.counters.stuckAcksDropped++;
          return;
        }
      }
    }
    const wasPaused = this.dc.isPaused;
    if (decoded.ok) this.dc.receiveMessage(decoded.message);
    else this.dc.receive(data);
    if (wasPaused !== this.dc.isPaused) this.kick();
  }

  private violation(text: string): void {
    if (this.violations.length < MAX_VIOLATIONS) this.violations.push(text);
  }

  /** SPEC 12.6: what a well-behaved client puts on the wire. */
  private checkClientMessage(m: DecodedMessage): void {
    const type = m.messageType;
    if (type !== MessageType.InputStreamData && type !== MessageType.Acknowledge) return;
    const what = `${type} seq ${m.sequenceNumber}`;
    if (m.headerLength !== HEADER_LENGTH)
      this.violation(`${what}: HeaderLength ${m.headerLength}, expected 116`);
    if (m.declaredPayloadLength !== m.payload.length) {
      this.violation(
        `${what}: PayloadLength ${m.declaredPayloadLength} but ${m.payload.length} bytes follow`,
      );
    }
    if (type === MessageType.InputStreamData) {
      if (m.flags !== HeaderFlags.Data) this.violation(`${what}: flags ${m.flags}, expected 0`);
      if (m.payload.length === 0) this.violation(`${what}: empty payload`);
      return;
    }
    if (m.flags !== HeaderFlags.Ack) this.violation(`${what}: flags ${m.flags}, expected 3`);
    if (m.payloadType !== PayloadType.None)
      this.violation(`${what}: payload type ${m.payloadType}, expected 0`);
    if (m.sequenceNumber !== 0) this.violation(`${what}: acknowledge with a non-zero sequence number`);
    // The exact form upstream emits passes every check below; only anything else needs the full parse.
    if (CANONICAL_ACK.test(m.payload.toString('latin1'))) return;
    let body: unknown;
    try {
      body = JSON.parse(m.payload.toString('utf8'));
    } catch {
      this.violation(`${what}: acknowledge payload is not JSON`);
      return;
    }
    const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const keys = Object.keys(o).sort().join(',');
    const expected =
      'AcknowledgedMessageId,AcknowledgedMessageSequenceNumber,AcknowledgedMessageType,IsSequentialMessage';
    if (keys !== expected) this.violation(`${what}: acknowledge keys ${keys}`);
    if (o.AcknowledgedMessageType !== MessageType.OutputStreamData) {
      this.violation(`${what}: AcknowledgedMessageType ${JSON.stringify(o.AcknowledgedMessageType)}`);
    }
    if (typeof o.AcknowledgedMessageSequenceNumber !== 'number') {
      this.violation(`${what}: AcknowledgedMessageSequenceNumber is not a number`);
    }
    if (typeof o.AcknowledgedMessageId !== 'string')
      this.violation(`${what}: AcknowledgedMessageId is not a string`);
    if (o.IsSequentialMessage !== true) this.violation(`${what}: IsSequentialMessage is not true`);
  }

  // ---- timers -------------------------------------------------------------------------------------

  private scheduleTick(): void {
    if (this.state === 'ended') return;
    const fast = !this.completeSent && this.dc.unackedCount > 0;
    this.tickTimer = setTimeout(
      () => {
        this.tickTimer = undefined;
        this.tick();
        this.scheduleTick();
      },
      fast ? HANDSHAKE_TICK_MS : RESEND_TICK_MS,
    );
    this.tickTimer.unref();
  }

  private tick(): void {
    const now = Date.now();
    this.dc.tick();
    if (this.smux && this.state === 'running') {
      this.smux.tick(now);
    }
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN && now > this.pongDeadline) {
      this.log.debug('no pong in time; treating the WebSocket as dead');
      ws.terminate();
    }
  }

  // ---- handshake and stream messages --------------------------------------------------------------

  private deliver(msg: DecodedMessage): boolean {
    if (this.isEnding()) return true;
    if (!this.completeSent) {
      if (msg.payloadType === PayloadType.HandshakeResponse && !this.responded)
        return this.onHandshakeResponse(msg);
      // The real agent acks and drops anything else while its handshake runs (SPEC 7.3 trap).
      this.counters.discardedBeforeHandshake++;
      return true;
    }
    switch (msg.payloadType) {
      case PayloadType.Output:
        return this.mode === 'mux' ? this.muxInput(msg.payload) : this.basicInput(msg.payload);
      case PayloadType.Flag:
        return this.onFlag(decodeFlag(msg.payload));
      default:
        return true;
    }
  }

  private onHandshakeResponse(msg: DecodedMessage): boolean {
    const res = parseHandshakeResponse(msg.payload);
    if (!res) {
      this.finish('Handshake failed: malformed HandshakeResponse', 'drain');
      return true;
    }
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    for (const action of res.ProcessedClientActions) {
      if (action.ActionStatus !== ActionStatus.Success) {
        this.finish(
          `Handshake failed: ${action.ActionType} status ${action.ActionStatus}${action.Error ? `: ${action.Error}` : ''}`,
          'drain',
        );
        return true;
      }
    }
    this.clientVersion = res.ClientVersion;
    this.responded = true;
    // The data channel acks only after deliver() returns: sending now puts HandshakeComplete ahead of
    // that ack (the racy order of SPEC 16), a microtask puts it after.
    if (this.rand() < (this.opts.completeBeforeAck ?? 0)) this.sendHandshakeComplete();
    else queueMicrotask(() => this.sendHandshakeComplete());
    return true;
  }

  private sendHandshakeComplete(): void {
    if (this.isEnding() || this.completeSent) return;
    const ns = Math.max(1, Math.round((performance.now() - this.handshakeSentAt) * 1e6));
    this.sendStream(
      PayloadType.HandshakeComplete,
      buildHandshakeComplete({ HandshakeTimeToComplete: ns, CustomerMessage: '' }),
    );
    this.completeSent = true;
    this.state = 'running';
    const decision = agentModeFor(
      this.clientVersion ?? '',
      this.opts.properties.type,
      this.opts.agentVersion,
    );
    this.mode = decision.mode;
    this.log.debug({ mode: decision.mode, keepalive: decision.smuxKeepalive }, 'handshake complete');
    if (decision.mode === 'mux') {
      this.smux = new SmuxSession(
        {
          role: 'server',
          keepalive: decision.smuxKeepalive,
          keepaliveIntervalMs: this.opts.smuxKeepaliveIntervalMs,
          keepaliveTimeoutMs: this.opts.smuxKeepaliveTimeoutMs,
        },
        {
          output: (bytes) => this.enqueue(bytes),
          streamOpened: (sid) => this.onStreamOpened(sid),
          data: (sid, data) => this.onStreamData(sid, data),
          streamClosed: (sid) => this.onStreamFin(sid),
          error: (err) => this.finish(`smux session failed: ${err.message}`, 'drain'),
        },
        Date.now(),
      );
      this.emitReady();
    } else {
      this.basicDial(true);
    }
  }

  private emitReady(): void {
    if (this.readyEmitted || !this.mode) return;
    this.readyEmitted = true;
    this.emit('ready', this.mode);
  }

  private onFlag(flag: number | undefined): boolean {
    if (flag === PayloadFlag.TerminateSession) {
      this.finish('TerminateSession flag received', 'drain');
      return true;
    }
    if (flag === PayloadFlag.DisconnectToPort && this.mode === 'basic') {
      // Its own dial is synchronous in the real agent's handler, so nothing is taken meanwhile.
      if (this.basicDialing) return false;
      const sock = this.basicSock;
      this.basicSock = undefined;
      if (sock) this.closeSocket(sock);
    }
    return true;
  }

  // ---- destinations: shared -------------------------------------------------------------------------

  private trackSocket(sock: net.Socket, onData: (chunk: Buffer) => void, onGone: () => void): void {
    this.destSockets.add(sock);
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => {
      if (this.isEnding()) return;
      this.counters.bytesFromDestination += chunk.length;
      onData(chunk);
    });
    let gone = false;
    const goneOnce = () => {
      if (gone) return;
      gone = true;
      onGone();
    };
    sock.on('end', goneOnce);
    sock.on('error', (err) => {
      this.log.debug({ err: err.message }, 'destination socket error');
      goneOnce();
    });
    sock.on('close', () => {
      this.destSockets.delete(sock);
      goneOnce();
      this.checkUnblock();
    });
    sock.on('drain', () => this.checkUnblock());
    if (!this.reading) sock.pause();
  }

  /** Full close, like Go's Conn.Close, but only after what was written has been flushed. */
  private closeSocket(sock: net.Socket): void {
    if (sock.destroyed) return;
    sock.pause();
    sock.end(() => sock.destroy());
  }

  private writeDestination(sock: net.Socket, data: Buffer): void {
    this.counters.bytesToDestination += data.length;
    writeBatched(sock, data);
  }

  private destinationBuffered(): number {
    let n = 0;
    for (const s of this.destSockets) n += s.writableLength;
    for (const st of this.streams.values()) n += st.pendingBytes;
    for (const b of this.basicPending) n += b.length;
    return n;
  }

  /** Back-pressure: refuse Output (unacked, the client resends) while destinations are backed up. */
  private inputRefused(): boolean {
    if (this.destinationBuffered() > this.maxDestBuffer) {
      this.inputBlocked = true;
      return true;
    }
    return false;
  }

  private checkUnblock(): void {
    if (!this.inputBlocked || this.destinationBuffered() > this.maxDestBuffer) return;
    this.inputBlocked = false;
    this.dc.retryDelivery();
  }

  // ---- mux mode --------------------------------------------------------------------------------------

  private muxInput(payload: Buffer): boolean {
    if (!this.smux || this.inputRefused()) return false;
    this.smux.receive(payload);
    return true;
  }

  private onStreamOpened(sid: number): void {
    this.counters.streamsAccepted++;
    const st: MuxStream = { sid, pending: [], pendingBytes: 0, clientFin: false, closed: false };
    this.streams.set(sid, st);
    dialDestination(
      this.opts.properties.host,
      this.opts.properties.portNumber,
      this.opts.resolveDestination,
    ).then(
      (sock) => this.onStreamDialled(st, sock),
      (err: Error) => this.onStreamDialFailed(st, err),
    );
  }

  private onStreamDialled(st: MuxStream, sock: net.Socket): void {
    if (this.isEnding() || st.closed) {
      sock.destroy();
      return;
    }
    st.sock = sock;
    this.trackSocket(
      sock,
      (chunk) => {
        if (!st.closed) this.smux?.write(st.sid, chunk);
      },
      () => this.closeMuxStream(st),
    );
    for (const b of st.pending) this.writeDestination(sock, b);
    st.pending = [];
    st.pendingBytes = 0;
    if (st.clientFin) this.closeMuxStream(st);
  }

  private onStreamDialFailed(st: MuxStream, err: Error): void {
    this.counters.dialFailures++;
    this.log.debug({ sid: st.sid, err: err.message }, 'destination dial failed');
    if (this.isEnding() || st.closed) return;
    st.closed = true;
    this.streams.delete(st.sid);
    st.pending = [];
    st.pendingBytes = 0;
    // Flag 3 in one message, the FIN in the next (SPEC 16): the queue keeps them apart.
    this.enqueueFlag(PayloadFlag.ConnectToPortError);
    this.sendFin(st.sid);
    this.checkUnblock();
  }

  private onStreamData(sid: number, data: Buffer): void {
    const st = this.streams.get(sid);
    if (!st || st.closed) return;
    if (st.sock) {
      this.writeDestination(st.sock, data);
    } else {
      st.pending.push(data);
      st.pendingBytes += data.length;
    }
  }

  private onStreamFin(sid: number): void {
    const st = this.streams.get(sid);
    if (!st) return;
    st.clientFin = true;
    // Still dialling: the dial's outcome closes it.
    if (st.sock) this.closeMuxStream(st);
  }

  /** First EOF/error on either side closes both: our FIN (echoed even after the client's) and TCP. */
  private closeMuxStream(st: MuxStream): void {
    if (st.closed) return;
    st.closed = true;
    this.streams.delete(st.sid);
    this.sendFin(st.sid);
    if (st.sock) this.closeSocket(st.sock);
  }

  private sendFin(sid: number): void {
    if (!this.smux || this.smux.isClosed) return;
    // The smux core forgets a stream on the peer's FIN, yet the agent still answers with its own.
    if (this.smux.hasStream(sid)) this.smux.closeStream(sid);
    else this.enqueue(encodeSmuxHeader(SmuxCmd.FIN, 0, sid));
  }

  // ---- basic mode -------------------------------------------------------------------------------------

  private basicDial(initial: boolean): void {
    this.basicDialing = true;
    dialDestination(
      this.opts.properties.host,
      this.opts.properties.portNumber,
      this.opts.resolveDestination,
    ).then(
      (sock) => {
        this.basicDialing = false;
        if (this.isEnding()) {
          sock.destroy();
          return;
        }
        this.basicSock = sock;
        this.trackSocket(
          sock,
          (chunk) => {
            if (sock === this.basicSock) this.enqueue(chunk);
          },
          () => {
            // Destination EOF in LocalPortForwarding: close and redial on the next Output.
            if (sock === this.basicSock) this.basicSock = undefined;
            this.closeSocket(sock);
          },
        );
        const pending = this.basicPending;
        this.basicPending = [];
        for (const b of pending) this.writeDestination(sock, b);
        if (initial) this.emitReady();
        this.dc.retryDelivery();
      },
      (err: Error) => {
        this.basicDialing = false;
        this.counters.dialFailures++;
        this.basicPending = [];
        if (this.isEnding()) return;
        if (this.opts.emulate?.basicRefuseExit) {
          this.crash();
          return;
        }
        this.finish(`Unable to connect to specified port: ${err.message}`, 'drain');
      },
    );
  }

  private basicInput(payload: Buffer): boolean {
    if (!this.readyEmitted) return false; // the initial dial has not finished
    if (this.basicSock) {
      if (this.inputRefused()) return false;
      this.writeDestination(this.basicSock, payload);
      return true;
    }
    // The agent redials inside its handler and writes afterwards; holding the bytes is equivalent.
    this.basicPending.push(payload);
    if (!this.basicDialing) this.basicDial(false);
    return true;
  }

  // ---- agent → client: paced Output queue ---------------------------------------------------------------

  private enqueue(bytes: Buffer): void {
    if (bytes.length === 0 || this.isEnding()) return;
    this.out.push(bytes);
    this.outBytes += bytes.length;
    this.schedulePump();
  }

  private enqueueFlag(flag: number): void {
    if (this.isEnding()) return;
    this.out.push({ flag });
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpImmediate || this.pumpTimer) return;
    // A turn of the event loop lets an smux header and its data leave in one message, as a 1024-byte
    // pipe read would upstream.
    this.pumpImmediate = setImmediate(() => {
      this.pumpImmediate = undefined;
      this.pump();
    });
  }

  private canSend(): boolean {
    return this.state === 'running' && this.dc.writable && !this.dc.isPaused;
  }

  private pump(): void {
    while (this.out.length > 0 && this.canSend()) {
      this.sendOne();
      if (this.pacing) {
        // The agent sleeps 1 ms after every read (SPEC 10.8).
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = undefined;
          this.pump();
        }, 1);
        break;
      }
    }
    this.updateReading();
  }

  private sendOne(): void {
    const head = this.out[0];
    if (!Buffer.isBuffer(head)) {
      this.out.shift();
      this.sendStream(PayloadType.Flag, encodeFlag(head.flag));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    while (size < MAX_PAYLOAD && this.out.length > 0 && Buffer.isBuffer(this.out[0])) {
      const b = this.out[0] as Buffer;
      const take = Math.min(b.length, MAX_PAYLOAD - size);
      parts.push(take === b.length ? b : b.subarray(0, take));
      size += take;
      if (take === b.length) this.out.shift();
      else this.out[0] = b.subarray(take);
    }
    this.outBytes -= size;
    this.sendStream(PayloadType.Output, parts.length === 1 ? parts[0] : Buffer.concat(parts, size));
  }

  /** Resume sending and reading after a pause, a drained window or a reconnect. */
  private kick(): void {
    if (this.out.length > 0) this.schedulePump();
    this.updateReading();
  }

  /** Destinations are read only while the channel can take more (SPEC 7.7, 10.3.3). */
  private updateReading(): void {
    const read = this.state === 'running' && this.canSend() && this.outBytes < OUT_QUEUE_HIGH_WATER;
    if (read === this.reading) return;
    this.reading = read;
    for (const s of this.destSockets) {
      if (read) s.resume();
      else s.pause();
    }
  }

  // ---- the end ---------------------------------------------------------------------------------------------

  private isEnding(): boolean {
    return this.state === 'ending' || this.state === 'ended';
  }

  /** Like the agent process dying: TCP drops, nothing is flushed. */
  private crash(): void {
    this.finish('agent crashed', 'terminate');
  }

  /**
   * Ends the session once. 'drain' waits up to 2 s (polling every 10 ms) for everything sent to be
   * acked, as the agent's PrepareToCloseChannel does; 'close' closes the WebSocket at once;
   * 'terminate' drops TCP and emits 'ended' synchronously.
   */
  private finish(reason: string, how: 'drain' | 'close' | 'terminate'): void {
    if (this.isEnding()) {
      // stop() during a drain still has to be immediate.
      if (how === 'terminate' && this.state === 'ending') {
        this.ws?.terminate();
        this.completeEnd(this.endReason ?? reason);
      }
      return;
    }
    this.state = 'ending';
    this.endReason = reason;
    this.log.debug({ reason }, 'session ending');
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.smux?.close();
    for (const st of this.streams.values()) st.closed = true;
    this.streams.clear();
    for (const s of this.destSockets) s.destroy();
    this.destSockets.clear();
    this.basicSock = undefined;
    this.basicPending = [];
    this.out = [];
    this.outBytes = 0;
    if (this.pumpImmediate) clearImmediate(this.pumpImmediate);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpImmediate = undefined;
    this.pumpTimer = undefined;

    if (how === 'terminate') {
      this.ws?.terminate();
      this.completeEnd(reason);
      return;
    }
    const deadline = Date.now() + (how === 'drain' ? DRAIN_WAIT_MS : 0);
    // Never close synchronously: the ack for the message that triggered the end is sent after
    // deliver() returns and must reach the socket first.
    const poll = () => {
      if (this.state !== 'ending') return;
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN || this.dc.unackedCount === 0 || Date.now() >= deadline) {
        this.closeWebSocket();
        this.completeEnd(reason);
        return;
      }
      setTimeout(poll, DRAIN_POLL_MS).unref();
    };
    setTimeout(poll, how === 'drain' ? DRAIN_POLL_MS : 0).unref();
  }

  private closeWebSocket(): void {
    const ws = this.ws;
    if (!ws) return;
    if (ws.readyState === WebSocket.OPEN) {
      ws.close(1000);
      // A close frame is harmless; don't linger if the peer never answers it.
      setTimeout(() => ws.terminate(), 1000).unref();
    } else {
      ws.terminate();
    }
  }

  private completeEnd(reason: string): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    this.stopPing();
    this.dc.close();
    this.ws = undefined;
    this.log.debug({ reason }, 'session ended');
    this.emit('ended', reason);
  }
}
