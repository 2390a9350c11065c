/**
 * PostgreSQL frontend/backend protocol 3.0 helpers, pure (bytes in, bytes out, no I/O), for code that
 * stands in front of a PostgreSQL server: the simulated RDS (src/sim/rds.ts) and later the daemon's
 * login front. Only the messages of the startup and authentication phases are modelled; after the
 * login both sides become byte pipes, so nothing here parses the query protocol.
 */

/** Special "protocol versions" a client sends in place of a StartupMessage (PostgreSQL pqcomm.h). */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** Protocol 3.0 as sent in a StartupMessage (major 3 << 16 | minor 0). */
export const PROTOCOL_3_0 = 196608;
/** PostgreSQL refuses startup packets whose payload (after the length word) is longer than this. */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** PostgreSQL's limit for a password/SASL message during authentication (PG_MAX_AUTH_TOKEN_LENGTH). */
export const MAX_AUTH_MESSAGE_LENGTH = 65535;

export const AUTH_OK = 0;
export const AUTH_CLEARTEXT_PASSWORD = 3;
export const AUTH_SASL = 10;

/** A byte stream that does not follow the protocol; `sqlstate` is what a server answers with. */
export class PgWireError extends Error {
  constructor(
    readonly code: 'PG_WIRE_BAD_LENGTH' | 'PG_WIRE_MALFORMED' | 'PG_WIRE_UNSUPPORTED_PROTOCOL',
    message: string,
    /** 08P01 protocol_violation or 0A000 feature_not_supported. */
    readonly sqlstate: '08P01' | '0A000',
    readonly fix = 'use a PostgreSQL client speaking protocol 3 (libpq, psql, any driver)',
  ) {
    super(message);
    this.name = 'PgWireError';
  }
}

export interface TypedMessage {
  /** One ASCII character, e.g. 'p' (PasswordMessage) or 'R' (Authentication). */
  type: string;
  /** The bytes after the length word. */
  body: Buffer;
  /** The whole message, type byte and length included. */
  raw: Buffer;
}

/**
 * Incremental reader over one connection's bytes. The caller says what it expects next: the untyped
 * startup packet (int32 length including itself, then payload) or a typed message (1 type byte, int32
 * length including itself, body), because the stream itself does not tell them apart.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly maxTypedLength = MAX_AUTH_MESSAGE_LENGTH) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** Bytes received but not consumed. */
  get buffered(): number {
    return this.size;
  }

  /** The next complete startup packet (raw bytes, length word included), or undefined until it is whole. */
  nextStartup(): Buffer | undefined {
    if (this.size < 4) return undefined;
    const length = this.peek(4).readInt32BE(0);
    // Same bounds as PostgreSQL's ProcessStartupPacket: at least a protocol code, at most 10000 more.
    if (length - 4 < 4 || length - 4 > MAX_STARTUP_PACKET_LENGTH) {
      throw new PgWireError('PG_WIRE_BAD_LENGTH', 'invalid length of startup packet', '08P01');
    }
    if (this.size < length) return undefined;
    return this.take(length);
  }

  /** The next complete typed message, or undefined until it is whole. */
  nextTyped(): TypedMessage | undefined {
    if (this.size < 5) return undefined;
    const head = this.peek(5);
    const length = head.readInt32BE(1);
    if (length < 4 || length > this.maxTypedLength) {
      throw new PgWireError(
        'PG_WIRE_BAD_LENGTH',
        `invalid message length ${length} for message type "${String.fromCharCode(head[0])}"`,
        '08P01',
      );
    }
    if (this.size < length + 1) return undefined;
    const raw = this.take(length + 1);
    return { type: String.fromCharCode(raw[0]), body: raw.subarray(5), raw };
  }

  /** Everything buffered, leaving the reader empty (e.g. bytes to forward once the login is done). */
  takeRemaining(): Buffer {
    return this.take(this.size);
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0];
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.size -= n;
    return out;
  }
}

export type StartupPacket =
  | { kind: 'ssl'; raw: Buffer }
  | { kind: 'gssenc'; raw: Buffer }
  | { kind: 'cancel'; processId: number; secretKey: number; raw: Buffer }
  | {
      kind: 'startup';
      /** major << 16 | minor */
      protocol: number;
      /** Every parameter, in order of appearance (user, database, application_name, options, ...). */
      params: Record<string, string>;
      user?: string;
      /** PostgreSQL defaults the database to the user name when absent. */
      database?: string;
      raw: Buffer;
    };

/** Interprets a packet returned by MessageReader.nextStartup(). */
export function parseStartupPacket(raw: Buffer): StartupPacket {
  if (raw.length < 8 || raw.readInt32BE(0) !== raw.length) {
    throw new PgWireError('PG_WIRE_BAD_LENGTH', 'invalid length of startup packet', '08P01');
  }
  const code = raw.readInt32BE(4);
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    if (raw.length !== 8)
      throw new PgWireError('PG_WIRE_BAD_LENGTH', 'invalid length of startup packet', '08P01');
    return { kind: code === SSL_REQUEST_CODE ? 'ssl' : 'gssenc', raw };
  }
  if (code === CANCEL_REQUEST_CODE) {
    if (raw.length !== 16)
      throw new PgWireError('PG_WIRE_BAD_LENGTH', 'invalid length of cancel request', '08P01');
    return { kind: 'cancel', processId: raw.readInt32BE(8), secretKey: raw.readInt32BE(12), raw };
  }
  if (code >>> 16 !== 3) {
    throw new PgWireError(
      'PG_WIRE_UNSUPPORTED_PROTOCOL',
      `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`,
      '0A000',
    );
  }
  // No prototype: a client may name a parameter `__proto__` (or `constructor`) and must only ever
  // set its own key.
  const params: Record<string, string> = Object.create(null);
  let off = 8;
  for (;;) {
    if (off >= raw.length) {
      throw new PgWireError(
        'PG_WIRE_MALFORMED',
        'invalid startup packet layout: expected terminator as last byte',
        '08P01',
      );
    }
    if (raw[off] === 0) {
      if (off !== raw.length - 1) {
        throw new PgWireError(
          'PG_WIRE_MALFORMED',
          'invalid startup packet layout: expected terminator as last byte',
          '08P01',
        );
      }
      break;
    }
    const key = cstring(raw, off);
    if (!key)
      throw new PgWireError('PG_WIRE_MALFORMED', 'invalid startup packet layout: unterminated name', '08P01');
    const value = cstring(raw, key.next);
    if (!value) {
      throw new PgWireError(
        'PG_WIRE_MALFORMED',
        `invalid startup packet layout: no value for "${key.text}"`,
        '08P01',
      );
    }
    params[key.text] = value.text;
    off = value.next;
  }
  const out: StartupPacket = { kind: 'startup', protocol: code, params, raw };
  if (params.user !== undefined) out.user = params.user;
  if (params.database !== undefined) out.database = params.database;
  return out;
}

function cstring(buf: Buffer, start: number): { text: string; next: number } | undefined {
  const end = buf.indexOf(0, start);
  if (end < 0) return undefined;
  return { text: buf.toString('utf8', start, end), next: end + 1 };
}

function typed(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
}

function cstr(s: string): Buffer {
  if (s.includes('\0'))
    throw new PgWireError('PG_WIRE_MALFORMED', 'a protocol string cannot contain NUL', '08P01');
  return Buffer.from(`${s}\0`, 'utf8');
}

export function authenticationOk(): Buffer {
  return typed('R', int32(AUTH_OK));
}

export function authenticationCleartextPassword(): Buffer {
  return typed('R', int32(AUTH_CLEARTEXT_PASSWORD));
}

/** AuthenticationSASL: the mechanisms the server offers, e.g. ['SCRAM-SHA-256']. */
export function authenticationSasl(mechanisms: readonly string[]): Buffer {
  return typed('R', Buffer.concat([int32(AUTH_SASL), ...mechanisms.map(cstr), Buffer.from([0])]));
}

export interface ErrorFields {
  /** ERROR, FATAL or PANIC (sent both localized, S, and not, V). */
  severity: 'ERROR' | 'FATAL' | 'PANIC';
  /** SQLSTATE, e.g. 28P01. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

export function errorResponse(f: ErrorFields): Buffer {
  const fields: Buffer[] = [];
  const add = (tag: string, value: string | undefined) => {
    if (value !== undefined) fields.push(Buffer.from(tag, 'latin1'), cstr(value));
  };
  add('S', f.severity);
  add('V', f.severity);
  add('C', f.code);
  add('M', f.message);
  add('D', f.detail);
  add('H', f.hint);
  fields.push(Buffer.from([0]));
  return typed('E', Buffer.concat(fields));
}

/** Parses an ErrorResponse (or NoticeResponse) body into its fields keyed by tag letter. */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const tag = String.fromCharCode(body[off]);
    const value = cstring(body, off + 1);
    if (!value) throw new PgWireError('PG_WIRE_MALFORMED', 'unterminated error field', '08P01');
    out[tag] = value.text;
    off = value.next;
  }
  if (off !== body.length - 1)
    throw new PgWireError('PG_WIRE_MALFORMED', 'error fields not terminated', '08P01');
  return out;
}

export function readyForQuery(status: 'I' | 'T' | 'E' = 'I'): Buffer {
  return typed('Z', Buffer.from(status, 'latin1'));
}

/** The password of a PasswordMessage ('p'), as PostgreSQL's recv_password_packet checks it. */
export function parsePasswordMessage(msg: TypedMessage): string {
  if (msg.type !== 'p') {
    throw new PgWireError(
      'PG_WIRE_MALFORMED',
      `expected password response, got message type ${msg.type.charCodeAt(0)}`,
      '08P01',
    );
  }
  const end = msg.body.indexOf(0);
  if (end !== msg.body.length - 1)
    throw new PgWireError('PG_WIRE_MALFORMED', 'invalid password packet size', '08P01');
  return msg.body.toString('utf8', 0, end);
}

// ---- client side (tests, and the daemon's upstream leg) --------------------------------------------

export function sslRequest(): Buffer {
  return Buffer.concat([int32(8), int32(SSL_REQUEST_CODE)]);
}

export function gssencRequest(): Buffer {
  return Buffer.concat([int32(8), int32(GSSENC_REQUEST_CODE)]);
}

export function cancelRequest(processId: number, secretKey: number): Buffer {
  return Buffer.concat([int32(16), int32(CANCEL_REQUEST_CODE), int32(processId), int32(secretKey)]);
}

export function startupMessage(params: Record<string, string>, protocol = PROTOCOL_3_0): Buffer {
  const body = Buffer.concat([
    int32(protocol),
    ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]),
    Buffer.from([0]),
  ]);
  return Buffer.concat([int32(4 + body.length), body]);
}

export function passwordMessage(password: string): Buffer {
  return typed('p', cstr(password));
}
