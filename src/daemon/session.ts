/**
 * One SSM port session as the daemon runs it: StartSession, the WebSocket, the data channel and the
 * port session on top, the 100 ms retransmission tick, and resuming after a dropped WebSocket with
 * ResumeSession while every sequence number and buffer carries over (SPEC 11.2).
 */
import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { DataChannel, type DataChannelStats, RESEND_TICK_MS } from '../protocol/data-channel.js';
import type { ProtocolError } from '../protocol/errors.js';
import { CLIENT_VERSION } from '../protocol/handshake.js';
import { PortSession, type PortSessionInfo } from '../protocol/port-session.js';
import type { SessionTokens, SsmGateway } from './aws.js';
import { TunnelError } from './errors.js';
import { RateLimitedLog } from './log-limit.js';
import { PreConnection } from './preconnect.js';
import { Transport } from './transport.js';

export const HANDSHAKE_TIMEOUT_MS = 30_000;
export const MAX_RECONNECT_MS = 120_000;
const RECONNECT_INITIAL_MS = 100;
const RECONNECT_MAX_DELAY_MS = 5_000;
/** A tick this late means the process was frozen (laptop sleep): the socket may well be dead. */
const SLEEP_GAP_MS = 15_000;
/** After a freeze, a socket that answers a ping within this long is kept (it may hold data). */
const FREEZE_PROBE_MS = 3_000;
/** A front message unacknowledged this long shows the tunnel as degraded (long before the deadline). */
export const DEGRADED_AFTER_MS = 10_000;
const TERMINATE_GRACE_MS = 500;

export interface SessionHandlers {
  data(connId: number, data: Buffer): void;
  remoteClosed(connId: number): void;
  connectToPortError(): void;
  /** The unacked bound has room again: resume reading local sockets. */
  drain(): void;
  /** Basic mode: the previous connection's output has drained; a waiting connection may attach. */
  slotFree?(): void;
  reconnecting(reason: string): void;
  reconnected(): void;
  /** The session is over. `error` is undefined when we ended it ourselves. */
  closed(error?: TunnelError): void;
}

export interface SessionOptions {
  aws: SsmGateway;
  target: string;
  documentName: string;
  parameters: Record<string, string[]>;
  logger: Logger;
  handlers: SessionHandlers;
  clientVersion?: string;
  handshakeTimeoutMs?: number;
  /** TLS options of the pre-connection (tests with a CA of their own); ws's own dial uses the defaults. */
  preconnectTls?: Pick<ConnectionOptions, 'ca'>;
  maxReconnectMs?: number;
  pingIntervalMs?: number;
  deadAfterMs?: number;
  maxUnackedMessages?: number;
  maxUnackedBytes?: number;
  /** Basic mode's quiet period after a connection ends (see protocol/basic-gate.ts). */
  basicQuietMs?: number;
  degradedAfterMs?: number;
  /** A tick this much later than due means the process was frozen (default 15 s). */
  freezeGapMs?: number;
}

export interface SessionHealth {
  degraded: boolean;
  reason?: string;
}

export interface SessionStats {
  sessionId: string;
  mode: 'mux' | 'basic';
  agentVersion: string;
  reconnects: number;
  channel: DataChannelStats;
}

/**
 * The steps of a session's first open: StartSession (the API call), connect (signing the upgrade,
 * the WebSocket upgrade and OpenDataChannel) and the handshake (to HandshakeComplete).
 */
export interface OpenTimings {
  startSessionMs: number;
  connectMs: number;
  handshakeMs: number;
  /** The upgrade went over a connection made while StartSession was on the wire. */
  preconnected?: boolean;
}

export class ClientSession {
  /** How long each step of the first open took (ms), for the status and the benchmarks. */
  readonly openTimings: OpenTimings = { startSessionMs: 0, connectMs: 0, handshakeMs: 0 };
  readonly sessionId: string;
  private readonly tokens: SessionTokens;
  private readonly clientId = randomUUID();
  private readonly channel: DataChannel;
  private readonly port: PortSession;
  private transport: Transport | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private lastTick = Date.now();
  private reconnects = 0;
  private probing = false;
  private readonly invalidLog: RateLimitedLog;
  private ending = false;
  private ended = false;
  private readyWaiter: { resolve: () => void; reject: (e: TunnelError) => void } | undefined;

  private constructor(
    private readonly opts: SessionOptions,
    tokens: SessionTokens,
  ) {
    this.tokens = tokens;
    this.sessionId = tokens.sessionId;
    this.invalidLog = new RateLimitedLog(opts.logger);
    const h = opts.handlers;
    this.channel = new DataChannel({
      role: 'client',
      now: Date.now,
      connected: false,
      send: (frame) => this.transport?.send(frame),
      deliver: (msg) => this.port.deliver(msg),
      onChannelClosed: (c) =>
        this.finish(
          // While we terminate on purpose, the service's channel_closed is just the confirmation.
          this.ending
            ? undefined
            : new TunnelError(
                'SESSION_CLOSED',
                c.Output ? `session closed by AWS: ${c.Output}` : 'session closed by AWS (channel_closed)',
              ),
        ),
      onError: (err) => {
        this.finish(new TunnelError('RESEND_TIMEOUT', err.message));
        void this.opts.aws.terminateSession(this.sessionId).catch(() => {});
      },
      onInvalid: (err) => this.invalidLog.warn({ code: err.code }, `dropped malformed frame: ${err.message}`),
      onDrain: () => h.drain(),
      maxUnackedMessages: opts.maxUnackedMessages,
      maxUnackedBytes: opts.maxUnackedBytes,
    });
    this.port = new PortSession(
      {
        clientVersion: opts.clientVersion ?? CLIENT_VERSION,
        now: Date.now(),
        clock: Date.now,
        basicGate: opts.basicQuietMs !== undefined ? { quietMs: opts.basicQuietMs } : undefined,
        coalesce: (flush) => setImmediate(flush),
      },
      {
        sendStream: (type, payload) => this.channel.sendStream(type, payload),
        isAcknowledged: (seq) => this.channel.isAcknowledged(seq),
        inboundGap: () => this.channel.hasInboundGap,
        slotFree: () => h.slotFree?.(),
        ready: (info) => {
          this.opts.logger.info({ mode: info.mode, agentVersion: info.agentVersion }, 'session ready');
          this.readyWaiter?.resolve();
        },
        data: (id, data) => h.data(id, data),
        remoteClosed: (id) => h.remoteClosed(id),
        connectToPortError: () => h.connectToPortError(),
        failed: (err: ProtocolError) =>
          this.finish(
            new TunnelError(
              err.code === 'UNSUPPORTED_SESSION' ? 'HANDSHAKE_FAILED' : 'PROTOCOL_ERROR',
              err.message,
            ),
          ),
      },
    );
  }

  /** StartSession, connect and complete the handshake. Rejects with a TunnelError on any failure. */
  static async start(opts: SessionOptions): Promise<ClientSession> {
    const t0 = performance.now();
    const origin = opts.aws.expectedStreamOrigin?.();
    const pre = origin ? new PreConnection(origin, opts.preconnectTls) : undefined;
    let tokens: SessionTokens;
    try {
      tokens = await opts.aws.startSession(opts.target, opts.documentName, opts.parameters);
    } catch (e) {
      pre?.dispose();
      throw e;
    }
    const session = new ClientSession(opts, tokens);
    session.openTimings.startSessionMs = performance.now() - t0;
    try {
      await session.connectFirst(pre);
      return session;
    } catch (e) {
      pre?.dispose();
      session.finish(e as TunnelError, false);
      await opts.aws.terminateSession(tokens.sessionId).catch(() => {});
      throw e;
    }
  }

  private async connectFirst(pre: PreConnection | undefined): Promise<void> {
    const url = new URL(this.tokens.streamUrl);
    if (url.protocol !== 'wss:' && !(url.protocol === 'ws:' && this.opts.aws.loopbackEndpoint)) {
      throw new TunnelError(
        'INSECURE_STREAM_URL',
        `refusing stream URL with scheme ${url.protocol} (only wss:// unless the SSM endpoint is on loopback)`,
      );
    }
    const ready = new Promise<void>((resolve, reject) => {
      this.readyWaiter = { resolve, reject };
    });
    const timeout = setTimeout(
      () =>
        this.readyWaiter?.reject(
          new TunnelError(
            'HANDSHAKE_TIMEOUT',
            `no HandshakeComplete within ${this.handshakeTimeoutMs / 1000} s`,
          ),
        ),
      this.handshakeTimeoutMs,
    );
    try {
      const t0 = performance.now();
      await this.connect(this.tokens.tokenValue, pre);
      const t1 = performance.now();
      this.openTimings.connectMs = t1 - t0;
      this.tickTimer = setInterval(() => this.tick(), RESEND_TICK_MS);
      await ready;
      this.openTimings.handshakeMs = performance.now() - t1;
    } finally {
      clearTimeout(timeout);
      this.readyWaiter = undefined;
    }
  }

  private get handshakeTimeoutMs(): number {
    return this.opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  }

  private async connect(token: string, pre?: PreConnection): Promise<void> {
    const headers = await this.opts.aws.signStreamUrl(this.tokens.streamUrl);
    const socket = pre?.take(this.tokens.streamUrl);
    if (socket) this.openTimings.preconnected = true;
    const transport = await Transport.connect({
      streamUrl: this.tokens.streamUrl,
      socket,
      token,
      clientId: this.clientId,
      clientVersion: this.opts.clientVersion ?? CLIENT_VERSION,
      headers,
      pingIntervalMs: this.opts.pingIntervalMs,
      deadAfterMs: this.opts.deadAfterMs,
      onFrame: (frame) => this.channel.receive(frame),
      onDrop: (reason) => this.onDrop(transport, reason),
    });
    if (this.ended) {
      transport.close();
      return;
    }
    this.transport = transport;
    this.channel.setConnected(true);
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.lastTick > (this.opts.freezeGapMs ?? SLEEP_GAP_MS) && this.transport?.isOpen)
      this.probeAfterFreeze(now - this.lastTick);
    this.lastTick = now;
    this.channel.tick();
    this.port.tick(now);
  }

  /**
   * After a freeze the old socket may still be fine, and its receive buffer holds what the agent sent
   * meanwhile: replacing it would throw that away and leave the agent resending one message per tick.
   * A ping answered in time proves it alive (and everything queued before the pong has been read).
   */
  private probeAfterFreeze(gapMs: number): void {
    const transport = this.transport;
    if (!transport || this.probing) return;
    this.probing = true;
    const secs = Math.round(gapMs / 1000);
    void transport.probe(FREEZE_PROBE_MS).then((alive) => {
      this.probing = false;
      if (alive) {
        this.opts.logger.info({ frozenS: secs }, 'process was frozen; the WebSocket survived');
        return;
      }
      if (transport === this.transport && transport.isOpen)
        transport.kill(`process was frozen for ${secs} s (sleep?) and the WebSocket no longer answers`);
    });
  }

  private onDrop(transport: Transport, reason: string): void {
    if (transport !== this.transport || this.ended) return;
    this.transport = undefined;
    this.channel.setConnected(false);
    if (this.ending) return;
    if (this.readyWaiter) {
      this.readyWaiter.reject(
        new TunnelError('WEBSOCKET_FAILED', `WebSocket dropped during handshake: ${reason}`),
      );
      return;
    }
    this.opts.logger.warn({ reason }, 'data channel dropped; resuming');
    this.opts.handlers.reconnecting(reason);
    void this.resume(reason);
  }

  /** SPEC 11.2: ResumeSession for a new token, same StreamUrl, new OpenDataChannel, same ClientId. */
  private async resume(reason: string): Promise<void> {
    const deadline = Date.now() + (this.opts.maxReconnectMs ?? MAX_RECONNECT_MS);
    let delay = RECONNECT_INITIAL_MS + Math.floor(Math.random() * 100);
    let lastError = reason;
    for (let attempt = 0; !this.ended && Date.now() < deadline; attempt++) {
      // Same stream URL (SPEC 11.2): its connection is made while ResumeSession is on the wire.
      const pre = new PreConnection(new URL(this.tokens.streamUrl).origin, this.opts.preconnectTls);
      try {
        const tokens = await this.opts.aws.resumeSession(this.sessionId);
        if (!tokens) {
          pre.dispose();
          this.finish(
            new TunnelError(
              'SESSION_TIMED_OUT',
              'the session is gone on the AWS side (ResumeSession gave no token)',
            ),
          );
          return;
        }
        if (this.ended) {
          pre.dispose();
          return;
        }
        await this.connect(tokens.tokenValue, pre);
        this.port.reconnected(Date.now());
        this.reconnects++;
        this.opts.logger.info({ attempt }, 'data channel resumed');
        this.opts.handlers.reconnected();
        return;
      } catch (e) {
        pre.dispose();
        lastError = (e as Error).message;
        const code = (e as TunnelError).code;
        // Credentials problems won't fix themselves by retrying; the user must act.
        if (
          code === 'CREDENTIALS_EXPIRED' ||
          code === 'SSO_LOGIN_REQUIRED' ||
          code === 'CREDENTIALS_MISSING'
        ) {
          this.finish(e as TunnelError);
          return;
        }
        this.opts.logger.warn({ attempt, err: lastError }, 'resume attempt failed');
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS);
    }
    this.finish(new TunnelError('RESUME_FAILED', `could not resume the session: ${lastError}`));
  }

  get info(): PortSessionInfo {
    return this.port.sessionInfo!;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  get isReconnecting(): boolean {
    return !this.ended && this.transport === undefined;
  }

  get canOpenConnection(): boolean {
    return !this.ended && this.port.canOpenConnection;
  }

  /** False while the unacked bound is reached: stop reading local sockets until `drain`. */
  get writable(): boolean {
    return this.channel.writable;
  }

  openConnection(): number {
    return this.port.openConnection();
  }

  write(connId: number, data: Buffer): void {
    this.port.write(connId, data);
  }

  closeConnection(connId: number): void {
    this.port.closeConnection(connId);
  }

  /** Basic mode: the slot is closed while the previous connection's output drains. */
  get basicDraining(): boolean {
    return this.port.basicDraining;
  }

  /** Degraded: the agent has not acknowledged our oldest message for a long time (or we are away). */
  health(): SessionHealth {
    const age = this.channel.oldestUnackedAgeMs();
    const limit = this.opts.degradedAfterMs ?? DEGRADED_AFTER_MS;
    if (!this.ended && age > limit) {
      return {
        degraded: true,
        reason: `the agent has not acknowledged data for ${Math.round(age / 1000)} s${this.transport ? '' : ' (reconnecting)'}`,
      };
    }
    return { degraded: false };
  }

  stats(): SessionStats {
    const info = this.port.sessionInfo;
    return {
      sessionId: this.sessionId,
      mode: info?.mode ?? 'mux',
      agentVersion: info?.agentVersion ?? '',
      reconnects: this.reconnects,
      channel: this.channel.stats(),
    };
  }

  /**
   * Ends the session on purpose: TerminateSession flag, a short grace for its ack (SPEC 16: the agent
   * acks, then exits), then the TerminateSession API as a belt-and-braces measure.
   */
  async terminate(): Promise<void> {
    if (this.ended || this.ending) return;
    this.ending = true;
    const info = this.port.sessionInfo;
    if (info && this.transport) {
      if (info.terminateFlag) this.port.terminate();
      const until = Date.now() + TERMINATE_GRACE_MS;
      while (Date.now() < until && this.channel.unackedCount > 0 && !this.ended) {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    await Promise.race([
      this.opts.aws
        .terminateSession(this.sessionId)
        .catch((e) => this.opts.logger.warn({ err: (e as Error).message }, 'TerminateSession failed')),
      new Promise((r) => setTimeout(r, 1000)),
    ]);
    this.finish(undefined);
  }

  private finish(error: TunnelError | undefined, notify = true): void {
    if (this.ended) return;
    this.ended = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.channel.close();
    this.port.close();
    this.transport?.close();
    this.transport = undefined;
    if (this.readyWaiter && error) {
      this.readyWaiter.reject(error);
      return;
    }
    if (error) this.opts.logger.warn({ code: error.code }, error.message);
    if (notify) this.opts.handlers.closed(error);
  }
}
