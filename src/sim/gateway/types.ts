/**
 * The gateway's vocabulary (SPEC 3.2, 11.4, 15): its options, the statistics it keeps per session, the
 * close codes and termination reasons it uses, and what it needs from a simulated agent. The
 * behaviour is in the other files of this folder; src/sim/gateway.ts re-exports the public names.
 */

import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { SimAgentOptions } from '../agent/index.js';
import type { FaultInjector, FaultSide } from '../faults.js';
import type { SessionRegistry, SimSession } from '../sessions.js';
import type { SimCredential } from '../sigv4.js';
import type { Wan } from './wan.js';

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
/** What the gateway needs from a simulated agent (src/sim/agent/session.ts's SimAgent fits). */
export interface AgentHandle {
  start(): Promise<void>;
  stop(reason?: string): void;
  stats(): unknown;
  readonly ended: boolean;
  on(event: 'ended', listener: (reason: string) => void): unknown;
}

/** The agent options a simulator user may set per instance (and the /_sim control API accepts). */
export const AGENT_TUNING_KEYS = [
  'pacing',
  'handshakeTimeoutMs',
  'completeBeforeAck',
  'reackDuplicates',
  'emulate',
  'seed',
  'pingIntervalMs',
] as const;

export type AgentTuning = Partial<Pick<SimAgentOptions, (typeof AGENT_TUNING_KEYS)[number]>>;

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
  /** The client's link to AWS (wan.ts); shared with the SSM API so both read the same settings. */
  wan?: Wan;
  /**
   * Whether an upgrade came over the client's WAN (the public endpoint) rather than from an agent
   * inside AWS; default: every upgrade does.
   */
  viaWan?: (req: IncomingMessage) => boolean;
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
