/** The simulated message gateway; see gateway.ts for the map of this folder. */
export { Gateway } from './gateway.js';
export { channelClosedOutput } from './lifecycle.js';
export {
  AGENT_TUNING_KEYS,
  type AgentConfig,
  type AgentHandle,
  type AgentTuning,
  CloseCode,
  DEFAULT_AGENT_GRACE_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_QUEUED_FRAMES,
  DEFAULT_OPEN_TIMEOUT_MS,
  type GatewayOptions,
  type GatewayRefusal,
  type GatewaySessionStats,
  type GatewayViolation,
  MAX_FRAME_BYTES,
  TerminateReason,
} from './types.js';
export {
  validateWan,
  Wan,
  type WanOptions,
  type WanSettings,
  WanSpecError,
  wanFront,
} from './wan.js';
