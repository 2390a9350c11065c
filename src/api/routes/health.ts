/**
 * Health the way Cloud SQL Auth Proxy and Kubernetes-style supervisors expect it: /startup (the daemon
 * finished starting), /readiness (every tunnel is listening; 503 with the reasons otherwise), /liveness
 * (the event loop answers). /health stays for scripts; `service` tells ssmtun apart from other programs.
 */
import type { FastifyInstance } from 'fastify';
import { errorSchema } from '../schemas.js';
import type { ApiDeps } from '../server.js';

const healthSchema = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    service: { type: 'string', const: 'ssmtun' },
    version: { type: 'string' },
    pid: { type: 'integer' },
    tunnels: { type: 'integer' },
  },
  required: ['ok', 'service', 'version', 'pid', 'tunnels'],
} as const;

const probeSchema = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    reasons: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          tunnel: { type: 'string' },
          state: { type: 'string' },
          code: { type: 'string' },
          message: { type: 'string' },
        },
      },
    },
  },
  required: ['ok'],
} as const;

export function healthRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/health', { schema: { response: { 200: healthSchema } } }, async () => ({
    ok: true,
    service: 'ssmtun',
    version: deps.version,
    pid: process.pid,
    tunnels: deps.manager.list().length,
  }));

  app.get('/liveness', { schema: { response: { 200: probeSchema } } }, async () => ({ ok: true }));

  app.get(
    '/startup',
    { schema: { response: { 200: probeSchema, 503: probeSchema } } },
    async (_req, reply) => {
      const ok = deps.started?.() ?? true;
      return reply.status(ok ? 200 : 503).send({ ok });
    },
  );

  app.get(
    '/readiness',
    { schema: { response: { 200: probeSchema, 503: probeSchema, 500: errorSchema } } },
    async (_req, reply) => {
      const reasons: Array<{ tunnel: string; state: string; code?: string; message?: string }> = deps.manager
        .list()
        .filter((t) => t.listening.length === 0)
        .map((t) => ({
          tunnel: t.name,
          state: t.state,
          ...(t.lastError && { code: t.lastError.code, message: t.lastError.message }),
        }));
      const started = deps.started?.() ?? true;
      if (!started) reasons.unshift({ tunnel: '', state: 'starting' });
      return reply.status(reasons.length === 0 ? 200 : 503).send({ ok: reasons.length === 0, reasons });
    },
  );
}
