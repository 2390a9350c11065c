/**
 * A named tunnel: local listeners that are always there, an SSM session opened lazily on the first
 * connection and shared by every later one (one smux stream each), basic-mode serialisation for old
 * agents, per-connection buffer caps (local-conn.ts), a connection cap, idle close, and a status the
 * API can show.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { writeBatched } from '../shared/batched-write.js';
import type { AwsTarget, SsmGateway } from './aws.js';
import type { TunnelConfig } from './config.js';
import { TunnelError } from './errors.js';
import { IamFront, type TokenSource } from './iam-front.js';
import { closeAll, listenAll } from './listeners.js';
import {
  type Conn,
  DEFAULT_MAX_BUFFER_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  queuedBytes,
  resetSocket,
} from './local-conn.js';
import { RateLimitedLog } from './log-limit.js';
import { ClientSession, type SessionOptions } from './session.js';
import { Transport } from './transport.js';
import { buildStatus, remoteOf, type TunnelState, type TunnelStatus } from './tunnel-status.js';

export type { TunnelState, TunnelStatus } from './tunnel-status.js';

export interface TunnelDeps {
  gateway: (t: AwsTarget) => SsmGateway;
  logger: Logger;
  /** Overrides for tests and benchmarks (timeouts, window sizes). */
  session?: Partial<
    Pick<
      SessionOptions,
      | 'handshakeTimeoutMs'
      | 'maxReconnectMs'
      | 'pingIntervalMs'
      | 'deadAfterMs'
      | 'maxUnackedMessages'
      | 'maxUnackedBytes'
      | 'basicQuietMs'
      | 'degradedAfterMs'
      | 'freezeGapMs'
    >
  >;
  /** Per-connection cap on bytes queued towards a slow local reader (default 64 MiB). */
  maxBufferBytes?: number;
  /** Connections per tunnel, waiting ones included (default 512). */
  maxConnections?: number;
  /** Cap on bytes queued for all slow readers of the tunnel together (default 256 MiB). */
  maxTotalBufferBytes?: number;
  /** Per-call timeout for the AWS API (default 20 s). */
  awsCallTimeoutMs?: number;
  /** Told of every state change and every new error as it happens (the API's /events and /metrics). */
  observer?: TunnelObserver;
  /** RDS IAM tokens, for `auth = "iam"` tunnels. */
  tokens?: TokenSource;
  /** A member of a session pool (pool.ts): the pool listens and hands connections to `accept`. */
  pooled?: boolean;
}

export interface TunnelObserver {
  state(tunnel: string, state: TunnelState, previous: TunnelState): void;
  error(tunnel: string, error: NonNullable<TunnelStatus['lastError']>): void;
  /** Called by the manager. */
  added?(tunnel: string): void;
  removed?(tunnel: string): void;
}

const EAGER_REOPEN_MS = 5_000;
/** Bytes queued for all local readers of one tunnel together. */
export const DEFAULT_MAX_TOTAL_BUFFER_BYTES = 256 * 1024 * 1024;
const TOTAL_CHECK_FROM = 1024 * 1024;

export class Tunnel {
  readonly config: TunnelConfig;
  /** Set by the manager while a busy port is retried with back-off. */
  listenRetry: TunnelStatus['listenRetry'];
  private readonly log: Logger;
  private servers: net.Server[] = [];
  private listening: string[] = [];
  private session: ClientSession | undefined;
  private opening: Promise<ClientSession> | undefined;
  private readonly byId = new Map<number, Conn>();
  /** Basic-mode sessions being terminated after their one connection. */
  private readonly retiring = new Set<Promise<void>>();
  private waiting: Conn[] = [];
  /** The PostgreSQL login front of an `auth = "iam"` tunnel. */
  private readonly iam: IamFront | undefined;
  private currentState: TunnelState = 'listening';
  // An accessor, so every assignment below reaches the observer without a call at each site.
  private get state(): TunnelState {
    return this.currentState;
  }
  private set state(next: TunnelState) {
    const previous = this.currentState;
    this.currentState = next;
    if (previous !== next) this.deps.observer?.state(this.config.name, next, previous);
  }
  private stopped = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private reopenTimer: NodeJS.Timeout | undefined;
  private resolvedTarget: string | undefined;
  private lastError: TunnelStatus['lastError'];
  private openedAt: string | undefined;
  private lastOpen: TunnelStatus['lastOpen'];
  private counters = {
    total: 0,
    toRemote: 0,
    fromRemote: 0,
    sessions: 0,
    reconnects: 0,
    retransmissions: 0,
    reset: 0,
    refused: 0,
  };
  private readonly maxBuffer: number;
  private readonly maxConnections: number;
  private readonly maxTotalBuffer: number;
  private readonly resetLog: RateLimitedLog;
  private readonly refuseLog: RateLimitedLog;

  constructor(
    config: TunnelConfig,
    private readonly deps: TunnelDeps,
  ) {
    this.config = config;
    this.log = deps.logger.child({ tunnel: config.name });
    this.maxBuffer = deps.maxBufferBytes ?? config.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    this.maxConnections = deps.maxConnections ?? config.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxTotalBuffer = deps.maxTotalBufferBytes ?? DEFAULT_MAX_TOTAL_BUFFER_BYTES;
    this.resetLog = new RateLimitedLog(this.log);
    this.refuseLog = new RateLimitedLog(this.log);
    if (config.auth === 'iam' && deps.tokens) {
      this.iam = new IamFront(config, deps.tokens, (socket) => this.onConnection(socket), this.log);
    }
  }

  /** Binds every configured address. A bind failure is this tunnel's error, never another's. */
  async start(): Promise<void> {
    if (this.stopped) return;
    if (this.deps.pooled) {
      this.state = 'listening';
      if (!this.config.lazy) void this.ensureSession().catch(() => {});
      return;
    }
    const bound = await listenAll(this.config, (socket) => this.accept(socket), this.log);
    this.servers = bound.servers;
    this.listening = bound.listening;
    if (bound.error) {
      this.state = 'error';
      this.setError(bound.error);
      return;
    }
    this.state = 'listening';
    this.log.info({ port: this.config.localPort, bind: this.listening }, 'listening');
    if (!this.config.lazy) void this.ensureSession().catch(() => {});
  }

  /** A local connection, from this tunnel's listener or from the pool that listens for it. */
  accept(socket: net.Socket): void {
    if (this.iam) this.iam.handle(socket);
    else this.onConnection(socket);
  }

  /** A session is open or being opened: a connection given now does not wait for a StartSession. */
  get hasSession(): boolean {
    return (!!this.session && !this.session.isEnded) || !!this.opening;
  }

  /** Connections carried or waiting (the pool spreads by this). */
  get load(): number {
    return this.byId.size + this.waiting.length;
  }

  private onConnection(socket: net.Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (this.byId.size + this.waiting.length >= this.maxConnections) {
      this.counters.refused++;
      socket.on('error', () => {});
      resetSocket(socket);
      this.refuseLog.warn(
        { code: 'TOO_MANY_CONNECTIONS', max: this.maxConnections, refused: this.counters.refused },
        `refused a connection: the tunnel already carries ${this.maxConnections} (max_connections)`,
      );
      this.lastError = {
        code: 'TOO_MANY_CONNECTIONS',
        message: `connection refused: ${this.maxConnections} connections already open (max_connections)`,
        fix: 'close idle connections (connection pools), or raise max_connections for this tunnel',
        at: new Date().toISOString(),
      };
      return;
    }
    this.counters.total++;
    socket.setNoDelay(true);
    const conn: Conn = { socket };
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => this.onLocalClose(conn));
    this.clearIdle();
    const session = this.session;
    if (session && !session.isEnded && this.waiting.length === 0 && session.canOpenConnection) {
      this.attach(session, conn);
      return;
    }
    socket.pause();
    this.waiting.push(conn);
    if (!session || session.isEnded) {
      void this.ensureSession().catch(() => {});
    }
  }

  /** Opens the session once; concurrent callers share the same attempt. */
  ensureSession(): Promise<ClientSession> {
    if (this.session && !this.session.isEnded) return Promise.resolve(this.session);
    if (this.opening) return this.opening;
    this.state = 'connecting';
    this.opening = this.openSession().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async openSession(): Promise<ClientSession> {
    const c = this.config;
    try {
      const aws = this.deps.gateway({
        profile: c.profile,
        region: c.region,
        endpoint: c.endpoint,
        ...(this.deps.awsCallTimeoutMs !== undefined && { callTimeoutMs: this.deps.awsCallTimeoutMs }),
      });
      // The WebSocket library loads while StartSession is on the wire, not after it.
      void Transport.preload().catch(() => {});
      const t0 = performance.now();
      const target = await this.resolveTarget(aws);
      const targetMs = performance.now() - t0;
      this.counters.sessions++;
      const session = await ClientSession.start({
        aws,
        target,
        documentName: c.documentName,
        parameters: c.parameters,
        logger: this.log,
        ...this.deps.session,
        handlers: {
          data: (id, data) => this.onRemoteData(id, data),
          remoteClosed: (id) => this.onRemoteClosed(id),
          connectToPortError: () =>
            this.setError(
              new TunnelError(
                'CONNECT_TO_PORT_ERROR',
                `the agent could not connect to ${this.remote()}`,
                'check the database is up and the bastion can reach it (security groups)',
              ),
            ),
          drain: () => this.resumeLocalReads(),
          slotFree: () => this.serveWaiting(),
          reconnecting: () => {
            this.state = 'reconnecting';
          },
          reconnected: () => {
            this.counters.reconnects++;
            this.state = 'open';
          },
          closed: (err) => this.onSessionClosed(session, err),
        },
      });
      if (this.stopped) {
        await session.terminate();
        throw new TunnelError('TUNNEL_STOPPED', 'tunnel stopped while opening');
      }
      this.session = session;
      this.state = 'open';
      this.openedAt = new Date().toISOString();
      const ms = (v: number) => Math.round(v * 10) / 10;
      const o = session.openTimings;
      this.lastOpen = {
        targetMs: ms(targetMs),
        startSessionMs: ms(o.startSessionMs),
        connectMs: ms(o.connectMs),
        handshakeMs: ms(o.handshakeMs),
        totalMs: ms(performance.now() - t0),
        preconnected: o.preconnected ?? false,
        at: this.openedAt,
      };
      this.log.info({ sessionId: session.sessionId, mode: session.info.mode, target }, 'session open');
      this.serveWaiting();
      this.armIdle();
      return session;
    } catch (e) {
      const err = e instanceof TunnelError ? e : new TunnelError('AWS_ERROR', (e as Error).message);
      this.setError(err);
      this.state = this.stopped ? 'stopped' : 'error';
      // Waiting clients get a prompt reset rather than a hang; the next connection retries.
      for (const conn of this.waiting) resetSocket(conn.socket);
      this.waiting = [];
      this.scheduleEagerReopen();
      throw err;
    }
  }

  private async resolveTarget(aws: SsmGateway): Promise<string> {
    const t = this.config.target;
    if (t.kind === 'instance') return t.instanceId;
    const ids = await aws.findInstancesByTag(t.key, t.value);
    if (ids.length === 0) {
      throw new TunnelError(
        'TARGET_NOT_FOUND',
        `no online managed instance has tag ${t.key}=${t.value}`,
        'check the tag, the region, and that the instance is running with its SSM agent online',
      );
    }
    // Prefer the instance we used before, so the same bastion serves a tunnel while it stays online.
    this.resolvedTarget =
      this.resolvedTarget && ids.includes(this.resolvedTarget) ? this.resolvedTarget : ids.sort()[0];
    return this.resolvedTarget;
  }

  private serveWaiting(): void {
    const session = this.session;
    while (session && !session.isEnded && this.waiting.length > 0 && session.canOpenConnection) {
      const conn = this.waiting.shift()!;
      if (conn.socket.destroyed) continue;
      this.attach(session, conn);
    }
  }

  private attach(session: ClientSession, conn: Conn): void {
    const id = session.openConnection();
    conn.id = id;
    this.byId.set(id, conn);
    const socket = conn.socket;
    socket.on('data', (data: Buffer) => {
      this.counters.toRemote += data.length;
      session.write(id, data);
      if (!session.writable) this.pauseLocalReads();
    });
    socket.on('end', () => this.onLocalClose(conn));
    if (session.writable) socket.resume();
  }

  private pauseLocalReads(): void {
    for (const c of this.byId.values()) c.socket.pause();
  }

  private resumeLocalReads(): void {
    for (const c of this.byId.values()) if (!c.socket.destroyed) c.socket.resume();
  }

  /** Always taken (and so acknowledged); a reader too far behind is reset alone (local-conn.ts). */
  private onRemoteData(id: number, data: Buffer): void {
    const conn = this.byId.get(id);
    if (!conn) return;
    this.counters.fromRemote += data.length;
    writeBatched(conn.socket, data);
    const queued = queuedBytes(conn);
    if (queued > this.maxBuffer) this.resetSlowReader(conn);
    else if (queued > TOTAL_CHECK_FROM) this.checkTotalBuffer();
  }

  /**
   * Many slow readers each under max_buffer could still add up: past the tunnel-wide cap the one
   * furthest behind is reset. Summed only while this reader lags by more than TOTAL_CHECK_FROM.
   */
  private checkTotalBuffer(): void {
    let total = 0;
    let worst: Conn | undefined;
    for (const c of this.byId.values()) {
      const q = queuedBytes(c);
      total += q;
      if (!worst || q > queuedBytes(worst)) worst = c;
    }
    if (total > this.maxTotalBuffer && worst) this.resetSlowReader(worst);
  }

  private resetSlowReader(conn: Conn): void {
    const id = conn.id;
    if (id === undefined) return;
    const queued = queuedBytes(conn);
    conn.id = undefined;
    this.byId.delete(id);
    this.counters.reset++;
    resetSocket(conn.socket);
    const session = this.session;
    if (session && !session.isEnded) {
      session.closeConnection(id);
      this.retireIfBasic(session);
    }
    this.resetLog.warn(
      { conn: id, queuedBytes: queued, maxBufferBytes: this.maxBuffer, reset: this.counters.reset },
      'reset a connection whose reader fell behind by more than max_buffer; the others carry on',
    );
    this.afterConnectionGone();
  }

  private onRemoteClosed(id: number): void {
    const conn = this.byId.get(id);
    if (!conn) return;
    this.byId.delete(id);
    conn.id = undefined;
    conn.socket.end();
    this.afterConnectionGone();
  }

  private onLocalClose(conn: Conn): void {
    const waitingIdx = this.waiting.indexOf(conn);
    if (waitingIdx >= 0) this.waiting.splice(waitingIdx, 1);
    if (conn.id !== undefined) {
      const id = conn.id;
      conn.id = undefined;
      this.byId.delete(id);
      if (!conn.socket.destroyed) conn.socket.destroy();
      const session = this.session;
      if (session && !session.isEnded) {
        session.closeConnection(id);
        this.retireIfBasic(session);
      }
    }
    this.afterConnectionGone();
  }

  /**
   * Basic mode carries raw bytes with no connection id, and no message tells the previous
   * connection's late output from the next one's (protocol/basic-gate.ts can only wait for quiet,
   * which a loaded machine can outlast). So a basic-mode session carries one connection and is then
   * terminated; the next connection gets a fresh session, and nothing of the old one can reach it.
   */
  private retireIfBasic(session: ClientSession): void {
    if (this.session !== session || session.info?.mode !== 'basic') return;
    this.session = undefined;
    this.counters.retransmissions += session.stats().channel.retransmissions;
    this.state = this.stopped ? 'stopped' : 'listening';
    const ending = session.terminate().catch(() => {});
    this.retiring.add(ending);
    void ending.finally(() => this.retiring.delete(ending));
  }

  private afterConnectionGone(): void {
    this.serveWaiting();
    if (!this.stopped && (!this.session || this.session.isEnded)) {
      if (this.waiting.length > 0) void this.ensureSession().catch(() => {});
      else this.scheduleEagerReopen();
    }
    this.armIdle();
  }

  private armIdle(): void {
    if (this.byId.size > 0 || this.waiting.length > 0 || !this.session || this.idleTimer) return;
    const ms = this.config.idleTimeoutMs;
    if (ms <= 0 || !this.config.lazy) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.byId.size === 0 && this.waiting.length === 0 && this.session) {
        this.log.info({ idleMs: ms }, 'idle: terminating session');
        void this.closeSession();
      }
    }, ms);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private onSessionClosed(session: ClientSession, err: TunnelError | undefined): void {
    if (this.session !== session) return;
    this.session = undefined;
    this.counters.retransmissions += session.stats().channel.retransmissions;
    const hadConnections = this.byId.size > 0;
    this.clearIdle();
    // Connections on a dead session cannot be saved: reset them so clients notice at once, and can
    // tell the cut-off from a complete transfer (a FIN would look like a clean end).
    for (const conn of this.byId.values()) {
      conn.id = undefined;
      if (err) resetSocket(conn.socket);
      else conn.socket.destroy();
    }
    this.byId.clear();
    if (err) this.setError(err);
    // The service ending an idle session (channel_closed with nobody connected) is routine: the tunnel
    // is simply listening again; lastError still says what happened.
    const routine = err?.code === 'SESSION_CLOSED' && !hadConnections;
    this.state = this.stopped ? 'stopped' : err && !routine ? 'error' : 'listening';
    if (this.stopped) return;
    if (this.waiting.length > 0) void this.ensureSession().catch(() => {});
    else this.scheduleEagerReopen();
  }

  private scheduleEagerReopen(): void {
    if (this.config.lazy || this.stopped || this.reopenTimer) return;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      if (!this.stopped) void this.ensureSession().catch(() => {});
    }, EAGER_REOPEN_MS);
    this.reopenTimer.unref();
  }

  private setError(err: TunnelError): void {
    this.lastError = { code: err.code, message: err.message, fix: err.fix, at: new Date().toISOString() };
    this.log.warn({ code: err.code, fix: err.fix }, err.message);
    this.deps.observer?.error(this.config.name, this.lastError);
  }

  /** Opens the session now (API "open"). */
  async open(): Promise<void> {
    if (this.stopped) throw new TunnelError('TUNNEL_STOPPED', 'tunnel is stopped');
    await this.ensureSession();
  }

  /** Terminates the session but keeps listening (API "close", idle timeout). */
  async closeSession(): Promise<void> {
    await this.session?.terminate();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearIdle();
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    // server.close() waits for open connections, so it must not be awaited before they are closed.
    const closing = this.closeServers();
    for (const conn of this.waiting) conn.socket.destroy();
    this.waiting = [];
    await this.closeSession();
    await Promise.all(this.retiring);
    if (this.opening) await this.opening.catch(() => {});
    for (const conn of this.byId.values()) conn.socket.destroy();
    this.byId.clear();
    await closing;
    this.state = 'stopped';
  }

  private async closeServers(): Promise<void> {
    await closeAll(this.servers);
    this.servers = [];
    this.listening = [];
  }

  private remote(): string {
    return remoteOf(this.config);
  }

  status(): TunnelStatus {
    return buildStatus({
      config: this.config,
      state: this.state,
      session: this.session && !this.session.isEnded ? this.session : undefined,
      listening: this.listening,
      resolvedTarget: this.resolvedTarget,
      connections: this.byId.size,
      waiting: this.waiting.length,
      counters: this.counters,
      openedAt: this.openedAt,
      lastOpen: this.lastOpen,
      lastError: this.lastError,
      listenRetry: this.listenRetry,
      logins: this.iam?.stats,
    });
  }
}
