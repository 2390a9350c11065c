/**
 * Server-side AWS Signature Version 4 verification for the simulator. Rather than carrying a second
 * SigV4 implementation, the request is re-signed with the SDK's own signer using exactly the headers
 * the client claims to have signed and the client's X-Amz-Date, then the signatures are compared.
 * Only the Authorization-header form is supported: the simulator never hands out presigned URLs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

export interface SimCredential {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** The service answers ExpiredTokenException for these. */
  expired?: boolean;
}

export interface SigV4Request {
  method: string;
  /** Path and query as received (origin-form). */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface SigV4Options {
  service: string;
  region: string;
  credentials: readonly SimCredential[];
  /** Server clock in epoch milliseconds. */
  now?: number;
}

export type SigV4ErrorCode =
  | 'MissingAuthenticationToken'
  | 'IncompleteSignatureException'
  | 'UnrecognizedClientException'
  | 'InvalidSignatureException'
  | 'ExpiredTokenException'
  | 'SignatureExpired';

export type SigV4Result =
  | { ok: true; accessKeyId: string }
  | { ok: false; error: SigV4ErrorCode; message: string };

/** AWS refuses requests whose signing time is further than this from its own clock. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

const ALGORITHM = 'AWS4-HMAC-SHA256';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

function fail(error: SigV4ErrorCode, message: string): SigV4Result {
  return { ok: false, error, message };
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  // SigV4 canonicalises repeated headers as a comma-separated list.
  return Array.isArray(v) ? v.join(',') : v;
}

function parseAmzDate(value: string): Date | undefined {
  const m = AMZ_DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number);
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC silently rolls over out-of-range fields (month 13, second 61); AWS would not.
  return date.toISOString().replace(/[-:]|\.\d{3}/g, '') === value ? date : undefined;
}

function formatAmzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '');
}

interface ParsedAuthorization {
  accessKeyId: string;
  scopeDate: string;
  scopeRegion: string;
  scopeService: string;
  scopeTerminator: string;
  signedHeaders: string[];
  signature: string;
}

function parseAuthorization(value: string): ParsedAuthorization | string {
  const trimmed = value.trim();
  if (!trimmed.startsWith(`${ALGORITHM} `)) {
    return `Authorization header requires the ${ALGORITHM} algorithm.`;
  }
  const params = new Map<string, string>();
  for (const part of trimmed.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return `Authorization header component '${part.trim()}' is not a key=value pair.`;
    params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = params.get('Credential');
  const signedHeaders = params.get('SignedHeaders');
  const signature = params.get('Signature');
  if (!credential || !signedHeaders || !signature) {
    return "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.";
  }
  const scope = credential.split('/');
  if (scope.length !== 5 || scope.some((s) => s.length === 0)) {
    return `Credential '${credential}' is not of the form <key>/<date>/<region>/<service>/aws4_request.`;
  }
  if (!/^[0-9a-f]{64}$/.test(signature)) return 'Signature must be 64 lowercase hex digits.';
  const names = signedHeaders.split(';');
  if (names.some((n) => n.length === 0 || n !== n.toLowerCase())) {
    return 'SignedHeaders must be a semicolon-separated list of lowercase header names.';
  }
  const [accessKeyId, scopeDate, scopeRegion, scopeService, scopeTerminator] = scope;
  return {
    accessKeyId,
    scopeDate,
    scopeRegion,
    scopeService,
    scopeTerminator,
    signedHeaders: names,
    signature,
  };
}

/** Query as the client's signer saw it: decoded values, repeated keys as arrays. */
function parseQuery(query: string): Record<string, string | string[]> | undefined {
  const out: Record<string, string | string[]> = Object.create(null);
  if (query.length === 0) return out;
  for (const part of query.split('&')) {
    if (part.length === 0) continue;
    const eq = part.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    } catch {
      return undefined;
    }
    const prev = out[key];
    out[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/**
 * Verifies a SigV4 Authorization header. Used for SSM API calls (service `ssm`, POST with a JSON body)
 * and by the gateway for signed WebSocket upgrades (service `ssmmessages`, GET with an empty body).
 */
export async function verifySigV4(req: SigV4Request, opts: SigV4Options): Promise<SigV4Result> {
  const now = opts.now ?? Date.now();
  const authorization = headerValue(req.headers, 'authorization');
  if (authorization === undefined || authorization.trim() === '') {
    return fail('MissingAuthenticationToken', 'Missing Authentication Token');
  }
  const auth = parseAuthorization(authorization);
  if (typeof auth === 'string') return fail('IncompleteSignatureException', auth);

  const amzDate = headerValue(req.headers, 'x-amz-date');
  if (amzDate === undefined) {
    return fail(
      'IncompleteSignatureException',
      "Authorization header requires existence of an 'X-Amz-Date' header.",
    );
  }
  const signingDate = parseAmzDate(amzDate);
  if (!signingDate) {
    return fail(
      'IncompleteSignatureException',
      `X-Amz-Date '${amzDate}' is not of the form YYYYMMDD'T'HHMMSS'Z'.`,
    );
  }

  const credential = opts.credentials.find((c) => c.accessKeyId === auth.accessKeyId);
  if (!credential) {
    return fail('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
  const presentedToken = headerValue(req.headers, 'x-amz-security-token');
  const tokenMatches =
    credential.sessionToken === undefined
      ? presentedToken === undefined
      : presentedToken !== undefined && safeEqual(presentedToken, credential.sessionToken);
  if (!tokenMatches) {
    return fail('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
  if (credential.expired) {
    return fail('ExpiredTokenException', 'The security token included in the request is expired');
  }

  const signedAt = signingDate.getTime();
  if (signedAt < now - MAX_CLOCK_SKEW_MS) {
    return fail(
      'SignatureExpired',
      `Signature expired: ${amzDate} is now earlier than ${formatAmzDate(now - MAX_CLOCK_SKEW_MS)} (${formatAmzDate(now)} - 15 min.)`,
    );
  }
  if (signedAt > now + MAX_CLOCK_SKEW_MS) {
    return fail(
      'SignatureExpired',
      `Signature not yet current: ${amzDate} is still later than ${formatAmzDate(now + MAX_CLOCK_SKEW_MS)} (${formatAmzDate(now)} + 15 min.)`,
    );
  }

  if (auth.scopeDate !== amzDate.slice(0, 8)) {
    return fail(
      'InvalidSignatureException',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
    );
  }
  if (auth.scopeRegion !== opts.region) {
    return fail(
      'InvalidSignatureException',
      `Credential should be scoped to a valid region, not '${auth.scopeRegion}'.`,
    );
  }
  if (auth.scopeService !== opts.service) {
    return fail(
      'InvalidSignatureException',
      `Credential should be scoped to correct service: '${opts.service}'.`,
    );
  }
  if (auth.scopeTerminator !== 'aws4_request') {
    return fail(
      'InvalidSignatureException',
      "Credential should be scoped with a valid terminator: 'aws4_request'.",
    );
  }
  if (!auth.signedHeaders.includes('host')) {
    return fail(
      'InvalidSignatureException',
      "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    );
  }

  // The signer trusts x-amz-content-sha256 when present, so it must be checked against the real body.
  const bodyHash = req.body.length === 0 ? EMPTY_SHA256 : createHash('sha256').update(req.body).digest('hex');
  const claimedHash = headerValue(req.headers, 'x-amz-content-sha256');
  if (
    claimedHash !== undefined &&
    claimedHash !== bodyHash &&
    !(claimedHash === 'UNSIGNED-PAYLOAD' && req.body.length === 0)
  ) {
    return fail(
      'InvalidSignatureException',
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
  }

  const qIndex = req.url.indexOf('?');
  const path = qIndex < 0 ? req.url : req.url.slice(0, qIndex);
  const query = parseQuery(qIndex < 0 ? '' : req.url.slice(qIndex + 1));
  if (!query || !path.startsWith('/')) return fail('InvalidSignatureException', SIGNATURE_MISMATCH);

  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = headerValue(req.headers, name);
    // A signed header that is missing simply makes the signatures differ, as it would on AWS.
    if (value !== undefined) headers[name] = value;
  }
  const host = headers.host ?? '';
  const request = new HttpRequest({
    method: req.method.toUpperCase(),
    protocol: 'https:',
    hostname: host.replace(/:\d+$/, ''),
    path,
    query,
    headers,
    body: req.body,
  });
  const signer = new SignatureV4({
    service: opts.service,
    region: opts.region,
    credentials: {
      accessKeyId: credential.accessKeyId,
      secretAccessKey: credential.secretAccessKey,
      ...(credential.sessionToken !== undefined ? { sessionToken: credential.sessionToken } : {}),
    },
    sha256: Sha256,
    // Adding a checksum header the client did not send would change the canonical request.
    applyChecksum: false,
  });
  let expected: string | undefined;
  try {
    const signed = await signer.sign(request, {
      signingDate,
      // Lets headers the signer normally skips (e.g. sec-websocket-*) count when the client signed them.
      signableHeaders: new Set(auth.signedHeaders),
    });
    const header = signed.headers.authorization ?? '';
    expected = /Signature=([0-9a-f]{64})/.exec(header)?.[1];
  } catch {
    expected = undefined;
  }
  if (!expected || !safeEqual(expected, auth.signature)) {
    return fail('InvalidSignatureException', SIGNATURE_MISMATCH);
  }
  return { ok: true, accessKeyId: credential.accessKeyId };
}
