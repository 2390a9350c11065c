/**
 * `POST /reload`: re-read the config file and apply only the difference, as SIGHUP does. A config with
 * errors is refused as a whole (400 with every issue, file:line and fix) and the running set stays.
 */
import type { FastifyInstance } from 'fastify';
import { TunnelError } from '../../daemon/errors.js';
import { errorResponses } from '../schemas.js';
import type { ApiDeps } from '../server.js';

export interface ReloadResult {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

const names = { type: 'array', items: { type: 'string' } } as const;

export function reloadRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post(
    '/reload',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: { added: names, removed: names, changed: names, unchanged: names },
            required: ['added', 'removed', 'changed', 'unchanged'],
          },
          ...errorResponses,
        },
      },
    },
    async () => {
      if (!deps.reload) throw new TunnelError('TUNNEL_STOPPED', 'this daemon has no config file to reload');
      return deps.reload();
    },
  );
}
