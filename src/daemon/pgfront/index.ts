/** The PostgreSQL login front of `auth = "iam"` tunnels. */
export { PgFrontError, toErrorResponse } from './errors.js';
export { allowedUsersOf, handlePgClient, type PgClientOutcome, type PgFrontOptions } from './front.js';
export { peerUid, refuseOtherUsers } from './peer-uid.js';
export {
  createPgFrontStats,
  LOGIN_FAILURE_REASONS,
  type LoginFailureReason,
  type PgFrontStats,
} from './stats.js';
