/**
 * The database side of the front: a raw byte stream through the tunnel, PostgreSQL's SSLRequest, TLS
 * verify-full (chain against the CA bundle, name against the real RDS host), then the login with the
 * IAM token answering AuthenticationCleartextPassword. Only the startup phase is parsed.
 */
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  AUTH_CLEARTEXT_PASSWORD,
  AUTH_OK,
  AUTH_SASL,
  errorResponse,
  MessageReader,
  PgWireError,
  parseErrorFields,
  passwordMessage,
  sslRequest,
} from '../../shared/pg-wire.js';
import { fromFailure, PgFrontError } from './errors.js';

const AUTH_MD5_PASSWORD = 5;

export interface UpstreamTlsOptions {
  openUpstream(): Promise<Duplex>;
  ca: Buffer | string;
  /** The database's real host name: SNI and the name its certificate must carry. */
  servername: string;
  /** Every stream made here, so the caller can destroy them when the client goes or time runs out. */
  track(s: Duplex): void;
}

/** A TLS stream to the database, verified, ready for a StartupMessage or a CancelRequest. */
export async function openUpstreamTls(o: UpstreamTlsOptions): Promise<tls.TLSSocket> {
  let raw: Duplex;
  try {
    raw = await o.openUpstream();
  } catch (err) {
    throw fromFailure(err, 'upstream', `could not open a connection to ${o.servername} through the tunnel`);
  }
  o.track(raw);
  raw.on('error', () => {});
  raw.write(sslRequest());
  const answer = await new Promise<Buffer>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      done();
      resolve(chunk);
    };
    const onGone = (err?: Error) => {
      done();
      reject(
        new PgFrontError(
          'upstream',
          '08006',
          `the connection to ${o.servername} closed before TLS started${err ? `: ${err.message}` : ''}`,
          'check that remote_host and remote_port point at the PostgreSQL server (ssmtun status shows the tunnel)',
        ),
      );
    };
    const done = () => {
      raw.off('data', onData);
      raw.off('end', onGone);
      raw.off('close', onGone);
      raw.off('error', onGone);
      raw.pause();
    };
    raw.on('data', onData);
    raw.once('end', onGone);
    raw.once('close', onGone);
    raw.once('error', onGone);
  });
  if (answer[0] !== 0x53 /* S */) {
    const what =
      answer[0] === 0x4e /* N */
        ? 'does not accept TLS (it answered N to SSLRequest)'
        : `answered SSLRequest with ${JSON.stringify(String.fromCharCode(answer[0]))}, not S`;
    throw new PgFrontError(
      'tls',
      '08006',
      `the server at ${o.servername} ${what}`,
      'RDS always offers TLS: check that remote_host and remote_port point at the RDS endpoint',
    );
  }
  if (answer.length > 1) {
    // Bytes before the handshake could be injected by anyone on the path (CVE-2021-23222).
    throw new PgFrontError(
      'tls',
      '08006',
      `the server at ${o.servername} sent unencrypted data after its SSL response`,
      'something between the tunnel and the database is tampering with the connection',
    );
  }
  const sock = tls.connect({ socket: raw, servername: o.servername, ca: o.ca, minVersion: 'TLSv1.2' });
  o.track(sock);
  await new Promise<void>((resolve, reject) => {
    sock.once('secureConnect', () => {
      sock.off('error', reject);
      resolve();
    });
    sock.once('error', (err: Error) =>
      reject(
        new PgFrontError(
          'tls',
          '08006',
          `TLS with ${o.servername} failed: ${err.message}`,
          `the database's certificate must be signed by a CA in ca_bundle (default: the RDS global bundle) and name ${o.servername}; fix ca_bundle or remote_host`,
          undefined,
          { cause: err },
        ),
      ),
    );
  });
  sock.on('error', () => {});
  return sock;
}

export interface UpstreamLogin {
  /** What the server sent from the end of authentication to ReadyForQuery, to pass on as it is. */
  toClient: Buffer;
}

/**
 * Sends the client's StartupMessage and signs in with the token. Resolves at ReadyForQuery with the
 * bytes for the client (AuthenticationOk, ParameterStatus, BackendKeyData, notices, ReadyForQuery);
 * rejects with a PgFrontError, or with `serverError` set to the server's own ErrorResponse.
 */
export function loginUpstream(
  sock: tls.TLSSocket,
  startup: Buffer,
  user: string,
  token: () => Promise<string>,
): Promise<UpstreamLogin> {
  return new Promise((resolve, reject) => {
    const reader = new MessageReader(1 << 20);
    const out: Buffer[] = [];
    let authenticated = false;
    let passwordSent = false;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.pause();
      if (err) reject(err);
      else resolve({ toClient: Buffer.concat(out) });
    };
    const onClose = () =>
      finish(
        new PgFrontError(
          'upstream',
          '08006',
          `the connection to ${sock.servername || 'the database'} closed during the login`,
          'the database or the tunnel dropped the connection; ssmtun status shows the tunnel, the database log says why',
        ),
      );
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      try {
        for (let msg = reader.nextTyped(); msg && !settled; msg = settled ? undefined : reader.nextTyped()) {
          if (msg.type === 'R') {
            const code = msg.body.readInt32BE(0);
            if (code === AUTH_OK) {
              authenticated = true;
              out.push(msg.raw);
            } else if (code === AUTH_CLEARTEXT_PASSWORD && !passwordSent && !authenticated) {
              passwordSent = true;
              token().then(
                (t) => {
                  if (!settled) sock.write(passwordMessage(t));
                },
                (err) => finish(fromFailure(err, 'token', `could not get an IAM token for ${user}`)),
              );
            } else if (code === AUTH_SASL || code === AUTH_MD5_PASSWORD) {
              const how =
                code === AUTH_SASL
                  ? msg.body.subarray(4).toString('utf8').split('\0').filter(Boolean).join(', ') || 'SASL'
                  : 'MD5';
              finish(
                new PgFrontError(
                  'no-rds-iam',
                  '28000',
                  `the database asked for a password (${how}) for user "${user}" instead of an IAM token: the role lacks GRANT rds_iam`,
                  `as an admin on the database run GRANT rds_iam TO "${user}"; (a role with rds_iam logs in with IAM tokens only), or connect as a user that has it`,
                ),
              );
            } else {
              finish(
                new PgFrontError(
                  'unsupported-auth',
                  '28000',
                  `the database asked for authentication method ${code}, which ssmtun cannot answer (it signs in with IAM tokens)`,
                  'check that remote_host is an RDS or Aurora PostgreSQL endpoint with IAM authentication enabled',
                ),
              );
            }
          } else if (msg.type === 'E') {
            if (authenticated) {
              // After AuthenticationOk (no such database, too many connections): the server's own words.
              out.push(msg.raw);
              finish(new ServerRefusal(Buffer.concat(out), parseErrorFields(msg.body).M ?? ''));
            } else {
              const f = parseErrorFields(msg.body);
              const response = errorResponse({
                severity: f.V === 'ERROR' || f.V === 'PANIC' ? f.V : 'FATAL',
                code: f.C ?? '28000',
                message: f.M ?? 'login refused',
                ...(f.D !== undefined && { detail: f.D }),
                hint: `ssmtun: the database refused the IAM login for "${user}". Check that the role has GRANT rds_iam, that the AWS identity may rds-db:connect as ${user} on this database, and that remote_host is the endpoint name (tokens are signed for it).`,
              });
              finish(new ServerRefusal(response, f.M ?? ''));
            }
          } else if (msg.type === 'Z') {
            out.push(msg.raw);
            if (!authenticated)
              throw new PgWireError('PG_WIRE_MALFORMED', 'ReadyForQuery before AuthenticationOk', '08P01');
            if (reader.buffered > 0) out.push(reader.takeRemaining());
            finish();
          } else if ('SKNv'.includes(msg.type)) {
            out.push(msg.raw);
          } else {
            throw new PgWireError(
              'PG_WIRE_MALFORMED',
              `unexpected message type "${msg.type}" during login`,
              '08P01',
            );
          }
        }
      } catch (err) {
        finish(
          new PgFrontError(
            'upstream',
            '08006',
            `the database broke the protocol during the login: ${(err as Error).message}`,
            'check that remote_host and remote_port point at a PostgreSQL server',
          ),
        );
      }
    };
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.write(startup);
  });
}

/** The server said no; `response` is the ErrorResponse (with whatever preceded it) for the client. */
export class ServerRefusal extends Error {
  readonly reason = 'server-refused' as const;
  constructor(
    readonly response: Buffer,
    serverMessage: string,
  ) {
    super(`the database refused the login: ${serverMessage}`);
    this.name = 'ServerRefusal';
  }
}
