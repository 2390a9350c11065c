/**
 * How to log in to a tunnel's database. `GET /tunnels/:name/connection` is open (no secrets);
 * `GET /tunnels/:name/token` adds a fresh RDS IAM token and so needs the API key or the unix socket.
 * `host` is the real endpoint name (TLS verify-full checks it), `hostaddr` where the tunnel listens.
 */
import type { FastifyInstance } from 'fastify';
import { connectionInfo } from '../../daemon/connection.js';
import { TunnelError } from '../../daemon/errors.js';
import { errorResponses, nameParams } from '../schemas.js';
import type { ApiDeps } from '../server.js';

const connectionProperties = {
  tunnel: { type: 'string' },
  engine: { type: 'string', enum: ['postgres', 'mysql'] },
  host: { type: 'string', description: 'the real database endpoint name (TLS checks it)' },
  hostaddr: { type: 'string', description: 'where the tunnel listens' },
  port: { type: 'integer', description: "the tunnel's local port" },
  remotePort: { type: 'integer' },
  user: { type: 'string' },
  database: { type: 'string' },
  region: { type: 'string' },
  sslmode: { type: 'string' },
  sslrootcert: { type: 'string', description: 'PEM bundle to verify the server certificate' },
  iam: { type: 'boolean', description: 'an IAM token can be signed (db_user and remote_host are set)' },
} as const;
const connectionRequired = ['tunnel', 'engine', 'host', 'hostaddr', 'port', 'sslmode', 'sslrootcert', 'iam'];

export const connectionResponse = {
  type: 'object',
  properties: connectionProperties,
  required: connectionRequired,
} as const;

export const tokenResponse = {
  type: 'object',
  properties: {
    ...connectionProperties,
    token: { type: 'string' },
    expiresAt: { type: 'string', format: 'date-time' },
  },
  required: [...connectionRequired, 'token', 'expiresAt', 'user'],
} as const;

export function tokenRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get(
    '/tunnels/:name/connection',
    { schema: { params: nameParams, response: { 200: connectionResponse, ...errorResponses } } },
    async (req) => connectionInfo(deps.manager.require((req.params as { name: string }).name).config),
  );

  app.get(
    '/tunnels/:name/token',
    {
      config: { auth: true },
      schema: { params: nameParams, response: { 200: tokenResponse, ...errorResponses } },
    },
    async (req) => {
      const { config } = deps.manager.require((req.params as { name: string }).name);
      if (!deps.tokens) throw new TunnelError('TOKEN_FAILED', 'this daemon runs without a token service');
      const tok = await deps.tokens.get(config);
      return { ...connectionInfo(config), token: tok.token, expiresAt: tok.expiresAt.toISOString() };
    },
  );
}
