/**
 * The PostgreSQL front of an `auth = "iam"` tunnel, one call per local connection: the client logs in
 * as if the server trusted it (no password asked, any password ignored), while the front signs in to
 * RDS over TLS verify-full with a fresh IAM token and then becomes a byte pipe both ways. Every
 * failure reaches the client as a PostgreSQL ErrorResponse with a SQLSTATE, an `ssmtun:` message and
 * the fix as HINT, so any client (psql, JDBC, a GUI) shows a readable reason. Tokens are never logged.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { TunnelConfig } from '../config.js';
import { fromFailure, PgFrontError, toErrorResponse } from './errors.js';
import { readLocalStartup } from './local.js';
import { refuseOtherUsers } from './peer-uid.js';
import type { PgFrontStats } from './stats.js';
import { loginUpstream, openUpstreamTls, ServerRefusal } from './upstream.js';

export interface PgFrontOptions {
  tunnel: TunnelConfig;
  /** Startup users let in: db_user and db_users (allowedUsersOf). */
  allowedUsers: readonly string[];
  /** A valid IAM token for this user at the tunnel's remote_host:remote_port. */
  token(user: string): Promise<string>;
  /** A new raw byte stream to the database through the tunnel (one per login or cancel). */
  openUpstream(): Promise<Duplex>;
  /** CA bundle (PEM) the database's certificate must chain to. */
  ca: Buffer | string;
  /** The database's real host name (remote_host): SNI and the certificate name checked. */
  servername: string;
  logger: Logger;
  stats: PgFrontStats;
  /** Whole login, from accept to ReadyForQuery (PostgreSQL's authentication_timeout is 60 s). */
  loginTimeoutMs?: number;
}

export type PgClientOutcome =
  | { kind: 'spliced'; user: string }
  | { kind: 'cancel'; forwarded: boolean }
  | { kind: 'refused'; reason: PgFrontError['reason']; code: string };

const DEFAULT_LOGIN_TIMEOUT_MS = 60_000;
/** After a FATAL the client is expected to hang up; this long at most. */
const LINGER_MS = 5_000;
const CANCEL_TIMEOUT_MS = 10_000;

/** db_user first, then db_users, without repeats. */
export function allowedUsersOf(t: TunnelConfig): string[] {
  return [...new Set([...(t.dbUser ? [t.dbUser] : []), ...(t.dbUsers ?? [])])];
}

/**
 * Serves one local connection until it is spliced to the database, refused, or its cancel passed on.
 * Never rejects; the connections are closed by the front in every case but 'spliced'.
 */
export async function handlePgClient(
  local: net.Socket | Duplex,
  opts: PgFrontOptions,
): Promise<PgClientOutcome> {
  const log = opts.logger.child({ tunnel: opts.tunnel.name });
  const streams = new Set<Duplex>();
  // A stream that shows up after the login failed (slow session start) is closed on arrival.
  const track = (s: Duplex) => {
    if (finished) s.destroy();
    else streams.add(s);
  };
  let finished = false;
  local.on('error', (err: Error) => log.debug({ err: err.message }, 'local connection error'));

  const closeAll = () => {
    for (const s of streams) s.destroy();
  };
  let failWith: ((e: PgFrontError) => void) | undefined;
  const timeoutMs = opts.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
  const timer = setTimeout(() => {
    failWith?.(
      new PgFrontError(
        'timeout',
        '08006',
        `the login through tunnel ${opts.tunnel.name} did not finish within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}`,
        'ssmtun status shows whether the tunnel session is up; try again',
      ),
    );
  }, timeoutMs);
  timer.unref();

  const refused = (e: PgFrontError | ServerRefusal, user?: string): PgClientOutcome => {
    finished = true;
    clearTimeout(timer);
    closeAll();
    opts.stats.loginFailures[e.reason]++;
    log.info(
      { user, reason: e.reason, ...(e instanceof PgFrontError && { code: e.code, sqlstate: e.sqlstate }) },
      `login refused: ${e.message}`,
    );
    if (!local.destroyed && e.reason !== 'client-closed') {
      local.end(e instanceof ServerRefusal ? e.response : toErrorResponse(e));
      setTimeout(() => local.destroy(), LINGER_MS).unref();
    } else {
      local.destroy();
    }
    return {
      kind: 'refused',
      reason: e.reason,
      code: e instanceof PgFrontError ? e.code : 'PGFRONT_SERVER_REFUSED',
    };
  };

  // Everything below races the timer and the client hanging up; the first failure wins.
  const failure = new Promise<PgFrontError>((resolve) => {
    failWith = resolve;
  });
  const guard = async <T>(p: Promise<T>): Promise<T> => {
    const r = await Promise.race([p.then((v) => ({ v })), failure.then((e) => ({ e }))]);
    if ('e' in r) throw r.e;
    return r.v;
  };

  const peerCheck =
    opts.tunnel.allowOtherUsers || !(local instanceof net.Socket)
      ? Promise.resolve(undefined)
      : refuseOtherUsers(local).catch(() => undefined);

  let user: string | undefined;
  try {
    const first = await guard(readLocalStartup(local));
    const otherUser = await guard(peerCheck);
    if (otherUser) {
      throw new PgFrontError(
        'other-os-user',
        '28000',
        otherUser,
        `connect as the user who runs ssmtun, or set allow_other_users = true in [tunnels.${opts.tunnel.name}]`,
      );
    }
    if (first.kind === 'cancel') {
      clearTimeout(timer);
      finished = true;
      return await forwardCancel(local, first.raw, opts, log);
    }
    user = first.packet.user ?? '';
    if (user === '') {
      throw new PgFrontError('no-user', '28000', 'no PostgreSQL user name specified in startup packet');
    }
    if (!opts.allowedUsers.includes(user)) {
      throw new PgFrontError(
        'user-not-allowed',
        '28000',
        `user "${user}" may not log in through tunnel ${opts.tunnel.name}; allowed users: ${opts.allowedUsers.join(', ') || '(none)'}`,
        `connect as ${opts.allowedUsers.length === 1 ? opts.allowedUsers[0] : `one of ${opts.allowedUsers.join(', ')}`}, or add "${user}" to db_users in [tunnels.${opts.tunnel.name}] (${opts.tunnel.source.file}${opts.tunnel.source.line > 0 ? `:${opts.tunnel.source.line}` : ''})`,
      );
    }
    local.on('close', () => {
      if (!finished)
        failWith?.(new PgFrontError('client-closed', '08006', 'the client went away during the login'));
    });

    // Sign and connect at once: the token is usually cached, the stream is the slow part.
    const loginUser = user;
    const token = opts.token(loginUser);
    // A token that cannot be had (SSO expired) fails the login at once, not after the stream is up.
    token.catch((err) =>
      failWith?.(fromFailure(err, 'token', `could not get an IAM token for ${loginUser}`)),
    );
    const sock: tls.TLSSocket = await guard(
      openUpstreamTls({ openUpstream: opts.openUpstream, ca: opts.ca, servername: opts.servername, track }),
    );
    const login = await guard(loginUpstream(sock, first.packet.raw, loginUser, () => token));

    finished = true;
    clearTimeout(timer);
    opts.stats.logins++;
    log.info({ user, database: first.packet.database ?? user }, 'IAM login through the front');
    local.write(login.toClient);
    if (first.rest.length > 0) sock.write(first.rest);
    splice(local, sock);
    return { kind: 'spliced', user };
  } catch (err) {
    if (err instanceof PgFrontError || err instanceof ServerRefusal) return refused(err, user);
    return refused(
      new PgFrontError(
        'upstream',
        '08006',
        `unexpected failure: ${(err as Error).message}`,
        'see the daemon log',
      ),
      user,
    );
  }
}

/** After the login: bytes both ways with no parsing; either side closing or failing closes the other. */
function splice(local: Duplex, upstream: tls.TLSSocket): void {
  upstream.on('error', () => {});
  local.pipe(upstream);
  upstream.pipe(local);
  local.once('close', () => upstream.destroy());
  upstream.once('close', () => local.destroy());
  upstream.resume();
  local.resume();
}

/**
 * A CancelRequest on its own connection (psql's Ctrl-C, JDBC timeouts). The keys the client holds are
 * the server's own (BackendKeyData was passed through), so the request goes upstream unchanged, over
 * TLS on a new stream. PostgreSQL answers a cancel with nothing but closing, and so does the front.
 */
async function forwardCancel(
  local: Duplex,
  raw: Buffer,
  opts: PgFrontOptions,
  log: Logger,
): Promise<PgClientOutcome> {
  opts.stats.cancels++;
  const streams = new Set<Duplex>();
  const timer = setTimeout(() => {
    for (const s of streams) s.destroy();
  }, CANCEL_TIMEOUT_MS);
  timer.unref();
  let forwarded = false;
  try {
    const sock = await openUpstreamTls({
      openUpstream: opts.openUpstream,
      ca: opts.ca,
      servername: opts.servername,
      track: (s) => streams.add(s),
    });
    await new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.end(raw);
      sock.resume();
    });
    forwarded = true;
    log.debug('cancel request passed on');
  } catch (err) {
    opts.stats.cancelFailures++;
    log.warn({ err: (err as Error).message }, 'could not pass a cancel request on');
  } finally {
    clearTimeout(timer);
    for (const s of streams) s.destroy();
    local.end();
    setTimeout(() => local.destroy(), LINGER_MS).unref();
  }
  return { kind: 'cancel', forwarded };
}
