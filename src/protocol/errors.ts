/**
 * Typed protocol errors. Every error carries a stable `code` so callers (the daemon, the API, the
 * simulator) can react without parsing messages.
 */
export type ProtocolErrorCode =
  | 'FRAME_TRUNCATED'
  | 'BAD_HEADER_LENGTH'
  | 'EMPTY_MESSAGE_TYPE'
  | 'ZERO_CREATED_DATE'
  | 'DIGEST_MISMATCH'
  | 'PAYLOAD_LENGTH_MISMATCH'
  | 'BAD_MESSAGE_ID'
  | 'BAD_PAYLOAD'
  | 'HANDSHAKE_FAILED'
  | 'HANDSHAKE_TIMEOUT'
  | 'RESEND_TIMEOUT'
  | 'SMUX_PROTOCOL'
  | 'SMUX_KEEPALIVE_TIMEOUT'
  | 'SMUX_STREAM_IDS_EXHAUSTED'
  | 'CHANNEL_CLOSED'
  | 'UNSUPPORTED_SESSION';

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}
