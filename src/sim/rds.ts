/**
 * The simulated RDS PostgreSQL front: what an RDS instance with IAM authentication and
 * rds.force_ssl=1 does before a session starts, in front of a real local PostgreSQL (trust auth).
 *
 * Per connection: SSLRequest gets 'S' and a TLS handshake with a certificate for the RDS host name;
 * GSSENCRequest gets 'N'; a plaintext StartupMessage gets RDS's pg_hba refusal; a CancelRequest is
 * passed on to the upstream as is. Inside TLS the front asks for a cleartext password and accepts it
 * only if it is a valid IAM token for this endpoint and the startup user (rds-token.ts). Users listed
 * in `passwordUsers` stand for roles without `GRANT rds_iam`: they are asked for SCRAM and always fail.
 * Once accepted, the client's own StartupMessage goes to the upstream and the front becomes a byte
 * pipe. Tokens are never logged.
 */

import net from 'node:net';
import tls from 'node:tls';
import { type Logger, pino } from 'pino';
import {
  authenticationCleartextPassword,
  authenticationSasl,
  errorResponse,
  MessageReader,
  PgWireError,
  parsePasswordMessage,
  parseStartupPacket,
  type StartupPacket,
} from '../shared/pg-wire.js';
import { startLoopbackServer } from './loopback-server.js';
import { type RdsTokenRefusal, verifyRdsToken } from './rds-token.js';
import type { SimCredential } from './sigv4.js';

/** What both simulated RDS fronts (PostgreSQL here, MySQL in rds-mysql.ts) are given. */
export interface RdsEndpointOptions {
  /** The RDS DNS name (certificate name, and the host tokens must be signed for). */
  host: string;
  /** The advertised port tokens must be signed for (5432, 3306), not the loopback port the front listens on. */
  port: number;
  region: string;
  /** The real database behind the front; it must let 127.0.0.1 in without a password. */
  upstream: { host: string; port: number };
  credentials: readonly SimCredential[];
  /** PEM certificate for `host` and its key. */
  tls: { cert: string; key: string };
  /** Clock for token expiry (epoch ms). */
  now?: () => number;
  /** Connections still not logged in after this long are closed (the engine's own login timeout). */
  authTimeoutMs?: number;
  logger?: Logger;
}

export interface RdsFrontOptions extends RdsEndpointOptions {
  /** Users without rds_iam: offered SCRAM-SHA-256, never accepted. */
  passwordUsers?: readonly string[];
}

/** Token refusals, plus: a role without rds_iam, no user in the startup packet, bytes that break the protocol, upstream unreachable. */
export type RdsRefusalReason = RdsTokenRefusal | 'password-user' | 'no-user' | 'protocol' | 'upstream';

export interface RdsFrontStats {
  logins: number;
  refusals: Array<{ user: string; reason: RdsRefusalReason; sqlstate: string }>;
  plaintextRefused: number;
  cancels: number;
}

export interface RdsFront {
  /** Loopback port the front listens on (127.0.0.1). */
  port: number;
  stats: RdsFrontStats;
  close(): Promise<void>;
}

const MAX_REFUSALS_KEPT = 1000;
const UPSTREAM_DIAL_TIMEOUT_MS = 10_000;

export async function startRdsFront(opts: RdsFrontOptions): Promise<RdsFront> {
  const log = opts.logger ?? pino({ level: 'silent' });
  const stats: RdsFrontStats = { logins: 0, refusals: [], plaintextRefused: 0, cancels: 0 };
  const secureContext = tls.createSecureContext({ cert: opts.tls.cert, key: opts.tls.key });
  const passwordUsers = new Set(opts.passwordUsers ?? []);
  const sockets = new Set<net.Socket>();
  const track = <T extends net.Socket>(s: T): T => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    return s;
  };

  const refuse = (
    sock: net.Socket,
    user: string,
    reason: RdsRefusalReason,
    fields: Parameters<typeof errorResponse>[0],
  ) => {
    if (stats.refusals.length >= MAX_REFUSALS_KEPT) stats.refusals.shift();
    stats.refusals.push({ user, reason, sqlstate: fields.code });
    log.info({ user, reason, sqlstate: fields.code, detail: fields.detail }, 'login refused');
    fatal(sock, fields);
  };

  const dialUpstream = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const up = track(net.connect({ host: opts.upstream.host, port: opts.upstream.port }));
      up.setTimeout(UPSTREAM_DIAL_TIMEOUT_MS, () => up.destroy(new Error('connection timed out')));
      up.once('connect', () => {
        up.setTimeout(0);
        up.off('error', reject);
        resolve(up);
      });
      up.once('error', reject);
    });

  const forwardCancel = (raw: Buffer) => {
    stats.cancels++;
    // PostgreSQL answers a cancel with nothing; the upstream decides whether the key matches.
    dialUpstream().then(
      (up) => up.end(raw),
      (err: Error) => log.warn({ err: err.message }, 'could not forward a cancel request'),
    );
  };

  /** Inside TLS: one StartupMessage, then the password exchange. */
  const loginOverTls = (sock: tls.TLSSocket, loggedIn: () => void) => {
    const reader = new MessageReader();
    let startup: Extract<StartupPacket, { kind: 'startup' }> | undefined;
    let phase: 'startup' | 'password' | 'sasl' | 'verifying' | 'done' = 'startup';
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      try {
        step();
      } catch (err) {
        protocolError(err);
      }
    };
    const protocolError = (err: unknown) => {
      if (phase === 'done') return;
      phase = 'done';
      const e = err instanceof PgWireError ? err : new PgWireError('PG_WIRE_MALFORMED', String(err), '08P01');
      refuse(sock, startup?.user ?? '', 'protocol', {
        severity: 'FATAL',
        code: e.sqlstate,
        message: e.message,
      });
    };
    const step = () => {
      if (phase === 'startup') {
        const raw = reader.nextStartup();
        if (!raw) return;
        const packet = parseStartupPacket(raw);
        if (packet.kind === 'cancel') {
          phase = 'done';
          forwardCancel(packet.raw);
          sock.end();
          return;
        }
        if (packet.kind !== 'startup') {
          // What PostgreSQL says to a second SSLRequest/GSSENCRequest once encryption is on.
          const code = packet.kind === 'ssl' ? '1234.5679' : '1234.5680';
          throw new PgWireError(
            'PG_WIRE_UNSUPPORTED_PROTOCOL',
            `unsupported frontend protocol ${code}: server supports 3.0 to 3.0`,
            '0A000',
          );
        }
        startup = packet;
        const user = packet.user ?? '';
        if (user === '') {
          phase = 'done';
          refuse(sock, '', 'no-user', {
            severity: 'FATAL',
            code: '28000',
            message: 'no PostgreSQL user name specified in startup packet',
          });
          return;
        }
        if (passwordUsers.has(user)) {
          phase = 'sasl';
          sock.write(authenticationSasl(['SCRAM-SHA-256']));
        } else {
          phase = 'password';
          sock.write(authenticationCleartextPassword());
        }
      }
      if (phase === 'sasl' || phase === 'password') {
        const msg = reader.nextTyped();
        if (!msg || !startup) return;
        const user = startup.user ?? '';
        if (phase === 'sasl') {
          // The role has a password we do not know (no rds_iam): PostgreSQL's answer for any response.
          phase = 'done';
          refuse(sock, user, 'password-user', {
            severity: 'FATAL',
            code: '28P01',
            message: `password authentication failed for user "${user}"`,
          });
          return;
        }
        const token = parsePasswordMessage(msg);
        phase = 'verifying';
        void verify(sock, startup, token, reader);
      }
    };
    sock.on('data', onData);
    const verify = async (
      s: tls.TLSSocket,
      packet: Extract<StartupPacket, { kind: 'startup' }>,
      token: string,
      r: MessageReader,
    ) => {
      const user = packet.user ?? '';
      const result = await verifyRdsToken({
        token,
        user,
        endpoint: { host: opts.host, port: opts.port, region: opts.region },
        credentials: opts.credentials,
        now: (opts.now ?? Date.now)(),
      });
      phase = 'done';
      if (s.destroyed) return;
      if (!result.ok) {
        refuse(s, user, result.reason, {
          severity: 'FATAL',
          code: '28P01',
          message: `PAM authentication failed for user "${user}"`,
          detail: result.detail,
        });
        return;
      }
      s.off('data', onData);
      s.pause();
      let up: net.Socket;
      try {
        up = await dialUpstream();
      } catch (err) {
        refuse(s, user, 'upstream', {
          severity: 'FATAL',
          code: '08006',
          message: `could not connect to the database behind the simulated RDS endpoint ${opts.host} (${opts.upstream.host}:${opts.upstream.port}): ${(err as Error).message}`,
        });
        return;
      }
      if (s.destroyed) {
        up.destroy();
        return;
      }
      stats.logins++;
      log.info(
        { user, database: packet.database ?? user, accessKeyId: result.accessKeyId },
        'IAM login accepted',
      );
      loggedIn();
      up.write(packet.raw);
      const rest = r.takeRemaining();
      if (rest.length > 0) up.write(rest);
      pipe(s, up);
      s.resume();
    };
  };

  const onConnection = (raw: net.Socket) => {
    track(raw);
    const timer = setTimeout(() => raw.destroy(), opts.authTimeoutMs ?? 60_000);
    timer.unref();
    raw.on('close', () => clearTimeout(timer));
    const reader = new MessageReader();
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      try {
        for (;;) {
          const bytes = reader.nextStartup();
          if (!bytes) return;
          const packet = parseStartupPacket(bytes);
          if (packet.kind === 'gssenc') {
            raw.write('N');
            continue;
          }
          raw.off('data', onData);
          if (packet.kind === 'cancel') {
            forwardCancel(packet.raw);
            raw.end();
            return;
          }
          if (packet.kind === 'startup') {
            stats.plaintextRefused++;
            const user = packet.user ?? '';
            log.info({ user }, 'plaintext login refused (rds.force_ssl)');
            fatal(raw, {
              severity: 'FATAL',
              code: '28000',
              message: `no pg_hba.conf entry for host "127.0.0.1", user "${user}", database "${packet.database ?? user}", no encryption`,
            });
            return;
          }
          // SSLRequest. Bytes pipelined behind it would be read as plaintext inside TLS
          // (CVE-2021-23214): PostgreSQL refuses them, so do we.
          if (reader.buffered > 0) {
            fatal(raw, {
              severity: 'FATAL',
              code: '08P01',
              message: 'received unencrypted data after SSL request',
            });
            return;
          }
          // The client sends its ClientHello only after reading 'S', so nothing is buffered in `raw`
          // when TLS takes over its handle (created synchronously for that reason).
          raw.write('S');
          const secure = track(new tls.TLSSocket(raw, { isServer: true, secureContext }));
          secure.once('secure', () => loginOverTls(secure, () => clearTimeout(timer)));
          secure.on('error', (err) => log.debug({ err: err.message }, 'TLS connection error'));
          return;
        }
      } catch (err) {
        raw.off('data', onData);
        const e =
          err instanceof PgWireError ? err : new PgWireError('PG_WIRE_MALFORMED', String(err), '08P01');
        fatal(raw, { severity: 'FATAL', code: e.sqlstate, message: e.message });
      }
    };
    raw.on('data', onData);
  };

  const { port, close } = await startLoopbackServer(onConnection, sockets);
  log.info({ host: opts.host, port }, 'simulated RDS front listening');
  return { port, stats, close };
}

function fatal(sock: net.Socket, fields: Parameters<typeof errorResponse>[0]): void {
  if (sock.destroyed) return;
  sock.end(errorResponse(fields));
}

/** After the login: bytes both ways, unparsed; either side ending or failing ends the other. */
function pipe(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}
