/**
 * The simulated RDS MySQL front: what an RDS/Aurora MySQL instance with IAM authentication and
 * require_secure_transport=ON does before a session starts, in front of a real local MariaDB/MySQL whose
 * users have empty passwords.
 *
 * Per connection: a HandshakeV10 offering TLS; a HandshakeResponse without the TLS upgrade gets error
 * 3159 (insecure transport prohibited). Inside TLS (certificate for the RDS host name) the client's
 * HandshakeResponse41 is answered with an AuthSwitchRequest to mysql_clear_password, as RDS's
 * AWSAuthenticationPlugin does, and the cleartext password is accepted only if it is a valid IAM token
 * for this endpoint and user (rds-token.ts); anything else gets RDS's 1045 "Access denied". Once
 * accepted, the front logs in to the upstream as the same user (empty password, no TLS, the client's
 * capabilities and database), hands the client the upstream's OK with the client's sequence id, and
 * becomes a byte pipe. Tokens are never logged. (A little over 400 lines: both hops of one login read
 * best side by side.)
 */

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { pino } from 'pino';
import {
  CLIENT,
  type ErrPacket,
  encodeAuthSwitch,
  encodeErr,
  encodeHandshakeResponse41,
  encodeHandshakeV10,
  encodePacket,
  type HandshakeResponse41,
  isSslRequest,
  MAX_HANDSHAKE_PACKET,
  MysqlWireError,
  type Packet,
  PacketReader,
  packetKind,
  parseAuthSwitch,
  parseClearPassword,
  parseErr,
  parseHandshakeResponse41,
  parseHandshakeV10,
  SERVER_STATUS_AUTOCOMMIT,
} from '../shared/mysql-wire.js';
import { startLoopbackServer } from './loopback-server.js';
import type { RdsEndpointOptions, RdsFront, RdsFrontStats, RdsRefusalReason } from './rds.js';
import { verifyRdsToken } from './rds-token.js';

/** authTimeoutMs defaults to MySQL's connect_timeout (10 s). */
export type RdsMysqlFrontOptions = RdsEndpointOptions;

/** What Aurora MySQL 3 announces. */
export const RDS_MYSQL_SERVER_VERSION = '8.0.mysql_aurora.3.05.2';

/** A MySQL 8 server's capabilities minus what the front cannot pass on (compression, query attributes). */
const SERVER_CAPABILITIES =
  CLIENT.LONG_PASSWORD |
  CLIENT.FOUND_ROWS |
  CLIENT.LONG_FLAG |
  CLIENT.CONNECT_WITH_DB |
  CLIENT.NO_SCHEMA |
  CLIENT.ODBC |
  CLIENT.LOCAL_FILES |
  CLIENT.IGNORE_SPACE |
  CLIENT.PROTOCOL_41 |
  CLIENT.INTERACTIVE |
  CLIENT.SSL |
  CLIENT.IGNORE_SIGPIPE |
  CLIENT.TRANSACTIONS |
  CLIENT.RESERVED |
  CLIENT.SECURE_CONNECTION |
  CLIENT.MULTI_STATEMENTS |
  CLIENT.MULTI_RESULTS |
  CLIENT.PS_MULTI_RESULTS |
  CLIENT.PLUGIN_AUTH |
  CLIENT.CONNECT_ATTRS |
  CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  CLIENT.CAN_HANDLE_EXPIRED_PASSWORDS |
  CLIENT.SESSION_TRACK |
  CLIENT.DEPRECATE_EOF;
const UTF8MB4_GENERAL_CI = 45;
const MAX_REFUSALS_KEPT = 1000;
const UPSTREAM_DIAL_TIMEOUT_MS = 10_000;

const ER_ACCESS_DENIED = 1045;
const ER_SECURE_TRANSPORT_REQUIRED = 3159;
const ER_HANDSHAKE_ERROR = 1043;
const ER_CONNECT_FAILED = 2003;

export async function startRdsMysqlFront(opts: RdsMysqlFrontOptions): Promise<RdsFront> {
  const log = opts.logger ?? pino({ level: 'silent' });
  const stats: RdsFrontStats = { logins: 0, refusals: [], plaintextRefused: 0, cancels: 0 };
  const secureContext = tls.createSecureContext({ cert: opts.tls.cert, key: opts.tls.key });
  const sockets = new Set<Duplex>();
  const track = <T extends Duplex>(s: T): T => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    return s;
  };
  let connectionId = 0;

  const refuse = (sock: Duplex, seq: number, user: string, reason: RdsRefusalReason, err: ErrPacket) => {
    if (stats.refusals.length >= MAX_REFUSALS_KEPT) stats.refusals.shift();
    stats.refusals.push({ user, reason, sqlstate: err.sqlstate });
    log.info({ user, reason, errno: err.errno, message: err.message }, 'login refused');
    if (!sock.destroyed) sock.end(encodePacket(seq, encodeErr(err)));
  };
  const accessDenied = (user: string, peer: string): ErrPacket => ({
    errno: ER_ACCESS_DENIED,
    sqlstate: '28000',
    message: `Access denied for user '${user}'@'${peer}' (using password: YES)`,
  });
  const protocolError = (err: unknown): ErrPacket => ({
    errno: ER_HANDSHAKE_ERROR,
    sqlstate: '08S01',
    message: err instanceof MysqlWireError ? `Bad handshake: ${err.message}` : 'Bad handshake',
  });

  const onConnection = (raw: net.Socket) => {
    track(raw);
    const timer = setTimeout(() => raw.destroy(), opts.authTimeoutMs ?? 10_000);
    timer.unref();
    raw.on('close', () => clearTimeout(timer));
    const peer = raw.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1';
    const scramble = Buffer.from(randomBytes(20).map((b) => (b % 94) + 33)); // printable, no NUL, as mysqld makes it
    raw.write(
      encodePacket(
        0,
        encodeHandshakeV10({
          serverVersion: RDS_MYSQL_SERVER_VERSION,
          connectionId: ++connectionId,
          scramble,
          capabilities: SERVER_CAPABILITIES,
          charset: UTF8MB4_GENERAL_CI,
          status: SERVER_STATUS_AUTOCOMMIT,
          authPlugin: 'mysql_native_password',
        }),
      ),
    );
    const reader = new PacketReader(MAX_HANDSHAKE_PACKET);
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      let packet: Packet | undefined;
      try {
        packet = reader.next();
      } catch (err) {
        raw.off('data', onData);
        refuse(raw, 2, '', 'protocol', protocolError(err));
        return;
      }
      if (!packet) return;
      raw.off('data', onData);
      if (!isSslRequest(packet.payload)) {
        let user = '';
        try {
          user = parseHandshakeResponse41(packet.payload).user;
        } catch {
          // refused either way
        }
        stats.plaintextRefused++;
        log.info({ user }, 'plaintext login refused (require_secure_transport)');
        if (!raw.destroyed) {
          raw.end(
            encodePacket(
              packet.seq + 1,
              encodeErr({
                errno: ER_SECURE_TRANSPORT_REQUIRED,
                sqlstate: 'HY000',
                message:
                  'Connections using insecure transport are prohibited while --require_secure_transport=ON.',
              }),
            ),
          );
        }
        return;
      }
      // The client does not wait for an answer to its SSLRequest: its ClientHello may already be here.
      const secure = track(
        new tls.TLSSocket(track(socketAsStream(raw, reader.takeRemaining())), {
          isServer: true,
          secureContext,
        }),
      );
      secure.once('secure', () => loginOverTls(secure, packet.seq + 1, peer, () => clearTimeout(timer)));
      secure.on('error', (err) => log.debug({ err: err.message }, 'TLS connection error'));
    };
    raw.on('data', onData);
  };

  const loginOverTls = (sock: tls.TLSSocket, expectSeq: number, peer: string, loggedIn: () => void) => {
    const reader = new PacketReader(MAX_HANDSHAKE_PACKET);
    let phase: 'response' | 'password' | 'done' = 'response';
    let response: HandshakeResponse41 | undefined;
    let seq = expectSeq;
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      try {
        for (;;) {
          if (phase === 'done') return;
          const packet = reader.next();
          if (!packet) return;
          seq = packet.seq + 1;
          if (phase === 'response') {
            response = parseHandshakeResponse41(packet.payload);
            if (response.user === '') {
              phase = 'done';
              refuse(sock, seq, '', 'no-user', accessDenied('', peer));
              return;
            }
            // RDS's IAM plugin wants the token itself, whatever the client scrambled for mysql_native_password.
            phase = 'password';
            sock.write(encodePacket(seq, encodeAuthSwitch('mysql_clear_password')));
            seq++;
            continue;
          }
          phase = 'done';
          sock.off('data', onData);
          sock.pause();
          void verify(sock, response as HandshakeResponse41, parseClearPassword(packet.payload), seq);
          return;
        }
      } catch (err) {
        phase = 'done';
        refuse(sock, seq, response?.user ?? '', 'protocol', protocolError(err));
      }
    };
    sock.on('data', onData);

    const verify = async (s: tls.TLSSocket, r: HandshakeResponse41, token: string, okSeq: number) => {
      const result = await verifyRdsToken({
        token,
        user: r.user,
        endpoint: { host: opts.host, port: opts.port, region: opts.region },
        credentials: opts.credentials,
        now: (opts.now ?? Date.now)(),
      });
      if (s.destroyed) return;
      if (!result.ok) {
        log.debug({ user: r.user, detail: result.detail }, 'IAM token refused');
        refuse(s, okSeq, r.user, result.reason, accessDenied(r.user, peer));
        return;
      }
      let up: { socket: net.Socket; ok: Buffer; rest: Buffer };
      try {
        up = await loginUpstream(r);
      } catch (err) {
        const e = err as Error & { mysql?: ErrPacket };
        refuse(
          s,
          okSeq,
          r.user,
          'upstream',
          e.mysql ?? {
            errno: ER_CONNECT_FAILED,
            sqlstate: 'HY000',
            message: `could not connect to the database behind the simulated RDS endpoint ${opts.host} (${opts.upstream.host}:${opts.upstream.port}): ${e.message}`,
          },
        );
        return;
      }
      if (s.destroyed) {
        up.socket.destroy();
        return;
      }
      stats.logins++;
      log.info({ user: r.user, database: r.database, accessKeyId: result.accessKeyId }, 'IAM login accepted');
      loggedIn();
      s.write(encodePacket(okSeq, up.ok));
      if (up.rest.length > 0) s.write(up.rest);
      const rest = reader.takeRemaining();
      if (rest.length > 0) up.socket.write(rest);
      pipe(s, up.socket);
      s.resume();
    };
  };

  /** Logs in to the upstream as the client's user with an empty password; resolves with its OK payload. */
  const loginUpstream = (r: HandshakeResponse41) =>
    new Promise<{ socket: net.Socket; ok: Buffer; rest: Buffer }>((resolve, reject) => {
      const up = track(net.connect({ host: opts.upstream.host, port: opts.upstream.port }));
      up.setTimeout(UPSTREAM_DIAL_TIMEOUT_MS, () => up.destroy(new Error('timed out')));
      const reader = new PacketReader(MAX_HANDSHAKE_PACKET);
      let phase: 'greeting' | 'auth' = 'greeting';
      const fail = (err: Error) => {
        up.destroy();
        reject(err);
      };
      up.once('error', fail);
      up.on('data', function onData(chunk: Buffer) {
        reader.push(chunk);
        try {
          for (;;) {
            const p = reader.next();
            if (!p) return;
            if (phase === 'greeting') {
              const g = parseHandshakeV10(p.payload);
              // Keep what the client asked for and the upstream offers; never TLS or compression on this hop.
              let caps =
                r.capabilities & (g.capabilities | CLIENT.LONG_PASSWORD) & ~CLIENT.SSL & ~CLIENT.COMPRESS;
              caps &= ~CLIENT.ZSTD_COMPRESSION;
              if (r.database) caps |= CLIENT.CONNECT_WITH_DB;
              else caps &= ~CLIENT.CONNECT_WITH_DB;
              caps |= CLIENT.PLUGIN_AUTH & g.capabilities;
              const filler = Buffer.from(r.filler);
              if (caps & CLIENT.LONG_PASSWORD) filler.fill(0, 19); // no MariaDB extended capabilities
              up.write(
                encodePacket(
                  p.seq + 1,
                  encodeHandshakeResponse41({
                    ...r,
                    capabilities: caps,
                    filler,
                    authResponse: Buffer.alloc(0),
                    authPlugin: 'mysql_native_password',
                  }),
                ),
              );
              phase = 'auth';
              continue;
            }
            const kind = packetKind(p.payload);
            if (kind === 'auth-switch') {
              // An empty password is an empty answer for any challenge-response plugin.
              parseAuthSwitch(p.payload);
              up.write(encodePacket(p.seq + 1, Buffer.alloc(0)));
              continue;
            }
            up.off('data', onData);
            up.off('error', fail);
            up.setTimeout(0);
            if (kind === 'ok') {
              resolve({ socket: up, ok: p.payload, rest: reader.takeRemaining() });
              return;
            }
            const err = kind === 'err' ? parseErr(p.payload) : undefined;
            fail(
              Object.assign(
                new Error(err ? `upstream refused: ${err.message}` : 'unexpected upstream packet'),
                {
                  mysql: err,
                },
              ),
            );
            return;
          }
        } catch (err) {
          fail(err as Error);
        }
      });
    });

  const { port, close } = await startLoopbackServer(onConnection, sockets);
  log.info({ host: opts.host, port }, 'simulated RDS MySQL front listening');
  return { port, stats, close };
}

/**
 * The socket as a plain stream starting with `head` (bytes already read off it). TLS over a net.Socket
 * reads its handle directly and would miss them; over a generic Duplex it reads what we push.
 */
function socketAsStream(raw: net.Socket, head: Buffer): Duplex {
  const stream = new Duplex({
    read() {
      raw.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      raw.write(chunk, cb);
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  if (head.length > 0) stream.push(head);
  raw.on('data', (c: Buffer) => {
    if (!stream.push(c)) raw.pause();
  });
  raw.on('end', () => stream.push(null));
  raw.on('close', () => stream.destroy());
  return stream;
}

/** After the login: bytes both ways, unparsed; either side ending or failing ends the other. */
function pipe(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}
