/**
 * Who may use the routes that hand out credentials or change state: a caller that shows the API key
 * (`Authorization: Bearer <key>`, the key being a random secret in a 0600 file of the user's state dir),
 * or any caller on the daemon's unix socket (its 0700 directory already says "same user").
 *
 * Loopback TCP alone proves nothing: every local user and every web page the user visits can reach it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { writeFileAtomic } from '../daemon/atomic-file.js';

export class ApiKeyError extends Error {
  constructor(
    readonly code: 'API_KEY_INSECURE' | 'API_KEY_UNREADABLE' | 'API_KEY_INVALID',
    message: string,
    readonly fix: string,
  ) {
    super(message);
    this.name = 'ApiKeyError';
  }
}

const KEY_RE = /^[A-Za-z0-9_-]{32,128}$/;

/** Reads the key file, refusing one that others can read; never creates anything. */
export function readApiKey(file: string): string {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch (e) {
    throw new ApiKeyError(
      'API_KEY_UNREADABLE',
      `cannot read the API key file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'start the daemon once (it creates the key), or use the unix socket',
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new ApiKeyError(
      'API_KEY_INSECURE',
      `the API key file ${file} is readable by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`,
      `run: chmod 600 '${file}' (or delete it so the daemon makes a new key)`,
    );
  }
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new ApiKeyError(
      'API_KEY_INSECURE',
      `the API key file ${file} belongs to uid ${st.uid}, not to you`,
      `delete it so the daemon makes a new key: rm '${file}'`,
    );
  }
  const key = readFileSync(file, 'utf8').trim();
  if (!KEY_RE.test(key)) {
    throw new ApiKeyError(
      'API_KEY_INVALID',
      `the API key file ${file} does not hold a key`,
      `delete it so the daemon makes a new key: rm '${file}'`,
    );
  }
  return key;
}

/** The daemon's key: made at first start (0600, atomic), then reused so scripts keep working. */
export function loadOrCreateApiKey(file: string): string {
  try {
    statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    writeFileAtomic(file, `${randomBytes(32).toString('base64url')}\n`, 0o600);
  }
  // Read back what is there: two daemons starting at once must end up with the same key.
  return readApiKey(file);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant time whatever the lengths: compare digests, never the strings. */
export function keyMatches(provided: string, key: string): boolean {
  return timingSafeEqual(digest(provided), digest(key));
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

/**
 * Connections accepted on the unix socket. One fastify instance serves TCP and the socket (a second
 * instance would cost ~5 MB of compiled schemas), so trust is a property of the connection.
 */
const trustedSockets = new WeakSet<object>();

export function markTrusted(socket: object): void {
  trustedSockets.add(socket);
}

export function isTrusted(req: FastifyRequest): boolean {
  return trustedSockets.has(req.raw.socket);
}

export interface AuthOptions {
  /** undefined: no key configured, so only the unix socket may use protected routes. */
  apiKey?: string;
  /** Every request is trusted (tests of the routes alone). */
  trusted: boolean;
  keyFile?: string;
  socketPath?: string;
}

/** Reads are open (`curl localhost:7711/tunnels`); writes and routes marked `config.auth` need the key. */
export function registerAuth(app: FastifyInstance, opts: AuthOptions): void {
  app.addHook('onRequest', async (req, reply) => {
    if (opts.trusted || isTrusted(req)) return;
    const config = req.routeOptions.config as { auth?: boolean } | undefined;
    const protectedRoute = config?.auth === true || (req.method !== 'GET' && req.method !== 'HEAD');
    if (!protectedRoute) return;
    const provided = bearer(req);
    if (provided !== undefined && opts.apiKey !== undefined && keyMatches(provided, opts.apiKey)) return;
    const how = [
      opts.keyFile ? `send Authorization: Bearer $(cat '${opts.keyFile}')` : undefined,
      opts.socketPath
        ? `use the unix socket: curl --unix-socket '${opts.socketPath}' http://localhost${req.url}`
        : undefined,
    ]
      .filter(Boolean)
      .join(', or ');
    return reply.status(401).send({
      code: provided === undefined ? 'API_KEY_REQUIRED' : 'API_KEY_WRONG',
      message:
        provided === undefined
          ? `${req.method} ${req.url} needs the daemon's API key`
          : "the API key does not match the daemon's",
      fix: how || 'use the ssmtun CLI, which finds the key itself',
    });
  });
}
