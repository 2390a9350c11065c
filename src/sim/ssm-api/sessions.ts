/**
 * The session operations (SPEC 2.1, 2.3, 2.4): StartSession with the port documents' parameters
 * checked and defaulted as the real documents declare them, ResumeSession, TerminateSession, and
 * GetConnectionStatus; plus the errors a test can inject per target (setTargetError).
 */
import type { SessionRegistry, SimInstance } from '../sessions.js';
import type { ApiCall, InjectableError } from './api.js';
import {
  isObject,
  type Json,
  optionalString,
  requiredString,
  SsmApiError,
  stringArray,
  validation,
} from './input.js';

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

/** What the session operations act on. */
export interface SessionOpsContext {
  registry: SessionRegistry;
  instances: readonly SimInstance[];
  region: string;
  streamUrl(sessionId: string): string;
  targetErrors: ReadonlyMap<string, InjectableError>;
}

function injectedError(ctx: SessionOpsContext, target: string, op: string): SsmApiError | undefined {
  const error = ctx.targetErrors.get(target);
  switch (error) {
    case undefined:
      return undefined;
    case 'AccessDeniedException':
      return new SsmApiError(
        error,
        `User: arn:aws:iam::${ACCOUNT_ID}:user/ssmtun is not authorized to perform: ssm:${op} on resource: arn:aws:ec2:${ctx.region}:${ACCOUNT_ID}:instance/${target} because no identity-based policy allows the ssm:${op} action`,
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

export function startSession(ctx: SessionOpsContext, input: Json, call: ApiCall, accessKeyId: string): Json {
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

  const injected = injectedError(ctx, target, 'StartSession');
  if (injected) throw injected;

  const instance = ctx.instances.find((i) => i.id === target);
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

  const session = ctx.registry.create(target, documentName, parameters, {
    owner: accessKeyId,
    ...(reason !== undefined ? { reason } : {}),
  });
  call.sessionId = session.sessionId;
  return {
    SessionId: session.sessionId,
    TokenValue: ctx.registry.issueClientToken(session.sessionId),
    StreamUrl: ctx.streamUrl(session.sessionId),
  };
}

export function resumeSession(ctx: SessionOpsContext, input: Json, call: ApiCall): Json {
  const sessionId = requiredString(input, 'SessionId', 'sessionId', 96);
  call.sessionId = sessionId;
  const session = ctx.registry.get(sessionId);
  if (!session) throw new SsmApiError('DoesNotExistException', `Session ${sessionId} does not exist.`);
  call.target = session.target;
  const injected = injectedError(ctx, session.target, 'ResumeSession');
  if (injected) throw injected;
  if (session.status === 'Terminated') {
    // The plugin reads a missing TokenValue as "session timed out" and exits cleanly (SPEC 2.3).
    return { SessionId: sessionId };
  }
  return {
    SessionId: sessionId,
    TokenValue: ctx.registry.issueClientToken(sessionId),
    StreamUrl: ctx.streamUrl(sessionId),
  };
}

export function terminateSession(ctx: SessionOpsContext, input: Json, call: ApiCall): Json {
  const sessionId = requiredString(input, 'SessionId', 'sessionId', 96);
  call.sessionId = sessionId;
  const session = ctx.registry.get(sessionId);
  if (session) call.target = session.target;
  // Succeeds for unknown and already-ended sessions too, as the real API does.
  ctx.registry.terminate(sessionId, 'TerminateSession API');
  return { SessionId: sessionId };
}

export function getConnectionStatus(ctx: SessionOpsContext, input: Json, call: ApiCall): Json {
  const target = requiredString(input, 'Target', 'target', 400);
  call.target = target;
  const instance = ctx.instances.find((i) => i.id === target);
  return { Target: target, Status: instance?.pingStatus === 'Online' ? 'connected' : 'notconnected' };
}
