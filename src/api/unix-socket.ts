/**
 * The API's unix socket: the way the CLI talks to its own user's daemon without a key. What makes it
 * safe is the 0700 directory it lives in (only the owner can reach the socket), so the directory is
 * created or tightened here and a directory owned by someone else is refused.
 */
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { markTrusted } from './auth.js';

export class SocketDirError extends Error {
  readonly code = 'API_SOCKET_UNSAFE';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

export function prepareSocketDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new SocketDirError(`${dir} is not a directory`, `remove it: rm '${dir}'`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new SocketDirError(`${dir} belongs to uid ${st.uid}, not to you`, `remove it: rm -r '${dir}'`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** True when something accepts connections on the socket (another daemon of this user). */
export function socketInUse(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Serves `app` on `socketPath` too (its connections are trusted: no key needed), replacing a stale
 * socket file left by a daemon that crashed. Returns the function that closes it.
 */
export async function listenUnix(app: FastifyInstance, socketPath: string): Promise<() => Promise<void>> {
  prepareSocketDir(path.dirname(socketPath));
  if (await socketInUse(socketPath)) {
    throw new SocketDirError(
      `another ssmtun daemon already answers on ${socketPath}`,
      'stop it first (ssmtun service stop, or kill the other daemon), or give this one its own XDG_RUNTIME_DIR',
    );
  }
  rmSync(socketPath, { force: true });
  await app.ready();
  const server = http.createServer((req, res) => app.routing(req, res));
  server.requestTimeout = app.server.requestTimeout;
  server.headersTimeout = app.server.headersTimeout;
  server.keepAliveTimeout = app.server.keepAliveTimeout;
  server.maxConnections = app.server.maxConnections;
  for (const l of app.server.listeners('clientError'))
    server.on('clientError', l as (...a: unknown[]) => void);
  server.on('connection', (s) => markTrusted(s));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: socketPath }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(socketPath, 0o600);
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => {
        rmSync(socketPath, { force: true });
        resolve();
      });
      server.closeAllConnections();
    });
}
