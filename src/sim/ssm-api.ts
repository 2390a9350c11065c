/**
 * The simulator's SSM control-plane API: the AWS JSON 1.1 protocol (POST /, `X-Amz-Target:
 * AmazonSSM.<Op>`) for the operations a port-forwarding client needs, answered so that the real
 * @aws-sdk/client-ssm, pointed here through `endpoint`, yields its own typed results and exceptions.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody } from './read-body.js';
import type { SessionRegistry, SimInstance } from './sessions.js';
import { type SigV4ErrorCode, type SimCredential, verifySigV4 } from './sigv4.js';

export type { SigV4ErrorCode, SigV4Options, SigV4Request, SigV4Result, SimCredential } from './sigv4.js';
export { verifySigV4 } from './sigv4.js';

export interface SsmApiOptions {
  registry: SessionRegistry;
  /** Mutable list the sim owns; read on every call so tests can add instances or flip PingStatus. */
  instances: SimInstance[];
  region: string;
  credentials: SimCredential[];
  /** Builds the StreamUrl for a session (the gateway owns the host/port). */
  streamUrl(sessionId: string): string;
  now?: () => number;
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

/** An error answered to the caller in AWS JSON 1.1 form. */
export class SsmApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status = 400) {
    super(message);
    this.name = 'SsmApiError';
    this.code = code;
    this.status = status;
  }
}

/** Requests above this are refused before they are buffered, so a huge body cannot exhaust memory. */
export const MAX_BODY_BYTES = 1024 * 1024;

const TARGET_PREFIX = 'AmazonSSM.';
const ACCOUNT_ID = '123456789012';

/** 1-65535, written as the documents' allowedPattern does; localPortNumber also takes 0. */
const PORT = /^([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/;
const PORT_OR_ZERO = /^(0|[1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/;

/** The port documents the simulated agent can run and the parameters they declare (SPEC 2.2). */
const DOCUMENTS: Record<string, Record<string, { default?: string; pattern: RegExp }>> = {
  'AWS-StartPortForwardingSession': {
    portNumber: { default: '80', pattern: PORT },
    localPortNumber: { default: '0', pattern: PORT_OR_ZERO },
  },
  'AWS-StartPortForwardingSessionToRemoteHost': {
    host: { pattern: /^[a-zA-Z0-9.\-_:[\]]{1,253}$/ },
    portNumber: { default: '80', pattern: PORT },
    localPortNumber: { default: '0', pattern: PORT_OR_ZERO },
  },
  'AWS-StartSSHSession': {
    portNumber: { default: '22', pattern: PORT },
  },
};

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

const PING_STATUSES = new Set(['Online', 'ConnectionLost', 'Inactive']);
const FILTER_LIST_KEYS = new Set([
  'InstanceIds',
  'AgentVersion',
  'PingStatus',
  'PlatformTypes',
  'ActivationIds',
  'IamRole',
  'ResourceType',
  'AssociationStatus',
]);

type Json = Record<string, unknown>;
type InstanceFilter = (instance: SimInstance) => boolean;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validation(message: string): SsmApiError {
  return new SsmApiError('ValidationException', `1 validation error detected: ${message}`);
}

function optionalString(input: Json, field: string, member: string, max: number): string | undefined {
  const v = input[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new SsmApiError('SerializationException', `${field} must be a string`);
  if (v.length < 1 || v.length > max) {
    throw validation(
      `Value '${v}' at '${member}' failed to satisfy constraint: Member must have length between 1 and ${max}`,
    );
  }
  return v;
}

function requiredString(input: Json, field: string, member: string, max: number): string {
  const v = optionalString(input, field, member, max);
  if (v === undefined)
    throw validation(`Value null at '${member}' failed to satisfy constraint: Member must not be null`);
  return v;
}

function stringArray(v: unknown, member: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw validation(`Value at '${member}' failed to satisfy constraint: Member must be a list of strings`);
  }
  return v as string[];
}

function decodeNextToken(token: string): number {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (isObject(parsed) && Number.isSafeInteger(parsed.o) && (parsed.o as number) > 0)
      return parsed.o as number;
  } catch {
    // fall through: any undecodable token is simply invalid
  }
  throw new SsmApiError('InvalidNextToken', 'The specified token isn\u2019t valid.');
}

function encodeNextToken(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString('base64url');
}

function instanceFilter(key: string, values: string[]): InstanceFilter {
  const set = new Set(values);
  if (key.startsWith('tag:') && key.length > 4) {
    const tag = key.slice(4);
    return (i) => Object.hasOwn(i.tags, tag) && set.has(i.tags[tag]);
  }
  switch (key) {
    case 'tag-key':
      return (i) => values.some((k) => Object.hasOwn(i.tags, k));
    case 'InstanceIds':
      return (i) => set.has(i.id);
    case 'PingStatus':
      for (const v of values) {
        if (!PING_STATUSES.has(v)) {
          throw new SsmApiError(
            'InvalidInstanceInformationFilterValue',
            `${v} is not a valid value for the PingStatus filter.`,
          );
        }
      }
      return (i) => set.has(i.pingStatus);
    case 'AgentVersion':
      return (i) => set.has(i.agentVersion);
    case 'PlatformTypes':
      return () => set.has('Linux');
    case 'ResourceType':
      return () => set.has('EC2Instance');
    case 'ActivationIds':
    case 'IamRole':
    case 'AssociationStatus':
      // Simulated instances have no activation, role name or associations to match.
      return () => false;
    default:
      throw new SsmApiError('InvalidFilterKey', `The filter key ${key} is not valid.`);
  }
}

export class SsmApi {
  readonly calls: ApiCall[] = [];
  private readonly opts: SsmApiOptions;
  private readonly targetErrors = new Map<string, InjectableError>();

  constructor(opts: SsmApiOptions) {
    this.opts = opts;
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
        return this.startSession(input, call, accessKeyId);
      case 'ResumeSession':
        return this.resumeSession(input, call);
      case 'TerminateSession':
        return this.terminateSession(input, call);
      case 'DescribeInstanceInformation':
        return this.describeInstanceInformation(input);
      case 'GetConnectionStatus':
        return this.getConnectionStatus(input, call);
      default:
        throw new SsmApiError(
          'UnknownOperationException',
          `Operation ${op} is not supported by the simulator.`,
        );
    }
  }

  private injectedError(target: string, op: string): SsmApiError | undefined {
    const error = this.targetErrors.get(target);
    switch (error) {
      case undefined:
        return undefined;
      case 'AccessDeniedException':
        return new SsmApiError(
          error,
          `User: arn:aws:iam::${ACCOUNT_ID}:user/ssmtun is not authorized to perform: ssm:${op} on resource: arn:aws:ec2:${this.opts.region}:${ACCOUNT_ID}:instance/${target} because no identity-based policy allows the ssm:${op} action`,
        );
      case 'TargetNotConnected':
        return new SsmApiError(error, `${target} is not connected.`);
      case 'InvalidDocument':
        return new SsmApiError(error, 'Document is not valid for this target.');
      case 'ThrottlingException':
        return new SsmApiError(error, 'Rate exceeded');
      case 'ExpiredTokenException':
        return new SsmApiError(error, 'The security token included in the request is expired');
    }
  }

  private startSession(input: Json, call: ApiCall, accessKeyId: string): Json {
    const target = requiredString(input, 'Target', 'target', 400);
    call.target = target;
    // No DocumentName means an interactive shell on AWS; the simulated agent only forwards ports.
    const documentName =
      optionalString(input, 'DocumentName', 'documentName', 128) ?? 'SSM-SessionManagerRunShell';
    const reason = optionalString(input, 'Reason', 'reason', 256);
    const rawParams = input.Parameters ?? {};
    if (!isObject(rawParams)) {
      throw validation(
        "Value at 'parameters' failed to satisfy constraint: Member must be a map of string lists",
      );
    }
    const given: Record<string, string[]> = {};
    for (const [name, values] of Object.entries(rawParams)) {
      given[name] = stringArray(values, `parameters.${name}`);
    }

    const injected = this.injectedError(target, 'StartSession');
    if (injected) throw injected;

    const instance = this.opts.instances.find((i) => i.id === target);
    if (instance?.pingStatus !== 'Online') {
      throw new SsmApiError('TargetNotConnected', `${target} is not connected.`);
    }
    const declared = DOCUMENTS[documentName];
    if (!declared) {
      throw new SsmApiError(
        'InvalidDocument',
        `Document ${documentName} is not supported; the simulator runs AWS-StartPortForwardingSession, AWS-StartPortForwardingSessionToRemoteHost and AWS-StartSSHSession.`,
      );
    }
    const parameters: Record<string, string[]> = {};
    for (const [name, values] of Object.entries(given)) {
      const spec = declared[name];
      if (!spec)
        throw new SsmApiError(
          'InvalidParameters',
          `Parameter "${name}" is not defined in document ${documentName}.`,
        );
      if (values.length !== 1) {
        throw new SsmApiError('InvalidParameters', `Parameter "${name}" must have exactly one value.`);
      }
      if (!spec.pattern.test(values[0])) {
        throw new SsmApiError(
          'InvalidParameters',
          `Parameter "${name}" "${values[0]}" failed to satisfy constraint: Member must satisfy regular expression pattern: ${spec.pattern.source}`,
        );
      }
      parameters[name] = [values[0]];
    }
    for (const [name, spec] of Object.entries(declared)) {
      if (parameters[name]) continue;
      if (spec.default === undefined) {
        throw new SsmApiError(
          'InvalidParameters',
          `Parameter "${name}" is required by document ${documentName}.`,
        );
      }
      parameters[name] = [spec.default];
    }

    const session = this.opts.registry.create(target, documentName, parameters, {
      owner: accessKeyId,
      ...(reason !== undefined ? { reason } : {}),
    });
    call.sessionId = session.sessionId;
    return {
      SessionId: session.sessionId,
      TokenValue: this.opts.registry.issueClientToken(session.sessionId),
      StreamUrl: this.opts.streamUrl(session.sessionId),
    };
  }

  private resumeSession(input: Json, call: ApiCall): Json {
    const sessionId = requiredString(input, 'SessionId', 'sessionId', 96);
    call.sessionId = sessionId;
    const session = this.opts.registry.get(sessionId);
    if (!session) throw new SsmApiError('DoesNotExistException', `Session ${sessionId} does not exist.`);
    call.target = session.target;
    const injected = this.injectedError(session.target, 'ResumeSession');
    if (injected) throw injected;
    if (session.status === 'Terminated') {
      // The plugin reads a missing TokenValue as "session timed out" and exits cleanly (SPEC 2.3).
      return { SessionId: sessionId };
    }
    return {
      SessionId: sessionId,
      TokenValue: this.opts.registry.issueClientToken(sessionId),
      StreamUrl: this.opts.streamUrl(sessionId),
    };
  }

  private terminateSession(input: Json, call: ApiCall): Json {
    const sessionId = requiredString(input, 'SessionId', 'sessionId', 96);
    call.sessionId = sessionId;
    const session = this.opts.registry.get(sessionId);
    if (session) call.target = session.target;
    // Succeeds for unknown and already-ended sessions too, as the real API does.
    this.opts.registry.terminate(sessionId, 'TerminateSession API');
    return { SessionId: sessionId };
  }

  private getConnectionStatus(input: Json, call: ApiCall): Json {
    const target = requiredString(input, 'Target', 'target', 400);
    call.target = target;
    const instance = this.opts.instances.find((i) => i.id === target);
    return { Target: target, Status: instance?.pingStatus === 'Online' ? 'connected' : 'notconnected' };
  }

  private describeInstanceInformation(input: Json): Json {
    const filters: InstanceFilter[] = [];
    if (input.Filters !== undefined && input.Filters !== null) {
      if (!Array.isArray(input.Filters))
        throw validation("Value at 'filters' failed to satisfy constraint: Member must be a list");
      input.Filters.forEach((f: unknown, idx: number) => {
        if (!isObject(f) || typeof f.Key !== 'string' || f.Key.length === 0) {
          throw validation(
            `Value null at 'filters.${idx + 1}.member.key' failed to satisfy constraint: Member must not be null`,
          );
        }
        const values = stringArray(f.Values, `filters.${idx + 1}.member.values`);
        if (values.length === 0) {
          throw new SsmApiError(
            'InvalidInstanceInformationFilterValue',
            `Filter ${f.Key} needs at least one value.`,
          );
        }
        filters.push(instanceFilter(f.Key, values));
      });
    }
    if (input.InstanceInformationFilterList !== undefined && input.InstanceInformationFilterList !== null) {
      const list = input.InstanceInformationFilterList;
      if (!Array.isArray(list)) {
        throw validation(
          "Value at 'instanceInformationFilterList' failed to satisfy constraint: Member must be a list",
        );
      }
      list.forEach((f: unknown, idx: number) => {
        if (!isObject(f) || typeof f.key !== 'string' || !FILTER_LIST_KEYS.has(f.key)) {
          throw validation(
            `Value at 'instanceInformationFilterList.${idx + 1}.member.key' failed to satisfy constraint: Member must satisfy enum value set: [${[...FILTER_LIST_KEYS].join(', ')}]`,
          );
        }
        const values = stringArray(f.valueSet, `instanceInformationFilterList.${idx + 1}.member.valueSet`);
        if (values.length === 0) {
          throw new SsmApiError(
            'InvalidInstanceInformationFilterValue',
            `Filter ${f.key} needs at least one value.`,
          );
        }
        filters.push(instanceFilter(f.key, values));
      });
    }
    let pageSize = 50;
    if (input.MaxResults !== undefined && input.MaxResults !== null) {
      const max = input.MaxResults;
      if (typeof max !== 'number' || !Number.isInteger(max) || max < 5 || max > 50) {
        throw validation(
          `Value '${String(max)}' at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50`,
        );
      }
      pageSize = max;
    }
    const nextToken = optionalString(input, 'NextToken', 'nextToken', 4096);
    const start = nextToken === undefined ? 0 : decodeNextToken(nextToken);

    const matching = this.opts.instances.filter((i) => filters.every((f) => f(i)));
    const page = matching.slice(start, start + pageSize);
    const nowSeconds = Math.floor(this.now() / 1000);
    const out: Json = {
      InstanceInformationList: page.map((i) => ({
        InstanceId: i.id,
        PingStatus: i.pingStatus,
        // A lost instance stopped pinging a while ago; an online one pinged just now.
        LastPingDateTime: i.pingStatus === 'Online' ? nowSeconds : nowSeconds - 600,
        AgentVersion: i.agentVersion,
        IsLatestVersion: false,
        PlatformType: 'Linux',
        PlatformName: 'Amazon Linux',
        PlatformVersion: '2023',
        ResourceType: 'EC2Instance',
        SourceId: i.id,
        SourceType: 'AWS::EC2::Instance',
        ...(i.tags.Name !== undefined ? { ComputerName: i.tags.Name } : {}),
      })),
    };
    if (start + pageSize < matching.length) out.NextToken = encodeNextToken(start + pageSize);
    return out;
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
    res.end(payload, after);
  }
}
