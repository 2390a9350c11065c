/**
 * The local HTTP API (127.0.0.1 and the user's unix socket). Built by a factory so tests use
 * `app.inject()`; it reads the daemon only through the TunnelManager and the TokenService. Errors are
 * JSON `{ code, message, fix? }` with a status that says whose fault it is.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { TunnelError, type TunnelErrorCode } from '../daemon/errors.js';
import type { TunnelManager } from '../daemon/manager.js';
import type { TokenService } from '../daemon/tokens.js';
import { registerAuth } from './auth.js';
import { healthRoutes } from './routes/health.js';
import { tokenRoutes } from './routes/tokens.js';
import { tunnelRoutes } from './routes/tunnels.js';
import { registerSecurity } from './security.js';

export interface ApiDeps {
  manager: TunnelManager;
  tokens?: TokenService;
  logger?: Logger;
  version: string;
  /** The key protected routes require over TCP; without one they answer only on the unix socket. */
  apiKey?: string;
  /** Set for the instance that serves the unix socket (same user by the directory's mode). */
  trusted?: boolean;
  keyFile?: string;
  socketPath?: string;
}

const STATUS_BY_CODE: Partial<Record<TunnelErrorCode, number>> = {
  TUNNEL_NOT_FOUND: 404,
  DB_USER_MISSING: 409,
  REMOTE_HOST_MISSING: 409,
  LISTEN_FAILED: 409,
  TUNNEL_STOPPED: 409,
};

export function buildApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({
    // Request lines at info would drown the tunnel logs; the API logs only its warnings and errors.
    loggerInstance: deps.logger?.child({ component: 'api' }, { level: 'warn' }) as
      | FastifyBaseLogger
      | undefined,
  }) as unknown as FastifyInstance;
  registerSecurity(app);
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
    const e = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (e.validation) return reply.status(400).send({ code: 'BAD_REQUEST', message: e.message });
    const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    return reply.status(status).send({ code: e.code ?? 'INTERNAL', message: e.message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` }),
  );

  healthRoutes(app, deps);
  tunnelRoutes(app, deps);
  tokenRoutes(app, deps);
  return app;
}
