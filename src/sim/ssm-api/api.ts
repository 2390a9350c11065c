/**
 * The simulator's SSM control-plane API: the AWS JSON 1.1 protocol (POST /, `X-Amz-Target:
 * AmazonSSM.<Op>`) for the operations a port-forwarding client needs, answered so that the real
 * @aws-sdk/client-ssm, pointed here through `endpoint`, yields its own typed results and exceptions.
 * This file is the protocol (routing, body limit, SigV4, the JSON reply); the operations are in
 * sessions.ts and instances.ts.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { runAt } from '../gateway/wan.js';
import { readBody } from '../read-body.js';
import type { SessionRegistry, SimInstance } from '../sessions.js';
import { type SigV4ErrorCode, type SimCredential, verifySigV4 } from '../sigv4.js';
import { isObject, type Json, SsmApiError } from './input.js';
import { describeInstanceInformation } from './instances.js';
import {
  getConnectionStatus,
  resumeSession,
  type SessionOpsContext,
  startSession,
  terminateSession,
} from './sessions.js';

export interface SsmApiOptions {
  registry: SessionRegistry;
  /** Mutable list the sim owns; read on every call so tests can add instances or flip PingStatus. */
  instances: SimInstance[];
  region: string;
  credentials: SimCredential[];
  /** Builds the StreamUrl for a session (the gateway owns the host/port). */
  streamUrl(sessionId: string): string;
  now?: () => number;
  /**
   * The client's round trip to AWS (the WAN model), read per call: the request takes half of it to
   * arrive and the answer the other half. Default 0.
   */
  rttMs?: () => number;
}

export interface ApiCall {
  op: string;
  target?: string;
  sessionId?: string;
  /** Error name answered, if the call failed. */
  error?: string;
  /** Access key that signed the call, once authenticated. */
  accessKeyId?: string;
}

/** Errors that can be injected per target with `setTargetError`. */
export type InjectableError =
  | 'AccessDeniedException'
  | 'TargetNotConnected'
  | 'InvalidDocument'
  | 'ThrottlingException'
  | 'ExpiredTokenException';

/** Requests above this are refused before they are buffered, so a huge body cannot exhaust memory. */
export const MAX_BODY_BYTES = 1024 * 1024;

const TARGET_PREFIX = 'AmazonSSM.';

/**
 * Wire form of verifier failures. Coral JSON services answer all of them with 400 and report an
 * expired signature as InvalidSignatureException ("Signature expired: ...").
 */
const AUTH_ERRORS: Record<SigV4ErrorCode, { code: string; status: number }> = {
  MissingAuthenticationToken: { code: 'MissingAuthenticationTokenException', status: 400 },
  IncompleteSignatureException: { code: 'IncompleteSignatureException', status: 400 },
  UnrecognizedClientException: { code: 'UnrecognizedClientException', status: 400 },
  InvalidSignatureException: { code: 'InvalidSignatureException', status: 400 },
  ExpiredTokenException: { code: 'ExpiredTokenException', status: 400 },
  SignatureExpired: { code: 'InvalidSignatureException', status: 400 },
};

export class SsmApi {
  readonly calls: ApiCall[] = [];
  private readonly opts: SsmApiOptions;
  private readonly targetErrors = new Map<string, InjectableError>();
  private readonly ops: SessionOpsContext;

  constructor(opts: SsmApiOptions) {
    this.opts = opts;
    this.ops = {
      registry: opts.registry,
      instances: opts.instances,
      region: opts.region,
      streamUrl: (id) => opts.streamUrl(id),
      targetErrors: this.targetErrors,
    };
  }

  /**
   * Per-target injected error for StartSession (and ResumeSession of sessions on that target);
   * undefined clears it.
   */
  setTargetError(target: string, error: InjectableError | undefined): void {
    if (error === undefined) this.targetErrors.delete(target);
    else this.targetErrors.set(target, error);
  }

  /**
   * Handles one HTTP request if it is an SSM API call; returns false if not ours so the sim's shared
   * http server can route it elsewhere. Ours: any POST carrying `X-Amz-Target: AmazonSSM.*`, plus
   * POST / with a JSON 1.x content type (a malformed SSM call that deserves an SSM-style error).
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST') return false;
    const target = req.headers['x-amz-target'];
    const contentType = req.headers['content-type'] ?? '';
    const path = (req.url ?? '').split('?')[0];
    const ours =
      (typeof target === 'string' && target.startsWith(TARGET_PREFIX)) ||
      (path === '/' && contentType.startsWith('application/x-amz-json-'));
    if (!ours) return false;
    this.process(req, res).catch((err: unknown) => {
      // Last line of defence: one bad request must never take the shared server down.
      this.reply(res, new SsmApiError('InternalServerError', `internal error: ${String(err)}`, 500));
    });
    return true;
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Half the WAN's round trip: the time a request, or its answer, spends on the way. */
  private halfRoundTrip(): Promise<void> {
    const ms = (this.opts.rttMs?.() ?? 0) / 2;
    return ms > 0 ? new Promise((resolve) => runAt(performance.now() + ms, resolve)) : Promise.resolve();
  }

  private async process(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawTarget = req.headers['x-amz-target'];
    const op =
      typeof rawTarget === 'string' && rawTarget.startsWith(TARGET_PREFIX)
        ? rawTarget.slice(TARGET_PREFIX.length)
        : '';
    const call: ApiCall = { op: op || String(rawTarget ?? '') };

    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      this.refuseTooLarge(req, res, call);
      return;
    }
    const body = await readBody(req, MAX_BODY_BYTES).catch(() => undefined);
    if (body === undefined) {
      // The client went away mid-body; there is nobody left to answer.
      if (!req.destroyed) req.destroy();
      return;
    }
    if (body === 'too-large') {
      this.refuseTooLarge(req, res, call);
      return;
    }

    await this.halfRoundTrip();
    const now = this.now();
    const auth = await verifySigV4(
      { method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers, body },
      { service: 'ssm', region: this.opts.region, credentials: this.opts.credentials, now },
    );
    if (!auth.ok) {
      const wire = AUTH_ERRORS[auth.error];
      this.fail(res, call, new SsmApiError(wire.code, auth.message, wire.status));
      return;
    }
    call.accessKeyId = auth.accessKeyId;

    try {
      if (!op) {
        throw new SsmApiError('UnknownOperationException', 'Missing or malformed X-Amz-Target header.');
      }
      let input: unknown;
      try {
        input = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
      } catch {
        throw new SsmApiError('SerializationException', 'Unable to parse the request body as JSON.');
      }
      if (!isObject(input)) {
        throw new SsmApiError('SerializationException', 'The request body must be a JSON object.');
      }
      const output = this.dispatch(op, input, call, auth.accessKeyId);
      this.calls.push(call);
      this.reply(res, output);
    } catch (err) {
      const apiError =
        err instanceof SsmApiError
          ? err
          : new SsmApiError('InternalServerError', `internal error: ${String(err)}`, 500);
      this.fail(res, call, apiError);
    }
  }

  private dispatch(op: string, input: Json, call: ApiCall, accessKeyId: string): Json {
    switch (op) {
      case 'StartSession':
        return startSession(this.ops, input, call, accessKeyId);
      case 'ResumeSession':
        return resumeSession(this.ops, input, call);
      case 'TerminateSession':
        return terminateSession(this.ops, input, call);
      case 'DescribeInstanceInformation':
        return describeInstanceInformation(input, this.opts.instances, this.now());
      case 'GetConnectionStatus':
        return getConnectionStatus(this.ops, input, call);
      default:
        throw new SsmApiError(
          'UnknownOperationException',
          `Operation ${op} is not supported by the simulator.`,
        );
    }
  }

  private refuseTooLarge(req: IncomingMessage, res: ServerResponse, call: ApiCall): void {
    call.error = 'RequestEntityTooLargeException';
    this.calls.push(call);
    res.setHeader('connection', 'close');
    this.reply(
      res,
      new SsmApiError(
        'RequestEntityTooLargeException',
        `Request body exceeds the ${MAX_BODY_BYTES}-byte limit.`,
        413,
      ),
      () => req.destroy(),
    );
  }

  private fail(res: ServerResponse, call: ApiCall, error: SsmApiError): void {
    call.error = error.code;
    this.calls.push(call);
    this.reply(res, error);
  }

  private reply(res: ServerResponse, result: Json | SsmApiError, after?: () => void): void {
    if (res.headersSent || res.destroyed) return;
    const isError = result instanceof SsmApiError;
    const payload = Buffer.from(
      JSON.stringify(isError ? { __type: result.code, message: result.message } : result),
      'utf8',
    );
    res.statusCode = isError ? result.status : 200;
    res.setHeader('content-type', 'application/x-amz-json-1.1');
    res.setHeader('content-length', payload.length);
    res.setHeader('x-amzn-requestid', randomUUID());
    // The SDK corrects its clock skew from this header, so it must follow the simulated clock.
    res.setHeader('date', new Date(this.now()).toUTCString());
    if (isError) res.setHeader('x-amzn-errortype', result.code);
    const ms = (this.opts.rttMs?.() ?? 0) / 2;
    if (ms > 0) runAt(performance.now() + ms, () => res.end(payload, after));
    else res.end(payload, after);
  }
}
