/**
 * `GET /events`: server-sent events (text/event-stream) for tunnel state changes, errors, tunnels added
 * or removed, and reloads. Each event is `event: <type>` plus one JSON `data:` line; a comment line every
 * 15 s keeps proxies and idle timeouts from closing a quiet stream.
 */
import type { FastifyInstance } from 'fastify';
import type { DaemonEvent } from '../../daemon/events.js';
import type { ApiDeps } from '../server.js';

const KEEPALIVE_MS = 15_000;

export function eventRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get(
    '/events',
    {
      schema: {
        description:
          'Server-sent events: `state` {tunnel, state, previous}, `error` {tunnel, code, message, fix}, `added`/`removed` {tunnel}, `reload` {added, removed, changed, error}.',
        response: { 200: { type: 'string', description: 'text/event-stream' } },
      },
    },
    (req, reply) => {
      const hub = deps.events;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': ssmtun events\n\n');
      const send = (e: DaemonEvent) => res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
      // The current state first, so a client never has to race a GET against the stream.
      for (const t of deps.manager.list()) {
        send({
          type: 'state',
          tunnel: t.name,
          state: t.state,
          previous: t.state,
          at: new Date().toISOString(),
        });
      }
      hub?.on('event', send);
      const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
      keepalive.unref();
      req.raw.once('close', () => {
        clearInterval(keepalive);
        hub?.off('event', send);
      });
    },
  );
}
