/**
 * The local HTTP API (127.0.0.1, ::1 and the user's unix socket). Built by a factory so tests use
 * `app.inject()`; it reads the daemon only through the TunnelManager, the TokenService, the runtime
 * tunnel store and the event hub. Every answer that is not a success is JSON `{ code, message, fix? }`
 * with a status that says whose fault it is, including fastify's own rejections (malformed HTTP, 404,
 * body too large, timeouts). The OpenAPI document at /openapi.json is generated from the route schemas.
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ConfigError } from '../daemon/config.js';
import { TunnelError, type TunnelErrorCode } from '../daemon/errors.js';
import type { EventHub } from '../daemon/events.js';
import type { TunnelManager } from '../daemon/manager.js';
import type { RuntimeTunnels } from '../daemon/runtime-tunnels.js';
import type { TokenService } from '../daemon/tokens.js';
import { registerAuth } from './auth.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { type ReloadResult, reloadRoutes } from './routes/reload.js';
import { tokenRoutes } from './routes/tokens.js';
import { tunnelRoutes } from './routes/tunnels.js';
import { registerSecurity } from './security.js';

export interface ApiDeps {
  manager: TunnelManager;
  tokens?: TokenService;
  runtime?: RuntimeTunnels;
  events?: EventHub;
  /** Re-reads the config file and applies the difference (SIGHUP does the same). */
  reload?: () => Promise<ReloadResult>;
  /** False until the daemon has finished starting (GET /startup). */
  started?: () => boolean;
  logger?: Logger;
  version: string;
  /** The key protected routes require over TCP; without one they answer only on the unix socket. */
  apiKey?: string;
  /** Trust every request, as if on the unix socket (route tests with inject()). */
  trusted?: boolean;
  keyFile?: string;
  socketPath?: string;
  /** The TCP port served: Host must name it. */
  port?: number;
  /** Internal: build the copy that generates /openapi.json. */
  openapi?: boolean;
  limits?: Partial<ApiLimits>;
}

function openApiOptions(version: string) {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'ssmtun daemon API',
        version,
        description:
          'Local API of the ssmtun daemon. Reads are open on loopback; routes that change state or hand out credentials need `Authorization: Bearer <key>` (the key file in the state dir) or the unix socket.',
      },
      components: { securitySchemes: { apiKey: { type: 'http' as const, scheme: 'bearer' } } },
    },
  };
}

/** The OpenAPI 3 document of every route, from a throw-away copy of the API that never listens. */
async function openApiDocument(deps: ApiDeps): Promise<unknown> {
  const copy = buildApi({ ...deps, logger: undefined, openapi: true });
  await copy.ready();
  const doc = copy.swagger();
  await copy.close();
  return doc;
}

const STATUS_BY_CODE: Partial<Record<TunnelErrorCode, number>> = {
  TUNNEL_NOT_FOUND: 404,
  DB_USER_MISSING: 409,
  REMOTE_HOST_MISSING: 409,
  LISTEN_FAILED: 409,
  TUNNEL_STOPPED: 409,
  TUNNEL_EXISTS: 409,
  TUNNEL_FROM_CONFIG: 409,
};

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
    frameworkErrors: (err, _req, reply) => {
      (reply as unknown as { status(n: number): { send(b: unknown): void } })
        .status(400)
        .send({ code: 'BAD_REQUEST', message: err.message });
    },
  }) as unknown as FastifyInstance;
  app.server.maxConnections = limits.maxConnections;
  // Malformed HTTP never reaches a route: answer it in the same JSON shape (instead of fastify's own).
  app.server.removeAllListeners('clientError');
  app.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({
      code: status === 431 ? 'HEADERS_TOO_LARGE' : status === 408 ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST',
      message: err.message,
    });
    socket.end(
      `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  // The OpenAPI document is made on demand by a copy of the API with the swagger plugin (see
  // openApiDocument): a daemon nobody asks for it does not keep the plugin's per-route copies.
  if (deps.openapi) app.register(swagger, openApiOptions(deps.version));
  registerSecurity(app, deps.trusted ? undefined : deps.port);
  registerAuth(app, {
    apiKey: deps.apiKey,
    trusted: deps.trusted ?? false,
    keyFile: deps.keyFile,
    socketPath: deps.socketPath,
  });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof TunnelError) {
      const status = STATUS_BY_CODE[err.code] ?? 502;
      return reply.status(status).send({ code: err.code, message: err.message, fix: err.fix });
    }
    if (err instanceof ConfigError) {
      const first = err.issues[0];
      return reply.status(400).send({
        code: err.code,
        message: err.message,
        fix: first?.fix,
        issues: err.issues.map((i) => ({ key: i.key, line: i.line, message: i.message, fix: i.fix })),
      });
    }
    const e = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (e.validation) return reply.status(400).send({ code: 'BAD_REQUEST', message: e.message });
    const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    return reply.status(status).send({ code: e.code ?? 'INTERNAL', message: e.message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` }),
  );

  // Routes load after the swagger plugin so that every one of them is in the OpenAPI document.
  app.register(async (api) => {
    healthRoutes(api, deps);
    tunnelRoutes(api, deps);
    tokenRoutes(api, deps);
    reloadRoutes(api, deps);
    eventRoutes(api, deps);
    metricsRoutes(api, deps);
    let doc: Promise<unknown> | undefined;
    api.get('/openapi.json', { schema: { hide: true } }, async () => {
      doc ??= openApiDocument(deps);
      return doc;
    });
  });
  return app;
}
