/**
 * `sessions = N`: one tunnel, up to N SSM sessions. The agent reads its side in 1024-byte chunks with
 * a 1 ms sleep after each (SPEC 16), so one session never moves more than ~1 MB/s towards the client,
 * and every connection of the session shares that one reader; more speed takes more sessions.
 *
 * The pool owns the listener and N member tunnels (tunnel.ts with `pooled`: no listener of their own),
 * each with its own session, idle timer, basic-mode handling and failures. A connection goes to the
 * member with a live session and the fewest connections; once every live session carries one, the next
 * connection opens another member's session (lazily, up to N). A member that loses its session fails
 * only its own connections; the next connection that lands on it opens a replacement.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { TunnelConfig } from './config.js';
import { closeAll, listenAll } from './listeners.js';
import { Tunnel, type TunnelDeps, type TunnelState, type TunnelStatus } from './tunnel.js';
import type { PoolMemberStatus } from './tunnel-status.js';

/** What the manager needs of a tunnel, pooled or not. */
export type TunnelLike = Pick<Tunnel, 'config' | 'start' | 'stop' | 'status' | 'open' | 'closeSession'> & {
  listenRetry: TunnelStatus['listenRetry'];
};

/** A plain tunnel for `sessions = 1` (exactly as before pools), a pool above. */
export function createTunnel(config: TunnelConfig, deps: TunnelDeps): TunnelLike {
  return (config.sessions ?? 1) > 1 ? new TunnelPool(config, deps) : new Tunnel(config, deps);
}

/** Order of preference when the members' states are folded into the tunnel's one state. */
const STATE_RANK: TunnelState[] = [
  'open',
  'degraded',
  'reconnecting',
  'connecting',
  'error',
  'listening',
  'stopped',
];

export class TunnelPool implements TunnelLike {
  readonly config: TunnelConfig;
  listenRetry: TunnelStatus['listenRetry'];
  private readonly log: Logger;
  private readonly members: Tunnel[] = [];
  private servers: net.Server[] = [];
  private listening: string[] = [];
  private listenError: TunnelStatus['lastError'];
  private lastState: TunnelState = 'listening';
  private stopped = false;

  constructor(
    config: TunnelConfig,
    private readonly deps: TunnelDeps,
  ) {
    this.config = config;
    this.log = deps.logger.child({ tunnel: config.name });
    this.addMember();
  }

  get size(): number {
    return this.config.sessions ?? 1;
  }

  private addMember(): Tunnel {
    const index = this.members.length;
    const observer = this.deps.observer;
    const member = new Tunnel(this.config, {
      ...this.deps,
      logger: this.deps.logger.child({ member: index }),
      pooled: true,
      // Members report to the pool; the pool reports the tunnel's folded state once.
      observer: {
        state: () => this.foldState(),
        error: (name, e) => observer?.error(name, e),
      },
    });
    this.members.push(member);
    return member;
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    const bound = await listenAll(this.config, (socket) => this.onConnection(socket), this.log);
    this.servers = bound.servers;
    this.listening = bound.listening;
    if (bound.error) {
      this.listenError = {
        code: bound.error.code,
        message: bound.error.message,
        fix: bound.error.fix,
        at: new Date().toISOString(),
      };
      this.log.warn({ code: bound.error.code, fix: bound.error.fix }, bound.error.message);
      this.deps.observer?.error(this.config.name, this.listenError);
      this.foldState();
      return;
    }
    this.listenError = undefined;
    await Promise.all(this.members.map((m) => m.start()));
    this.log.info({ port: this.config.localPort, bind: this.listening, sessions: this.size }, 'listening');
    this.foldState();
  }

  /** Least active connections first; a new session only once every live one carries a connection. */
  private pick(): Tunnel {
    const live = this.members.filter((m) => m.hasSession);
    const idleLive = live.find((m) => m.load === 0);
    if (idleLive) return idleLive;
    const spare = this.members.find((m) => !m.hasSession);
    if (spare) return spare;
    if (this.members.length < this.size) return this.addMember();
    return this.members.reduce((a, b) => (b.load < a.load ? b : a));
  }

  private onConnection(socket: net.Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    // A pooled member needs no start(): it has no listener, and opens its session on this connection.
    this.pick().accept(socket);
  }

  private foldState(): void {
    const states =
      this.listening.length === 0 && this.listenError
        ? ['error' as const]
        : this.members.map((m) => m.status().state);
    const next = this.stopped ? 'stopped' : (STATE_RANK.find((s) => states.includes(s)) ?? 'listening');
    const previous = this.lastState;
    this.lastState = next;
    if (previous !== next) this.deps.observer?.state(this.config.name, next, previous);
  }

  async open(): Promise<void> {
    await this.members[0].open();
  }

  /** API "close" and idle: every member's session ends; the listener stays. */
  async closeSession(): Promise<void> {
    await Promise.all(this.members.map((m) => m.closeSession()));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const closing = closeAll(this.servers);
    await Promise.all(this.members.map((m) => m.stop()));
    await closing;
    this.servers = [];
    this.listening = [];
    this.foldState();
  }

  status(): TunnelStatus {
    const all = this.members.map((m) => m.status());
    const first = all.find((s) => s.sessionId) ?? all[0];
    const sum = (f: (s: TunnelStatus) => number) => all.reduce((a, s) => a + f(s), 0);
    const errors = all.map((s) => s.lastError).filter((e): e is NonNullable<typeof e> => !!e);
    const lastError = [this.listenError, ...errors]
      .filter((e): e is NonNullable<typeof e> => !!e)
      .sort((a, b) => b.at.localeCompare(a.at))[0];
    const logins = all.map((s) => s.logins).filter((l): l is NonNullable<typeof l> => !!l);
    const lastOpen = all
      .map((s) => s.lastOpen)
      .filter((o): o is NonNullable<typeof o> => !!o)
      .sort((a, b) => b.at.localeCompare(a.at))[0];
    return {
      ...first,
      state: this.lastState,
      listening: this.listening,
      connections: sum((s) => s.connections),
      waiting: sum((s) => s.waiting),
      totalConnections: sum((s) => s.totalConnections),
      bytesToRemote: sum((s) => s.bytesToRemote),
      bytesFromRemote: sum((s) => s.bytesFromRemote),
      retransmissions: sum((s) => s.retransmissions),
      reconnects: sum((s) => s.reconnects),
      sessionsStarted: sum((s) => s.sessionsStarted),
      connectionsReset: sum((s) => s.connectionsReset),
      connectionsRefused: sum((s) => s.connectionsRefused),
      ...(lastOpen && { lastOpen }),
      lastError,
      listenRetry: this.listenRetry,
      ...(logins.length > 0 && { logins: mergeLogins(logins) }),
      sessions: all.map(
        (s, member): PoolMemberStatus => ({
          member,
          state: s.state,
          ...(s.sessionId && { sessionId: s.sessionId }),
          ...(s.mode && { mode: s.mode }),
          connections: s.connections,
          waiting: s.waiting,
        }),
      ),
      poolSize: this.size,
    };
  }
}

function mergeLogins(all: NonNullable<TunnelStatus['logins']>[]): NonNullable<TunnelStatus['logins']> {
  const out = structuredClone(all[0]);
  for (const l of all.slice(1)) {
    out.logins += l.logins;
    out.cancels += l.cancels;
    out.cancelFailures += l.cancelFailures;
    for (const [k, v] of Object.entries(l.loginFailures))
      out.loginFailures[k as keyof typeof out.loginFailures] += v;
  }
  return out;
}
