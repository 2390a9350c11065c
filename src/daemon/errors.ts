/** Errors a tunnel can show its user. `code` is stable (the API and CLI key on it); `fix` says what to do. */
export type TunnelErrorCode =
  | 'CREDENTIALS_MISSING'
  | 'CREDENTIALS_EXPIRED'
  | 'SSO_LOGIN_REQUIRED'
  | 'ACCESS_DENIED'
  | 'TARGET_NOT_CONNECTED'
  | 'TARGET_NOT_FOUND'
  | 'INVALID_DOCUMENT'
  | 'THROTTLED'
  | 'AWS_ERROR'
  | 'AWS_TIMEOUT'
  | 'TOO_MANY_CONNECTIONS'
  | 'INSECURE_STREAM_URL'
  | 'WEBSOCKET_FAILED'
  | 'HANDSHAKE_FAILED'
  | 'HANDSHAKE_TIMEOUT'
  | 'CONNECT_TO_PORT_ERROR'
  | 'SESSION_CLOSED'
  | 'SESSION_TIMED_OUT'
  | 'RESUME_FAILED'
  | 'RESEND_TIMEOUT'
  | 'PROTOCOL_ERROR'
  | 'LISTEN_FAILED'
  | 'TUNNEL_STOPPED'
  | 'TUNNEL_NOT_FOUND'
  | 'DB_USER_MISSING'
  | 'REMOTE_HOST_MISSING'
  | 'TOKEN_FAILED'
  | 'TUNNEL_EXISTS'
  | 'TUNNEL_FROM_CONFIG'
  | 'CREDENTIALS_INVALID'
  | 'ENDPOINT_UNREACHABLE';

export class TunnelError extends Error {
  readonly code: TunnelErrorCode;
  readonly fix?: string;
  constructor(code: TunnelErrorCode, message: string, fix?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TunnelError';
    this.code = code;
    this.fix = fix;
  }
}
