/** What a tunnel shows the API and the CLI: its state and counters, built from the tunnel's parts. */
import type { TunnelConfig } from './config.js';
import type { PgFrontStats } from './pgfront/index.js';
import type { ClientSession } from './session.js';

export type TunnelState =
  | 'listening'
  | 'connecting'
  | 'open'
  | 'degraded'
  | 'reconnecting'
  | 'error'
  | 'stopped';

export interface PoolMemberStatus {
  member: number;
  state: TunnelState;
  sessionId?: string;
  mode?: 'mux' | 'basic';
  connections: number;
  waiting: number;
}

export interface TunnelStatus {
  name: string;
  state: TunnelState;
  localPort: number;
  bind: string[];
  listening: string[];
  remote: string;
  target: string;
  resolvedTarget?: string;
  sessionId?: string;
  mode?: 'mux' | 'basic';
  agentVersion?: string;
  /** Basic mode carries one connection at a time; the rest wait. */
  note?: string;
  /** Why the state is `degraded`. */
  degradedReason?: string;
  /** Connections reset because their reader fell more than maxBufferBytes behind. */
  connectionsReset: number;
  /** Connections refused at max_connections. */
  connectionsRefused: number;
  connections: number;
  waiting: number;
  totalConnections: number;
  bytesToRemote: number;
  bytesFromRemote: number;
  rttMs?: number;
  retransmissions: number;
  reconnects: number;
  sessionsStarted: number;
  openedAt?: string;
  /**
   * The last session open, step by step (ms): finding the target by tag, StartSession, the
   * WebSocket (signature, upgrade, OpenDataChannel), the handshake; total is all of them.
   */
  lastOpen?: {
    targetMs: number;
    startSessionMs: number;
    connectMs: number;
    handshakeMs: number;
    totalMs: number;
    /** The upgrade used a connection made while StartSession was on the wire (preconnect.ts). */
    preconnected: boolean;
    at: string;
  };
  lastError?: { code: string; message: string; fix?: string; at: string };
  /** Set by the manager while a busy port is retried with back-off. */
  listenRetry?: { attempt: number; nextAt: string };
  /** `auth = "iam"`: logins through the PostgreSQL front, failures by reason, cancels. */
  logins?: PgFrontStats;
  /** `sessions = N` > 1: the pool's members, each with its session and connections. */
  sessions?: PoolMemberStatus[];
  poolSize?: number;
}

export interface StatusInput {
  config: TunnelConfig;
  state: TunnelState;
  session: ClientSession | undefined;
  listening: string[];
  resolvedTarget?: string;
  connections: number;
  waiting: number;
  counters: {
    total: number;
    toRemote: number;
    fromRemote: number;
    sessions: number;
    reconnects: number;
    retransmissions: number;
    reset: number;
    refused: number;
  };
  openedAt?: string;
  lastOpen?: TunnelStatus['lastOpen'];
  lastError?: TunnelStatus['lastError'];
  listenRetry?: TunnelStatus['listenRetry'];
  logins?: PgFrontStats;
}

export function remoteOf(c: TunnelConfig): string {
  return `${c.remoteHost ?? 'the bastion'}:${c.remotePort}`;
}

export function buildStatus(i: StatusInput): TunnelStatus {
  const c = i.config;
  const live = i.session;
  const s = live?.stats();
  const basic = s?.mode === 'basic';
  // Degraded only applies to an open session: reconnecting and error say more already.
  const health = live && i.state === 'open' ? live.health() : undefined;
  return {
    name: c.name,
    state: health?.degraded ? 'degraded' : i.state,
    ...(health?.degraded && { degradedReason: health.reason }),
    localPort: c.localPort,
    bind: c.bind,
    listening: i.listening,
    remote: remoteOf(c),
    target: c.target.kind === 'instance' ? c.target.instanceId : `tag:${c.target.key}=${c.target.value}`,
    resolvedTarget: i.resolvedTarget,
    sessionId: s?.sessionId,
    mode: s?.mode,
    agentVersion: s?.agentVersion,
    note: basic
      ? live?.basicDraining
        ? "basic mode (old SSM agent): one connection at a time; the last one's output is draining"
        : 'basic mode (old SSM agent): one connection at a time, others wait'
      : undefined,
    connectionsReset: i.counters.reset,
    connectionsRefused: i.counters.refused,
    connections: i.connections,
    waiting: i.waiting,
    totalConnections: i.counters.total,
    bytesToRemote: i.counters.toRemote,
    bytesFromRemote: i.counters.fromRemote,
    rttMs: s ? Math.round(s.channel.srttMs * 100) / 100 : undefined,
    retransmissions: i.counters.retransmissions + (s?.channel.retransmissions ?? 0),
    reconnects: i.counters.reconnects,
    sessionsStarted: i.counters.sessions,
    openedAt: s ? i.openedAt : undefined,
    ...(i.lastOpen && { lastOpen: i.lastOpen }),
    lastError: i.lastError,
    listenRetry: i.listenRetry,
    ...(i.logins && { logins: i.logins }),
  };
}
