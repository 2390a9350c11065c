/**
 * Verifies an RDS IAM authentication token the way RDS does. A token is a SigV4 presigned URL without
 * its scheme (`host:port/?Action=connect&DBUser=...&X-Amz-...&X-Amz-Signature=...`, built by
 * @aws-sdk/rds-signer); RDS accepts it as the cleartext password only if it was signed for exactly
 * this endpoint, user and region, with a known key, and has not expired. The signature is checked by
 * re-signing the same request with the SDK's own signer and the simulator's secret key, so nothing
 * here trusts a string produced by the code under test.
 */
import { timingSafeEqual } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { SimCredential } from './sigv4.js';

export interface RdsTokenEndpoint {
  /** The RDS DNS name clients sign for, e.g. orders.cluster-c0ffee.us-east-1.rds.amazonaws.com. */
  host: string;
  /** The advertised port (5432), not the simulator's loopback port. */
  port: number;
  region: string;
}

export interface RdsTokenCheck {
  token: string;
  /** The user of the StartupMessage. */
  user: string;
  endpoint: RdsTokenEndpoint;
  credentials: readonly SimCredential[];
  /** Epoch ms; default Date.now(). */
  now?: number;
}

export type RdsTokenRefusal =
  | 'malformed'
  | 'wrong-host'
  | 'wrong-port'
  | 'wrong-user'
  | 'wrong-region'
  | 'unknown-key'
  | 'expired'
  | 'future'
  | 'bad-signature';

export type RdsTokenResult =
  | { ok: true; accessKeyId: string /** Epoch ms. */; expiresAt: number }
  | { ok: false; reason: RdsTokenRefusal; detail: string };

export const RDS_SERVICE = 'rds-db';
/** The longest lifetime RDS accepts for an auth token (15 minutes). */
export const MAX_TOKEN_EXPIRES_S = 900;
/** Tokens dated further ahead than this are refused (clock skew allowance). */
export const MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;

const ALGORITHM = 'AWS4-HMAC-SHA256';
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const AUTHORITY_RE = /^([A-Za-z0-9.-]+):(\d{1,5})$/;
const KNOWN_PARAMS = new Set([
  'Action',
  'DBUser',
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Security-Token',
  'X-Amz-Signature',
]);

function refuse(reason: RdsTokenRefusal, detail: string): RdsTokenResult {
  return { ok: false, reason, detail };
}

function parseAmzDate(s: string): number | undefined {
  const m = AMZ_DATE_RE.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se] = m.map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  // Rejects 20261332T... style dates that Date.UTC would roll over.
  return new Date(t).toISOString().replace(/[-:]|\.\d{3}/g, '') === s ? t : undefined;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function parseQuery(q: string): Map<string, string> | string {
  const out = new Map<string, string>();
  for (const part of q.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return `query part ${JSON.stringify(part.slice(0, 40))} is not name=value`;
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(part.slice(0, eq));
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      return 'the query is not valid percent-encoding';
    }
    if (!KNOWN_PARAMS.has(name)) return `unexpected query parameter ${JSON.stringify(name.slice(0, 40))}`;
    if (out.has(name)) return `query parameter ${name} appears twice`;
    out.set(name, value);
  }
  return out;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function verifyRdsToken(check: RdsTokenCheck): Promise<RdsTokenResult> {
  const { token, endpoint } = check;
  const now = check.now ?? Date.now();
  const slash = token.indexOf('/');
  if (slash < 0 || token[slash + 1] !== '?') {
    return refuse('malformed', 'not an IAM auth token (expected host:port/?Action=connect&...)');
  }
  const authority = AUTHORITY_RE.exec(token.slice(0, slash));
  if (!authority) return refuse('malformed', 'the token does not start with host:port');
  const host = authority[1];
  const port = Number(authority[2]);
  const query = parseQuery(token.slice(slash + 2));
  if (typeof query === 'string') return refuse('malformed', query);
  for (const name of KNOWN_PARAMS) {
    if (name !== 'X-Amz-Security-Token' && !query.has(name)) return refuse('malformed', `${name} is missing`);
  }
  const param = (name: string) => query.get(name) as string;
  if (param('Action') !== 'connect')
    return refuse('malformed', `Action must be connect, not ${param('Action')}`);
  if (param('X-Amz-Algorithm') !== ALGORITHM)
    return refuse('malformed', `X-Amz-Algorithm must be ${ALGORITHM}`);
  if (param('X-Amz-SignedHeaders') !== 'host') return refuse('malformed', 'X-Amz-SignedHeaders must be host');
  const signature = param('X-Amz-Signature');
  if (!/^[0-9a-f]{64}$/.test(signature)) return refuse('malformed', 'X-Amz-Signature is not 64 hex digits');
  const amzDate = param('X-Amz-Date');
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined) return refuse('malformed', `X-Amz-Date ${amzDate} is not YYYYMMDDTHHMMSSZ`);
  const expiresText = param('X-Amz-Expires');
  const expiresS = /^\d{1,6}$/.test(expiresText) ? Number(expiresText) : Number.NaN;
  if (!(expiresS >= 1 && expiresS <= MAX_TOKEN_EXPIRES_S)) {
    return refuse(
      'malformed',
      `X-Amz-Expires must be 1 to ${MAX_TOKEN_EXPIRES_S} seconds, not ${expiresText}`,
    );
  }
  const scope = param('X-Amz-Credential').split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request') {
    return refuse('malformed', 'X-Amz-Credential is not AKID/DATE/REGION/SERVICE/aws4_request');
  }
  const [accessKeyId, scopeDate, scopeRegion, scopeService] = scope;
  if (scopeDate !== amzDate.slice(0, 8)) {
    return refuse('malformed', `credential scope date ${scopeDate} does not match X-Amz-Date ${amzDate}`);
  }

  const expected = `${endpoint.host}:${endpoint.port}`;
  if (host.toLowerCase() !== endpoint.host.toLowerCase()) {
    return refuse('wrong-host', `IAM token signed for host ${host}:${port}, not ${expected}`);
  }
  if (port !== endpoint.port)
    return refuse('wrong-port', `IAM token signed for host ${host}:${port}, not ${expected}`);
  const dbUser = param('DBUser');
  if (dbUser !== check.user) {
    return refuse(
      'wrong-user',
      `IAM token signed for DBUser ${JSON.stringify(dbUser)}, not ${JSON.stringify(check.user)}`,
    );
  }
  if (scopeService !== RDS_SERVICE) {
    return refuse('malformed', `IAM token signed for service ${scopeService}, not ${RDS_SERVICE}`);
  }
  if (scopeRegion !== endpoint.region) {
    return refuse('wrong-region', `IAM token signed for region ${scopeRegion}, not ${endpoint.region}`);
  }
  const credential = check.credentials.find((c) => c.accessKeyId === accessKeyId);
  if (!credential) return refuse('unknown-key', `access key ${accessKeyId} is not known to this account`);
  const presentedToken = query.get('X-Amz-Security-Token');
  const tokenMatches =
    credential.sessionToken === undefined
      ? presentedToken === undefined
      : presentedToken !== undefined && sameText(presentedToken, credential.sessionToken);
  if (!tokenMatches)
    return refuse('unknown-key', `the security token for access key ${accessKeyId} is invalid`);
  if (credential.expired)
    return refuse('unknown-key', `the credentials of access key ${accessKeyId} have expired`);

  const expiresAt = signedAt + expiresS * 1000;
  if (now > expiresAt) {
    return refuse(
      'expired',
      `IAM token expired at ${iso(expiresAt)} (signed ${iso(signedAt)}, now ${iso(now)})`,
    );
  }
  if (signedAt > now + MAX_FUTURE_SKEW_MS) {
    return refuse('future', `IAM token dated ${iso(signedAt)}, more than 5 minutes after now (${iso(now)})`);
  }

  // Same request, same signer, same inputs as @aws-sdk/rds-signer: only the secret comes from us.
  const signer = new SignatureV4({
    service: RDS_SERVICE,
    region: endpoint.region,
    credentials: {
      accessKeyId: credential.accessKeyId,
      secretAccessKey: credential.secretAccessKey,
      ...(credential.sessionToken !== undefined ? { sessionToken: credential.sessionToken } : {}),
    },
    sha256: Sha256,
  });
  const request = new HttpRequest({
    method: 'GET',
    protocol: 'https:',
    hostname: host,
    port,
    path: '/',
    query: { Action: 'connect', DBUser: dbUser },
    headers: { host: `${host}:${port}` },
  });
  let resigned: string | undefined;
  try {
    const presigned = await signer.presign(request, { signingDate: new Date(signedAt), expiresIn: expiresS });
    const value = presigned.query?.['X-Amz-Signature'];
    resigned = typeof value === 'string' ? value : undefined;
  } catch {
    resigned = undefined;
  }
  if (!resigned || !sameText(resigned, signature)) {
    return refuse(
      'bad-signature',
      'the IAM token signature does not match (tampered, or signed with another secret key)',
    );
  }
  return { ok: true, accessKeyId: credential.accessKeyId, expiresAt };
}
