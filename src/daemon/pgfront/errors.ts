/**
 * Why a client could not be signed in, as a typed error the front turns into a PostgreSQL
 * ErrorResponse: SQLSTATE, a message prefixed `ssmtun:` (so every client shows where it came from)
 * and the fix as HINT.
 */

import { errorResponse } from '../../shared/pg-wire.js';
import { TunnelError } from '../errors.js';
import type { LoginFailureReason } from './stats.js';

/** 28000 invalid_authorization_specification, 08001 unable to connect, 08006 connection failure, 08P01/0A000 protocol. */
export type PgFrontSqlState = '28000' | '28P01' | '08001' | '08006' | '08P01' | '0A000';

export class PgFrontError extends Error {
  /** Stable: PGFRONT_ plus the reason, e.g. PGFRONT_USER_NOT_ALLOWED. */
  readonly code: string;
  constructor(
    readonly reason: LoginFailureReason,
    readonly sqlstate: PgFrontSqlState,
    message: string,
    readonly fix?: string,
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PgFrontError';
    this.code = `PGFRONT_${reason.toUpperCase().replace(/-/g, '_')}`;
  }
}

export function toErrorResponse(e: PgFrontError): Buffer {
  return errorResponse({
    severity: 'FATAL',
    code: e.sqlstate,
    message: `ssmtun: ${e.message}`,
    ...(e.detail !== undefined && { detail: e.detail }),
    ...(e.fix !== undefined && { hint: e.fix }),
  });
}

/** Tunnel errors that mean "who you are" rather than "where you go". */
const IDENTITY_CODES = new Set<string>([
  'CREDENTIALS_MISSING',
  'CREDENTIALS_EXPIRED',
  'CREDENTIALS_INVALID',
  'SSO_LOGIN_REQUIRED',
  'ACCESS_DENIED',
  'DB_USER_MISSING',
  'REMOTE_HOST_MISSING',
  'TOKEN_FAILED',
]);

/** A failure of token() (stage token) or of openUpstream() (stage upstream) as the client should see it. */
export function fromFailure(err: unknown, stage: 'token' | 'upstream', what: string): PgFrontError {
  if (err instanceof PgFrontError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof TunnelError) {
    const identity = IDENTITY_CODES.has(err.code);
    return new PgFrontError(
      stage === 'token' ? 'token' : 'upstream',
      identity || stage === 'token' ? '28000' : '08001',
      `${what}: ${message}`,
      err.fix,
      `ssmtun error code ${err.code}`,
      { cause: err },
    );
  }
  return new PgFrontError(
    stage === 'token' ? 'token' : 'upstream',
    stage === 'token' ? '28000' : '08001',
    `${what}: ${message}`,
    stage === 'token'
      ? 'check the AWS credentials of the tunnel (ssmtun status shows its errors)'
      : 'check the tunnel with ssmtun status; it shows why the session could not start',
    undefined,
    { cause: err },
  );
}
