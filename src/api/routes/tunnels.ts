/** The tunnels: list and status are open to read; open/close change state and need the key. */
import type { FastifyInstance } from 'fastify';
import { errorResponses, nameParams } from '../schemas.js';
import type { ApiDeps } from '../server.js';

export function tunnelRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/tunnels', async () => ({ tunnels: deps.manager.list() }));

  app.get('/tunnels/:name', { schema: { params: nameParams, response: errorResponses } }, async (req) => {
    const { name } = req.params as { name: string };
    return deps.manager.require(name).status();
  });

  app.post(
    '/tunnels/:name/open',
    { schema: { params: nameParams, response: errorResponses } },
    async (req) => {
      const { name } = req.params as { name: string };
      return deps.manager.open(name);
    },
  );

  app.post(
    '/tunnels/:name/close',
    { schema: { params: nameParams, response: errorResponses } },
    async (req) => {
      const { name } = req.params as { name: string };
      return deps.manager.close(name);
    },
  );
}
