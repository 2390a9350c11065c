/**
 * The tunnels: list and status are open to read; adding, changing, removing, opening and closing
 * change state and need the key (or the unix socket). Tunnels from the config file are changed by
 * editing the file and `ssmtun reload`; the API says so, with the file and line.
 */
import type { FastifyInstance } from 'fastify';
import { TunnelError } from '../../daemon/errors.js';
import type { TunnelStatus } from '../../daemon/tunnel.js';
import {
  errorResponses,
  nameParams,
  tunnelBodySchema,
  tunnelPatchSchema,
  tunnelStatusSchema,
} from '../schemas.js';
import type { ApiDeps } from '../server.js';

export function tunnelRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const withOrigin = (s: TunnelStatus) => ({
    ...s,
    origin: deps.runtime?.isApiMade(s.name) ? 'api' : 'config',
  });
  const runtime = () => {
    if (!deps.runtime)
      throw new TunnelError('TUNNEL_FROM_CONFIG', 'this daemon takes tunnels from its config only');
    return deps.runtime;
  };
  const name = (req: { params: unknown }) => (req.params as { name: string }).name;

  app.get(
    '/tunnels',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: { tunnels: { type: 'array', items: tunnelStatusSchema } },
            required: ['tunnels'],
          },
        },
      },
    },
    async () => ({ tunnels: deps.manager.list().map(withOrigin) }),
  );

  app.get(
    '/tunnels/:name',
    { schema: { params: nameParams, response: { 200: tunnelStatusSchema, ...errorResponses } } },
    async (req) => withOrigin(deps.manager.require(name(req)).status()),
  );

  app.post(
    '/tunnels',
    { schema: { body: tunnelBodySchema, response: { 201: tunnelStatusSchema, ...errorResponses } } },
    async (req, reply) => {
      const { name: tunnel, ...raw } = req.body as { name: string } & Record<string, unknown>;
      const status = await runtime().add(tunnel, raw);
      return reply.status(201).send(withOrigin(status));
    },
  );

  app.patch(
    '/tunnels/:name',
    {
      schema: {
        params: nameParams,
        body: tunnelPatchSchema,
        response: { 200: tunnelStatusSchema, ...errorResponses },
      },
    },
    async (req) => withOrigin(await runtime().patch(name(req), req.body as Record<string, unknown>)),
  );

  app.delete(
    '/tunnels/:name',
    {
      schema: {
        params: nameParams,
        response: {
          200: { type: 'object', properties: { removed: { type: 'string' } }, required: ['removed'] },
          ...errorResponses,
        },
      },
    },
    async (req) => {
      await runtime().remove(name(req));
      return { removed: name(req) };
    },
  );

  app.post(
    '/tunnels/:name/open',
    { schema: { params: nameParams, response: { 200: tunnelStatusSchema, ...errorResponses } } },
    async (req) => withOrigin(await deps.manager.open(name(req))),
  );

  app.post(
    '/tunnels/:name/close',
    { schema: { params: nameParams, response: { 200: tunnelStatusSchema, ...errorResponses } } },
    async (req) => withOrigin(await deps.manager.close(name(req))),
  );
}
