/**
 * The simulated agent (one per session), split by the concern each file follows in the SPEC:
 * session.ts (life of the session, SPEC 11), handshake.ts (SPEC 8), connection.ts (token and WebSocket,
 * SPEC 3, 11.2, 16), channel.ts (the data channel's agent-side policy and pacing, SPEC 7, 10.8),
 * mux.ts / basic.ts (port forwarding, SPEC 10.3 / 10.5), destinations.ts (dialling and name
 * resolution, SPEC 10.3.3, 10.4), quirks.ts (emulated agent bugs and rules, SPEC 16), checks.ts
 * (SPEC 12.6 checks on the client's messages).
 */
export {
  AGENT_HANDSHAKE_TIMEOUT_MS,
  AGENT_PING_INTERVAL_MS,
  AGENT_PONG_TIMEOUT_MS,
  type DestinationResolver,
  HANDSHAKE_TIMEOUT_REASON,
  type SimAgentEvents,
  type SimAgentOptions,
  type SimAgentStats,
} from './options.js';
export { SimAgent } from './session.js';
