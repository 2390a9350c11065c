/** The simulator's SSM API; see api.ts for the map of this folder. */
export type { SigV4ErrorCode, SigV4Options, SigV4Request, SigV4Result, SimCredential } from '../sigv4.js';
export { verifySigV4 } from '../sigv4.js';
export { type ApiCall, type InjectableError, MAX_BODY_BYTES, SsmApi, type SsmApiOptions } from './api.js';
export { SsmApiError } from './input.js';
