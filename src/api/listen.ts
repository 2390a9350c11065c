/**
 * The API on both loopback addresses, like the tunnels. Listening on 127.0.0.1 alone would let another
 * local user bind [::1]:<port> and answer every client that resolves `localhost` to ::1 first, so a
 * taken ::1 is an error, not a warning; only a machine without IPv6 at all is allowed to skip it.
 */
import http from 'node:http';
import type { FastifyInstance } from 'fastify';

export class ApiListenError extends Error {
  readonly code = 'API_LISTEN_FAILED';
  constructor(
    message: string,
    readonly fix: string,
    readonly errno?: string,
  ) {
    super(message);
  }
}

function listenOn(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Listens on 127.0.0.1:port and [::1]:port; returns a function that closes the second listener. */
export async function listenLoopback(app: FastifyInstance, port: number): Promise<() => Promise<void>> {
  try {
    await app.listen({ host: '127.0.0.1', port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ApiListenError(
      `the API cannot listen on 127.0.0.1:${port}: ${code ?? (e as Error).message}`,
      code === 'EADDRINUSE'
        ? `another program holds the port (see: ss -ltnp 'sport = :${port}'); set [daemon] api_port to a free port`
        : 'set [daemon] api_port to a free port above 1024',
      code,
    );
  }
  const v6 = http.createServer((req, res) => app.routing(req, res));
  // Same limits and the same JSON answer to malformed HTTP as the primary server.
  v6.requestTimeout = app.server.requestTimeout;
  v6.headersTimeout = app.server.headersTimeout;
  v6.keepAliveTimeout = app.server.keepAliveTimeout;
  v6.maxConnections = app.server.maxConnections;
  for (const l of app.server.listeners('clientError')) v6.on('clientError', l as (...a: unknown[]) => void);
  try {
    await listenOn(v6, '::1', port);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT') return async () => {};
    await app.close();
    throw new ApiListenError(
      `the API cannot listen on [::1]:${port}: ${code ?? (e as Error).message}`,
      `something else holds [::1]:${port} (see: ss -ltnp 'sport = :${port}'); set [daemon] api_port to a free port`,
      code,
    );
  }
  return () =>
    new Promise<void>((resolve) => {
      v6.close(() => resolve());
      v6.closeAllConnections();
    });
}
