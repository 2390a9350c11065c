/**
 * What a simulated agent is told (SimAgentOptions), what it reports (SimAgentStats), and the few
 * timings the real amazon-ssm-agent has that callers may want to name (SPEC 8.4, 3.5, 13). The other
 * files in this folder take these from here; src/sim/agent.ts re-exports the public ones.
 */

import type { Logger } from 'pino';
import type { DataChannelStats } from '../../protocol/data-channel.js';

/**
 * The simulator's own name table, standing in for the VPC's DNS: maps a simulated endpoint's name and
 * port (e.g. an RDS host name, 5432) to the loopback address it really listens on.
 */
export type DestinationResolver = (host: string, port: number) => { host: string; port: number } | undefined;

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

export type AgentCounters = Omit<SimAgentStats, 'mode' | 'clientVersion' | 'violations' | 'dataChannel'>;

/** How a session ends (see SimAgent.finish): after a 2 s drain, with a close frame, or by dropping TCP. */
export type EndHow = 'drain' | 'close' | 'terminate';

/** What the parts of one agent share: its options, logger, random source, counters and its end. */
export interface AgentContext {
  readonly opts: SimAgentOptions;
  readonly log: Logger;
  readonly rand: () => number;
  readonly counters: AgentCounters;
  isEnding(): boolean;
  finish(reason: string, how: EndHow): void;
}
