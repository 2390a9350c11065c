/**
 * The local HTTP API (127.0.0.1 only). Built by a factory so tests use `app.inject()`; it reads the
 * daemon only through the TunnelManager. Errors are JSON `{ code, message }`.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { TunnelError } from '../daemon/errors.js';
import type { TunnelManager } from '../daemon/manager.js';
import { registerSecurity } from './security.js';

export interface ApiDeps {
  manager: TunnelManager;
  logger?: Logger;
  version: string;
  limits?: Partial<ApiLimits>;
}

/**
 * Local programs are the only clients, but a stuck or hostile one must not hold sockets open: a
 * trickled request is cut off, and past maxConnections new sockets are closed at once (500 trickled
 * bodies once exhausted the daemon's file descriptors and every tunnel failed with EMFILE).
 */
export interface ApiLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  bodyLimitBytes: number;
  /** How often Node checks the header/request deadlines. */
  checkIntervalMs: number;
}

export const DEFAULT_API_LIMITS: ApiLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  idleTimeoutMs: 30_000,
  maxConnections: 64,
  bodyLimitBytes: 64 * 1024,
  checkIntervalMs: 1_000,
};

const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' }, fix: { type: 'string' } },
  required: ['code', 'message'],
} as const;

const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } },
  required: ['name'],
} as const;

export function buildApi(deps: ApiDeps): FastifyInstance {
  const limits = { ...DEFAULT_API_LIMITS, ...deps.limits };
  const app = Fastify({
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs },
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: Math.min(5_000, limits.idleTimeoutMs),
    bodyLimit: limits.bodyLimitBytes,
    // Request lines at info would drown the tunnel logs; the API logs only its warnings and errors.
    loggerInstance: deps.logger?.child({ component: 'api' }, { level: 'warn' }) as
      | FastifyBaseLogger
      | undefined,
  }) as unknown as FastifyInstance;
  app.server.maxConnections = limits.maxConnections;
  registerSecurity(app);

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof TunnelError) {
      const status = err.message.startsWith('no tunnel named') ? 404 : 502;
      return reply.status(status).send({ code: err.code, message: err.message, fix: err.fix });
    }
    const e = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (e.validation) return reply.status(400).send({ code: 'BAD_REQUEST', message: e.message });
    const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    return reply.status(status).send({ code: e.code ?? 'INTERNAL', message: e.message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` }),
  );

  app.get('/health', async () => ({ ok: true, version: deps.version, tunnels: deps.manager.list().length }));

  app.get('/tunnels', async () => ({ tunnels: deps.manager.list() }));

  app.get(
    '/tunnels/:name',
    { schema: { params: nameParams, response: { 404: errorSchema } } },
    async (req) => {
      const { name } = req.params as { name: string };
      return deps.manager.require(name).status();
    },
  );

  app.post('/tunnels/:name/open', { schema: { params: nameParams } }, async (req) => {
    const { name } = req.params as { name: string };
    return deps.manager.open(name);
  });

  app.post('/tunnels/:name/close', { schema: { params: nameParams } }, async (req) => {
    const { name } = req.params as { name: string };
    return deps.manager.close(name);
  });

  return app;
}
