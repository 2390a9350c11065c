/**
 * The simulator's control API under /_sim/, for tests that run the simulator as a separate process
 * (docs: the simulator section of README). Loopback callers only; errors are `{ code, message }` with a
 * stable code. Nothing here is AWS: it is how a test plays the network and the service's operators
 * (faults, killed sockets, errors injected on a target, instances, terminations).
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type SimDatabase,
  type SimDatabaseConfig,
  type SimDatabaseError,
  validateDatabaseConfig,
} from './databases.js';
import { type FaultInjector, FaultSpecError, validateFaultSpecs } from './faults.js';
import {
  AGENT_TUNING_KEYS,
  type AgentTuning,
  type Gateway,
  TerminateReason,
  type Wan,
  WanSpecError,
} from './gateway/index.js';
import { readBody } from './read-body.js';
import type { SessionRegistry, SimInstance } from './sessions.js';
import type { InjectableError, SsmApi } from './ssm-api/index.js';

/** What POST /_sim/instances takes (and SimulatorOptions.instances lists). */
export interface SimInstanceConfig {
  id: string;
  tags?: Record<string, string>;
  pingStatus?: 'Online' | 'ConnectionLost';
  /** Default DEFAULT_AGENT_VERSION. */
  agentVersion?: string;
  agent?: AgentTuning;
}

/** What the control API acts on: the simulator's parts. */
export interface ControlTarget {
  registry: SessionRegistry;
  api: SsmApi;
  gateway: Gateway;
  faults: FaultInjector;
  wan: Wan;
  upsertInstance(config: SimInstanceConfig): SimInstance;
  tuningOf(instanceId: string): AgentTuning;
  /** Everything GET /_sim/state returns. */
  state(): unknown;
  /** POST /_sim/databases: a simulated RDS endpoint in front of a local database, at run time. */
  addDatabase?(config: SimDatabaseConfig): Promise<SimDatabase>;
}

const INJECTABLE_ERRORS = new Set<string>([
  'AccessDeniedException',
  'TargetNotConnected',
  'InvalidDocument',
  'ThrottlingException',
  'ExpiredTokenException',
]);
const TUNING_KEYS = new Set<string>(AGENT_TUNING_KEYS);
const MAX_CONTROL_BODY = 1024 * 1024;
const ROUTES = [
  '/_sim/state',
  '/_sim/faults',
  '/_sim/kill',
  '/_sim/target-error',
  '/_sim/instances',
  '/_sim/terminate',
  '/_sim/wan',
  '/_sim/databases',
];

/** Control API errors: `{ code, message }` with a stable code. */
export class SimControlError extends Error {
  constructor(
    readonly code:
      | 'Forbidden'
      | 'NotFound'
      | 'MethodNotAllowed'
      | 'BadRequest'
      | 'UnknownSession'
      | 'PayloadTooLarge',
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'SimControlError';
  }
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(message: string): SimControlError {
  return new SimControlError('BadRequest', message, 400);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req, MAX_CONTROL_BODY);
  if (body === 'too-large') throw new SimControlError('PayloadTooLarge', 'request body too large', 413);
  const text = body.toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw bad('request body is not valid JSON');
  }
}

export function replyJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const payload = Buffer.from(JSON.stringify(body));
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', payload.length);
  res.end(payload);
}

function validateTuning(v: unknown, where: string): AgentTuning {
  if (v === undefined) return {};
  if (!isObject(v)) throw bad(`${where} must be an object`);
  for (const k of Object.keys(v)) {
    if (!TUNING_KEYS.has(k)) throw bad(`${where}.${k} is not an agent option`);
  }
  return structuredClone(v) as AgentTuning;
}

function validateInstance(v: unknown): SimInstanceConfig {
  if (!isObject(v) || typeof v.id !== 'string' || v.id.length === 0) throw bad('instance needs a string id');
  const out: SimInstanceConfig = { id: v.id };
  if (v.tags !== undefined) {
    if (!isObject(v.tags) || Object.values(v.tags).some((t) => typeof t !== 'string')) {
      throw bad('tags must be an object of strings');
    }
    out.tags = v.tags as Record<string, string>;
  }
  if (v.pingStatus !== undefined) {
    if (v.pingStatus !== 'Online' && v.pingStatus !== 'ConnectionLost') {
      throw bad("pingStatus must be 'Online' or 'ConnectionLost'");
    }
    out.pingStatus = v.pingStatus;
  }
  if (v.agentVersion !== undefined) {
    if (typeof v.agentVersion !== 'string' || !/^\d+(\.\d+){1,3}$/.test(v.agentVersion)) {
      throw bad('agentVersion must look like 3.3.987.0');
    }
    out.agentVersion = v.agentVersion;
  }
  if (v.agent !== undefined) out.agent = validateTuning(v.agent, 'agent');
  return out;
}

function knownSession(sim: ControlTarget, body: unknown): string {
  if (!isObject(body) || typeof body.sessionId !== 'string') throw bad('sessionId is required');
  if (!sim.registry.get(body.sessionId)) {
    throw new SimControlError('UnknownSession', `no session ${body.sessionId}`, 404);
  }
  return body.sessionId;
}

async function route(
  sim: ControlTarget,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  if (!isLoopback(req.socket.remoteAddress)) {
    throw new SimControlError('Forbidden', 'the control API answers loopback callers only', 403);
  }
  switch (`${req.method} ${path}`) {
    case 'GET /_sim/state':
      replyJson(res, 200, sim.state());
      return;
    case 'POST /_sim/faults': {
      const body = await readJson(req);
      const specs = validateFaultSpecs(isObject(body) && 'faults' in body ? body.faults : body);
      sim.faults.set(specs);
      replyJson(res, 200, { faults: sim.faults.specs });
      return;
    }
    case 'POST /_sim/wan': {
      // The whole model at once: absent fields are 0 (no delay, unlimited bandwidth).
      const body = await readJson(req);
      replyJson(res, 200, { wan: sim.wan.set(body) });
      return;
    }
    case 'POST /_sim/databases': {
      // For a harness whose database starts after the simulator (the bench): the same as --rds.
      const body = await readJson(req);
      if (!sim.addDatabase) throw new SimControlError('NotFound', 'no databases in this simulator', 404);
      if (!isObject(body) || typeof body.name !== 'string' || !isObject(body.upstream)) {
        throw bad(
          'send {"name": "...", "upstream": {"host": "127.0.0.1", "port": N}, "engine"?: "postgres"|"mysql"}',
        );
      }
      const config = body as unknown as SimDatabaseConfig;
      try {
        validateDatabaseConfig(config);
      } catch (e) {
        throw bad(`${(e as Error).message}; ${(e as SimDatabaseError).fix}`);
      }
      const db = await sim.addDatabase(config);
      replyJson(res, 200, { name: db.name, host: db.host, port: db.port, caFile: db.caFile });
      return;
    }
    case 'POST /_sim/kill': {
      const body = await readJson(req);
      if (!isObject(body) || typeof body.sessionId !== 'string') throw bad('sessionId is required');
      if (body.side !== 'client' && body.side !== 'agent') throw bad("side must be 'client' or 'agent'");
      replyJson(res, 200, { killed: sim.gateway.kill(knownSession(sim, body), body.side) });
      return;
    }
    case 'POST /_sim/target-error': {
      const body = await readJson(req);
      if (!isObject(body) || typeof body.target !== 'string') throw bad('target is required');
      if (body.error !== null && (typeof body.error !== 'string' || !INJECTABLE_ERRORS.has(body.error))) {
        throw bad(`error must be null or one of ${[...INJECTABLE_ERRORS].join(', ')}`);
      }
      sim.api.setTargetError(body.target, body.error === null ? undefined : (body.error as InjectableError));
      replyJson(res, 200, { target: body.target, error: body.error });
      return;
    }
    case 'POST /_sim/instances': {
      const body = await readJson(req);
      const instance = sim.upsertInstance(validateInstance(body));
      replyJson(res, 200, { ...instance, agent: { ...sim.tuningOf(instance.id) } });
      return;
    }
    case 'POST /_sim/terminate': {
      const body = await readJson(req);
      const sessionId = knownSession(sim, body);
      const given = (body as Record<string, unknown>).reason;
      const reason =
        given === undefined || given === 'idle'
          ? TerminateReason.Idle
          : given === 'max-duration'
            ? TerminateReason.MaxDuration
            : typeof given === 'string'
              ? given
              : undefined;
      if (reason === undefined) throw bad("reason must be 'idle', 'max-duration' or a string");
      replyJson(res, 200, { terminated: sim.registry.terminate(sessionId, reason) });
      return;
    }
    default:
      if (ROUTES.includes(path)) {
        throw new SimControlError('MethodNotAllowed', `${req.method} is not allowed on ${path}`, 405);
      }
      throw new SimControlError('NotFound', `no control endpoint ${path}`, 404);
  }
}

/** Answers one /_sim/ request; every failure becomes a JSON error, never an exception. */
export function handleControl(
  sim: ControlTarget,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): void {
  route(sim, req, res, path).catch((err: unknown) => {
    if (err instanceof SimControlError) replyJson(res, err.status, { code: err.code, message: err.message });
    else if (err instanceof FaultSpecError || err instanceof WanSpecError)
      replyJson(res, 400, { code: 'BadRequest', message: err.message });
    else replyJson(res, 500, { code: 'InternalError', message: String(err) });
  });
}
