/**
 * The API listens on loopback, but any web page the user visits can still send requests to
 * localhost. Refuse what a browser would send: a Host that is not ours (DNS rebinding) and any
 * Origin or cross-site Sec-Fetch-Site (CSRF).
 */
import type { FastifyInstance } from 'fastify';
import { isTrusted } from './auth.js';

const LOCAL_HOST_RE = /^(localhost|127\.0\.0\.1|\[::1\])(?::(\d+))?$/i;

/**
 * `port`: the TCP port this instance serves; a Host naming another port is a rebinding attempt against
 * some other local service's origin. Unix-socket instances pass none.
 */
export function registerSecurity(app: FastifyInstance, port?: number): void {
  app.addHook('onRequest', async (req, reply) => {
    const host = req.headers.host ?? '';
    const m = LOCAL_HOST_RE.exec(host);
    // On the unix socket there is no port to name (curl sends `Host: localhost`).
    if (!m || (port !== undefined && !isTrusted(req) && Number(m[2]) !== port)) {
      return reply
        .status(403)
        .send({ code: 'FORBIDDEN_HOST', message: `Host ${JSON.stringify(host)} is not allowed` });
    }
    // Only browsers send Origin, and no page, not even one served from localhost (any dev server),
    // may drive the daemon: the CLI and curl never send it.
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if (origin !== undefined || (site && site !== 'none')) {
      return reply
        .status(403)
        .send({ code: 'FORBIDDEN_ORIGIN', message: 'browser requests are not allowed' });
    }
  });
}
