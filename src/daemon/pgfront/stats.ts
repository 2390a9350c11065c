/** Counters of one tunnel's PostgreSQL login front, plain numbers the tunnel can expose in status and metrics. */

/** Why a login through the front failed; the keys of `loginFailures`. */
export const LOGIN_FAILURE_REASONS = [
  /** The startup user is not db_user nor in db_users. */
  'user-not-allowed',
  /** The StartupMessage had no user. */
  'no-user',
  /** The client's bytes broke the protocol. */
  'protocol',
  /** The connection came from another OS user (Linux, allow_other_users = false). */
  'other-os-user',
  /** No IAM token (credentials, SSO, signing). */
  'token',
  /** No byte stream to the database (session could not start, stream refused). */
  'upstream',
  /** TLS with the database failed (certificate, name, handshake). */
  'tls',
  /** The database refused the login (e.g. the token), or failed it right after. */
  'server-refused',
  /** The database asked for a password (SCRAM/MD5): the role lacks GRANT rds_iam. */
  'no-rds-iam',
  /** The database asked for an authentication method the front cannot answer. */
  'unsupported-auth',
  /** The login did not finish in time. */
  'timeout',
  /** The client went away before the login finished. */
  'client-closed',
] as const;
export type LoginFailureReason = (typeof LOGIN_FAILURE_REASONS)[number];

export interface PgFrontStats {
  /** Logins that reached ReadyForQuery. */
  logins: number;
  loginFailures: Record<LoginFailureReason, number>;
  /** CancelRequests received (forwarded or not). */
  cancels: number;
  /** CancelRequests that could not be passed on to the database. */
  cancelFailures: number;
}

export function createPgFrontStats(): PgFrontStats {
  const loginFailures = Object.fromEntries(LOGIN_FAILURE_REASONS.map((r) => [r, 0])) as Record<
    LoginFailureReason,
    number
  >;
  return { logins: 0, loginFailures, cancels: 0, cancelFailures: 0 };
}
