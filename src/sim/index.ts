/**
 * The whole simulated AWS side on one loopback HTTP server: the SSM JSON API (POST /), the message
 * gateway (/v1/data-channel/...), one simulated agent per session, and a small control API under
 * /_sim/ (control.ts) for tests that run the simulator as a separate process.
 */
import http from 'node:http';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { type Logger, pino } from 'pino';
import { SimAgent, type SimAgentOptions } from './agent/index.js';
import { handleControl, replyJson, type SimInstanceConfig } from './control.js';
import { createDatabaseRegistry, type SimDatabase, type SimDatabaseConfig } from './databases.js';
import { FaultInjector, type FaultSpec, validateFaultSpecs } from './faults.js';
import {
  type AgentTuning,
  Gateway,
  validateWan,
  Wan,
  type WanOptions,
  type WanSettings,
  wanFront,
} from './gateway/index.js';
import { SessionRegistry, type SimInstance } from './sessions.js';
import { SsmApi } from './ssm-api/index.js';

export interface SimulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: '127.0.0.1';
  region?: string;
  /** Default: one fixed test pair (DEFAULT_CREDENTIALS). The first pair also signs for the agents. */
  credentials?: { accessKeyId: string; secretAccessKey: string }[];
  instances?: SimInstanceConfig[];
  requireSignedUpgrade?: boolean;
  /** Default 20 minutes; 0 disables. */
  idleTimeoutMs?: number;
  maxSessionDurationMs?: number;
  recycleClientMs?: number;
  faults?: FaultSpec[];
  seed?: number;
  /** Applied to every instance's agent under its own `agent` settings (e.g. `{ pacing: false }`). */
  agentDefaults?: AgentTuning;
  /** How long an agent may be away before its session ends (default 2 s). */
  agentGraceMs?: number;
  /** How long a new data-channel socket may stay silent before it is closed (default 10 s). */
  openTimeoutMs?: number;
  /** Frames held per side and session while the other side is away (default 10 000; oldest dropped). */
  maxQueuedFrames?: number;
  /** Simulated RDS PostgreSQL endpoints, each in front of a real local PostgreSQL (see databases.ts). */
  databases?: SimDatabaseConfig[];
  /**
   * The client's network to AWS (gateway/wan.ts): round trip, jitter and bandwidth per direction
   * (Mbit/s, 0 = unlimited), applied to every data-channel frame between client and gateway, and one
   * round trip to every SSM API call and WebSocket upgrade. Default: none. POST /_sim/wan changes it.
   */
  wan?: WanOptions;
  /** Clock (epoch ms) the simulated RDS uses for IAM token expiry; default Date.now. */
  now?: () => number;
  logger?: Logger;
}

export interface Simulator {
  /** http://127.0.0.1:PORT: the SSM endpoint (AWS_ENDPOINT_URL_SSM) and the gateway. */
  endpoint: string;
  port: number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Live list the SSM API reads; mutate through `upsertInstance` so agent settings follow. */
  instances: SimInstance[];
  registry: SessionRegistry;
  api: SsmApi;
  gateway: Gateway;
  faults: FaultInjector;
  setFaults(specs: FaultSpec[]): void;
  /** Replaces the WAN model's settings (absent fields: 0); throws WanSpecError on a bad value. */
  setWan(wan: WanOptions | undefined): WanSettings;
  upsertInstance(config: SimInstanceConfig): SimInstance;
  /** Simulated RDS endpoints, reachable by the agents at `host:port` (the simulator's name table). */
  databases: SimDatabase[];
  addDatabase(config: SimDatabaseConfig): Promise<SimDatabase>;
  /** Everything GET /_sim/state returns. */
  state(): SimState;
  close(): Promise<void>;
}

export interface SimState {
  endpoint: string;
  region: string;
  instances: (SimInstance & { agent: AgentTuning })[];
  sessions: Array<{
    sessionId: string;
    target: string;
    documentName: string;
    parameters: Record<string, string[]>;
    status: string;
    createdAt: number;
    terminatedAt?: number;
    terminateReason?: string;
    gateway: unknown;
    agent: unknown;
  }>;
  calls: SsmApi['calls'];
  faults: { specs: FaultSpec[]; stats: FaultInjector['stats'] };
  wan: ReturnType<Gateway['wanStats']>;
  violations: Gateway['violations'];
  refusals: Gateway['refusals'];
  /** Fake client tokens issued so far (for log-redaction tests). */
  issuedTokens: string[];
  databases: Array<Pick<SimDatabase, 'name' | 'host' | 'port' | 'caFile' | 'frontPort' | 'stats'>>;
}

export const DEFAULT_REGION = 'us-east-1';
export const DEFAULT_AGENT_VERSION = '3.3.987.0';
export const DEFAULT_CREDENTIALS = Object.freeze({
  accessKeyId: 'AKIASIMULATOR0000001',
  secretAccessKey: 'ssmtun-simulator-secret-access-key-0001',
});
export const DEFAULT_INSTANCES: readonly SimInstanceConfig[] = Object.freeze([
  { id: 'i-05e1a000000000001', tags: { Name: 'bastion' }, agentVersion: '3.3.987.0' },
  // Old enough for basic mode (SPEC 10.2), so both client modes are reachable out of the box.
  { id: 'i-05e1a000000000002', tags: { Name: 'legacy' }, agentVersion: '3.0.161.0' },
]);

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const host = '127.0.0.1';
  const region = opts.region ?? DEFAULT_REGION;
  const credentials = (opts.credentials ?? [DEFAULT_CREDENTIALS]).map((c) => ({ ...c }));
  if (credentials.length === 0) throw new Error('the simulator needs at least one credential pair');
  const logger = opts.logger ?? pino({ level: 'silent' });
  const seed = (opts.seed ?? 1) >>> 0;

  const instances: SimInstance[] = [];
  const tuning = new Map<string, AgentTuning>();
  const upsertInstance = (config: SimInstanceConfig): SimInstance => {
    let instance = instances.find((i) => i.id === config.id);
    if (!instance) {
      instance = { id: config.id, tags: {}, pingStatus: 'Online', agentVersion: DEFAULT_AGENT_VERSION };
      instances.push(instance);
    }
    if (config.tags !== undefined) instance.tags = { ...config.tags };
    if (config.pingStatus !== undefined) instance.pingStatus = config.pingStatus;
    if (config.agentVersion !== undefined) instance.agentVersion = config.agentVersion;
    if (config.agent !== undefined) tuning.set(config.id, { ...tuning.get(config.id), ...config.agent });
    return instance;
  };
  for (const config of opts.instances ?? DEFAULT_INSTANCES) upsertInstance(config);

  let port = 0;
  // Agents reach the gateway inside AWS, not over the client's WAN: they get a listener of their own.
  let agentPort = 0;
  const endpoint = () => `http://${host}:${port}`;
  const wan = new Wan(validateWan(opts.wan), seed);
  const registry = new SessionRegistry();
  const api = new SsmApi({
    registry,
    instances,
    region,
    credentials,
    streamUrl: (id) => `ws://${host}:${port}/v1/data-channel/${id}?role=publish_subscribe`,
    rttMs: () => wan.rttMs,
  });
  const faults = new FaultInjector(opts.faults ?? [], seed);
  const databases = createDatabaseRegistry({
    region,
    credentials,
    now: opts.now,
    logger: logger.child({ component: 'rds' }),
  });
  let agentCounter = 0;
  const gateway = new Gateway({
    registry,
    region,
    credentials,
    endpoint: () => `http://${host}:${agentPort}`,
    agentCredentials: credentials[0],
    createAgent: (o: SimAgentOptions) => new SimAgent(o),
    resolveDestination: databases.resolve,
    agentConfig: (session) => {
      const instance = instances.find((i) => i.id === session.target);
      if (!instance) return undefined;
      agentCounter++;
      return {
        agentVersion: instance.agentVersion,
        // Distinct but reproducible agent seeds: same sim seed, same order of sessions, same agents.
        options: {
          seed: (seed + agentCounter * 0x9e3779b1) >>> 0,
          ...opts.agentDefaults,
          ...tuning.get(instance.id),
        },
      };
    },
    requireSignedUpgrade: opts.requireSignedUpgrade ?? false,
    idleTimeoutMs: opts.idleTimeoutMs,
    maxSessionDurationMs: opts.maxSessionDurationMs,
    recycleClientMs: opts.recycleClientMs,
    agentGraceMs: opts.agentGraceMs,
    openTimeoutMs: opts.openTimeoutMs,
    maxQueuedFrames: opts.maxQueuedFrames,
    faults,
    wan,
    viaWan: (req) => req.socket.localPort !== agentPort,
    logger: logger.child({ component: 'gateway' }),
  });

  const state = (): SimState => ({
    endpoint: endpoint(),
    region,
    instances: instances.map((i) => ({ ...i, tags: { ...i.tags }, agent: { ...tuning.get(i.id) } })),
    sessions: registry.list().map((s) => ({
      sessionId: s.sessionId,
      target: s.target,
      documentName: s.documentName,
      parameters: s.parameters,
      status: s.status,
      createdAt: s.createdAt,
      ...(s.terminatedAt !== undefined ? { terminatedAt: s.terminatedAt } : {}),
      ...(s.terminateReason !== undefined ? { terminateReason: s.terminateReason } : {}),
      gateway: gateway.sessionStats(s.sessionId) ?? null,
      agent: gateway.agentStats(s.sessionId) ?? null,
    })),
    calls: api.calls,
    faults: { specs: faults.specs, stats: faults.stats },
    wan: gateway.wanStats(),
    violations: gateway.violations,
    refusals: gateway.refusals,
    issuedTokens: registry.issued,
    databases: databases.list.map((d) => ({
      name: d.name,
      host: d.host,
      port: d.port,
      caFile: d.caFile,
      frontPort: d.frontPort,
      stats: { ...d.stats, refusals: d.stats.refusals.map((r) => ({ ...r })) },
    })),
  });

  const control = {
    registry,
    api,
    gateway,
    faults,
    wan,
    upsertInstance,
    tuningOf: (id: string) => ({ ...tuning.get(id) }),
    state,
    addDatabase: (config: SimDatabaseConfig) => databases.add(config),
  };
  const handler: http.RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path.startsWith('/_sim/')) {
      handleControl(control, req, res, path);
      return;
    }
    if (gateway.handleRequest(req, res)) return;
    if (api.handle(req, res)) return;
    replyJson(res, 404, { code: 'NotFound', message: `nothing at ${req.method} ${path}` });
  };
  const server = http.createServer(handler);
  const agentServer = http.createServer(handler);
  for (const srv of [server, agentServer]) {
    srv.on('upgrade', (req, socket, head) => {
      if (gateway.handleUpgrade(req, socket, head)) return;
      socket.on('error', () => {});
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    // A misbehaving peer must never take the simulator down.
    srv.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }
  // The clients' listener pays the WAN's TCP handshake; the agents' is inside AWS.
  const pub = wanFront(server, wan);
  const listen = (srv: net.Server, p: number) =>
    new Promise<number>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ port: p, host }, () => {
        srv.off('error', reject);
        resolve((srv.address() as AddressInfo).port);
      });
    });
  port = await listen(pub.front, opts.port ?? 0);
  try {
    agentPort = await listen(agentServer, 0);
  } catch (err) {
    await new Promise<void>((resolve) => pub.front.close(() => resolve()));
    throw err;
  }
  const closeServers = () =>
    Promise.all([
      new Promise<void>((resolve) => {
        pub.front.close(() => resolve());
        pub.closeAll();
      }),
      new Promise<void>((resolve) => {
        agentServer.close(() => resolve());
        agentServer.closeAllConnections();
      }),
    ]);
  try {
    for (const db of opts.databases ?? []) await databases.add(db);
  } catch (err) {
    await databases.close();
    await gateway.close();
    await closeServers();
    throw err;
  }
  logger.info({ endpoint: endpoint() }, 'simulator listening');

  let closing: Promise<void> | undefined;
  return {
    endpoint: endpoint(),
    port,
    region,
    accessKeyId: credentials[0].accessKeyId,
    secretAccessKey: credentials[0].secretAccessKey,
    instances,
    registry,
    api,
    gateway,
    faults,
    setFaults: (specs) => faults.set(validateFaultSpecs(specs)),
    setWan: (w) => wan.set(w),
    upsertInstance,
    databases: databases.list,
    addDatabase: (config) => databases.add(config),
    state,
    close() {
      closing ??= (async () => {
        await databases.close();
        await gateway.close();
        await closeServers();
      })();
      return closing;
    },
  };
}

export { SimControlError, type SimInstanceConfig } from './control.js';
export type { SimDatabase, SimDatabaseConfig } from './databases.js';
export type { FaultSpec } from './faults.js';
export type { WanOptions, WanSettings } from './gateway/index.js';
export type { SimInstance, SimSession } from './sessions.js';
