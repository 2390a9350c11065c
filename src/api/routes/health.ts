/** Liveness for scripts and service managers; `service` tells ssmtun apart from other programs on the port. */
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../server.js';

export function healthRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/health', async () => ({
    ok: true,
    service: 'ssmtun',
    version: deps.version,
    pid: process.pid,
    tunnels: deps.manager.list().length,
  }));
}
