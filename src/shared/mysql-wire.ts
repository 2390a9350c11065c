/**
 * MySQL client/server protocol helpers, pure (bytes in, bytes out, no I/O), for code that stands in front
 * of a MySQL/MariaDB server: the simulated RDS MySQL endpoint (src/sim/rds-mysql.ts). Only the packets
 * of the connection phase are modelled (HandshakeV10, SSLRequest, HandshakeResponse41, AuthSwitchRequest,
 * OK, ERR); after the login both sides become byte pipes, so nothing here parses the command phase.
 * Reference: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */

/** Capability flags (include/mysql_com.h). */
export const CLIENT = {
  LONG_PASSWORD: 1, // MariaDB reads a cleared bit 0 as "MariaDB extended capabilities follow"
  FOUND_ROWS: 2,
  LONG_FLAG: 4,
  CONNECT_WITH_DB: 8,
  NO_SCHEMA: 0x10,
  COMPRESS: 0x20,
  ODBC: 0x40,
  LOCAL_FILES: 0x80,
  IGNORE_SPACE: 0x100,
  PROTOCOL_41: 0x200,
  INTERACTIVE: 0x400,
  SSL: 0x800,
  IGNORE_SIGPIPE: 0x1000,
  TRANSACTIONS: 0x2000,
  RESERVED: 0x4000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 1 << 16,
  MULTI_RESULTS: 1 << 17,
  PS_MULTI_RESULTS: 1 << 18,
  PLUGIN_AUTH: 1 << 19,
  CONNECT_ATTRS: 1 << 20,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 1 << 21,
  CAN_HANDLE_EXPIRED_PASSWORDS: 1 << 22,
  SESSION_TRACK: 1 << 23,
  DEPRECATE_EOF: 1 << 24,
  ZSTD_COMPRESSION: 1 << 26,
} as const;

/** Largest payload of one physical packet; longer payloads are split (and end with a shorter one). */
export const MAX_PACKET_PAYLOAD = 0xffffff;
/** Connection-phase packets are small; a peer announcing more than this is not speaking the protocol. */
export const MAX_HANDSHAKE_PACKET = 64 * 1024;

export const SERVER_STATUS_AUTOCOMMIT = 0x0002;

export class MysqlWireError extends Error {
  readonly code = 'MYSQL_WIRE_MALFORMED';
  readonly fix = 'use a MySQL/MariaDB client speaking protocol 4.1 (mysql, mariadb, any driver)';
  constructor(message: string) {
    super(message);
    this.name = 'MysqlWireError';
  }
}

export interface Packet {
  /** Sequence id of the (first) physical packet. */
  seq: number;
  payload: Buffer;
}

/** One logical packet as physical packets: 3-byte little-endian length, sequence id, payload. */
export function encodePacket(seq: number, payload: Buffer, maxChunk = MAX_PACKET_PAYLOAD): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  let s = seq & 0xff;
  for (;;) {
    const n = Math.min(maxChunk, payload.length - offset);
    const header = Buffer.alloc(4);
    header.writeUIntLE(n, 0, 3);
    header[3] = s;
    parts.push(header, payload.subarray(offset, offset + n));
    offset += n;
    s = (s + 1) & 0xff;
    // A payload that fills the last chunk exactly is followed by an empty one, so the reader knows it ended.
    if (n < maxChunk) break;
  }
  return Buffer.concat(parts);
}

/** Incremental reader: push bytes as they arrive, take whole logical packets out. */
export class PacketReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    private readonly maxPayload = Number.POSITIVE_INFINITY,
    private readonly maxChunk = MAX_PACKET_PAYLOAD,
  ) {}

  push(chunk: Buffer): void {
    if (chunk.length > 0) this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  get buffered(): number {
    return this.buf.length;
  }

  /** The next whole packet, or undefined until enough bytes are there. */
  next(): Packet | undefined {
    const parts: Buffer[] = [];
    let offset = 0;
    let total = 0;
    let seq = -1;
    for (;;) {
      if (this.buf.length - offset < 4) return undefined;
      const n = this.buf.readUIntLE(offset, 3);
      if (n > this.maxChunk) throw new MysqlWireError(`packet length ${n} exceeds ${this.maxChunk}`);
      total += n;
      if (total > this.maxPayload) {
        throw new MysqlWireError(`packet of ${total}+ bytes is too long for the connection phase`);
      }
      if (seq < 0) seq = this.buf[offset + 3];
      if (this.buf.length - offset - 4 < n) return undefined;
      parts.push(this.buf.subarray(offset + 4, offset + 4 + n));
      offset += 4 + n;
      if (n < this.maxChunk) break;
    }
    const payload = Buffer.from(Buffer.concat(parts));
    this.buf = this.buf.subarray(offset);
    return { seq, payload };
  }

  /** Bytes after the last packet taken (e.g. a TLS ClientHello sent right behind an SSLRequest). */
  takeRemaining(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}

function lenenc(n: number): Buffer {
  if (n < 251) return Buffer.from([n]);
  if (n < 0x10000) return Buffer.from([0xfc, n & 0xff, n >> 8]);
  if (n < 0x1000000) return Buffer.from([0xfd, n & 0xff, (n >> 8) & 0xff, n >> 16]);
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}

/** Cursor over a payload; every read checks bounds, so a short packet is an error, never garbage. */
class Cursor {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  get left(): number {
    return this.b.length - this.pos;
  }
  bytes(n: number): Buffer {
    if (n > this.left) throw new MysqlWireError('packet ends early');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u8(): number {
    return this.bytes(1)[0];
  }
  u32(): number {
    return this.bytes(4).readUInt32LE(0);
  }
  nulString(): Buffer {
    const end = this.b.indexOf(0, this.pos);
    if (end < 0) throw new MysqlWireError('string not terminated');
    const out = this.b.subarray(this.pos, end);
    this.pos = end + 1;
    return out;
  }
  lenenc(): number {
    const first = this.u8();
    if (first < 251) return first;
    if (first === 0xfc) return this.bytes(2).readUInt16LE(0);
    if (first === 0xfd) return this.bytes(3).readUIntLE(0, 3);
    if (first === 0xfe) {
      const n = this.bytes(8).readBigUInt64LE(0);
      if (n > BigInt(MAX_HANDSHAKE_PACKET)) throw new MysqlWireError('length-encoded integer too large');
      return Number(n);
    }
    throw new MysqlWireError(`bad length-encoded integer prefix 0x${first.toString(16)}`);
  }
  rest(): Buffer {
    return this.bytes(this.left);
  }
}

export interface HandshakeV10 {
  serverVersion: string;
  connectionId: number;
  /** The 20-byte scramble (auth-plugin-data). */
  scramble: Buffer;
  capabilities: number;
  charset: number;
  status: number;
  authPlugin: string;
}

export function encodeHandshakeV10(h: HandshakeV10): Buffer {
  const caps = Buffer.alloc(4);
  caps.writeUInt32LE(h.capabilities >>> 0, 0);
  const head = Buffer.alloc(4);
  head.writeUInt32LE(h.connectionId >>> 0, 0);
  const status = Buffer.alloc(2);
  status.writeUInt16LE(h.status, 0);
  return Buffer.concat([
    Buffer.from([10]),
    Buffer.from(`${h.serverVersion}\0`, 'latin1'),
    head,
    h.scramble.subarray(0, 8),
    Buffer.from([0]),
    caps.subarray(0, 2),
    Buffer.from([h.charset]),
    status,
    caps.subarray(2, 4),
    Buffer.from([h.scramble.length + 1]),
    Buffer.alloc(10),
    h.scramble.subarray(8),
    Buffer.from([0]),
    Buffer.from(`${h.authPlugin}\0`, 'latin1'),
  ]);
}

export function parseHandshakeV10(payload: Buffer): HandshakeV10 {
  const c = new Cursor(payload);
  const version = c.u8();
  if (version !== 10) {
    if (version === 0xff) throw new MysqlWireError(`server refused: ${parseErr(payload).message}`);
    throw new MysqlWireError(`unsupported handshake protocol ${version}`);
  }
  const serverVersion = c.nulString().toString('latin1');
  const connectionId = c.u32();
  const part1 = c.bytes(8);
  c.u8();
  const capsLow = c.bytes(2).readUInt16LE(0);
  const charset = c.u8();
  const status = c.bytes(2).readUInt16LE(0);
  const capsHigh = c.bytes(2).readUInt16LE(0);
  const capabilities = (capsLow | (capsHigh << 16)) >>> 0;
  const dataLen = c.u8();
  c.bytes(10);
  const part2Len = Math.max(13, dataLen - 8);
  const part2 = c.bytes(Math.min(part2Len, c.left));
  const scramble = Buffer.concat([part1, part2.subarray(0, part2.length - 1)]);
  const authPlugin = capabilities & CLIENT.PLUGIN_AUTH && c.left > 0 ? c.nulString().toString() : '';
  return { serverVersion, connectionId, scramble, capabilities, charset, status, authPlugin };
}

/** The 32-byte packet a client sends instead of its HandshakeResponse when it wants TLS first. */
export function isSslRequest(payload: Buffer): boolean {
  return payload.length === 32 && (payload.readUInt32LE(0) & CLIENT.SSL) !== 0;
}

export function encodeSslRequest(capabilities: number, charset: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE((capabilities | CLIENT.SSL) >>> 0, 0);
  b.writeUInt32LE(MAX_PACKET_PAYLOAD, 4);
  b[8] = charset;
  return b;
}

export interface HandshakeResponse41 {
  capabilities: number;
  maxPacketSize: number;
  charset: number;
  /** The 23 reserved bytes (MariaDB puts its extended capabilities in the last 4). */
  filler: Buffer;
  user: string;
  authResponse: Buffer;
  database?: string;
  authPlugin?: string;
  /** Connection attributes, still length-prefixed pairs, as sent. */
  attributes?: Buffer;
}

export function parseHandshakeResponse41(payload: Buffer): HandshakeResponse41 {
  const c = new Cursor(payload);
  const capabilities = c.u32();
  if (!(capabilities & CLIENT.PROTOCOL_41)) {
    throw new MysqlWireError('client does not speak protocol 4.1 (CLIENT_PROTOCOL_41 not set)');
  }
  const maxPacketSize = c.u32();
  const charset = c.u8();
  const filler = Buffer.from(c.bytes(23));
  const user = c.nulString().toString('utf8');
  let authResponse: Buffer;
  if (capabilities & CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = c.bytes(c.lenenc());
  else if (capabilities & CLIENT.SECURE_CONNECTION) authResponse = c.bytes(c.u8());
  else authResponse = c.nulString();
  const r: HandshakeResponse41 = {
    capabilities,
    maxPacketSize,
    charset,
    filler,
    user,
    authResponse: Buffer.from(authResponse),
  };
  if (capabilities & CLIENT.CONNECT_WITH_DB && c.left > 0) r.database = c.nulString().toString('utf8');
  if (capabilities & CLIENT.PLUGIN_AUTH && c.left > 0) r.authPlugin = c.nulString().toString('latin1');
  if (capabilities & CLIENT.CONNECT_ATTRS && c.left > 0) {
    const start = c.pos;
    const n = c.lenenc();
    c.bytes(n);
    r.attributes = Buffer.from(payload.subarray(start, c.pos));
  }
  return r;
}

export function encodeHandshakeResponse41(r: HandshakeResponse41): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32LE(r.capabilities >>> 0, 0);
  head.writeUInt32LE(r.maxPacketSize >>> 0, 4);
  head[8] = r.charset;
  const filler = Buffer.alloc(23);
  r.filler.copy(filler, 0, 0, 23);
  const parts: Buffer[] = [head, filler, Buffer.from(`${r.user}\0`, 'utf8')];
  if (r.capabilities & CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenenc(r.authResponse.length));
  else if (r.capabilities & CLIENT.SECURE_CONNECTION) parts.push(Buffer.from([r.authResponse.length]));
  parts.push(r.authResponse);
  if (!(r.capabilities & (CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT.SECURE_CONNECTION))) {
    parts.push(Buffer.from([0]));
  }
  if (r.capabilities & CLIENT.CONNECT_WITH_DB) parts.push(Buffer.from(`${r.database ?? ''}\0`, 'utf8'));
  if (r.capabilities & CLIENT.PLUGIN_AUTH) parts.push(Buffer.from(`${r.authPlugin ?? ''}\0`, 'latin1'));
  if (r.capabilities & CLIENT.CONNECT_ATTRS) parts.push(r.attributes ?? Buffer.from([0]));
  return Buffer.concat(parts);
}

/** AuthSwitchRequest: 0xfe, plugin name, plugin data. */
export function encodeAuthSwitch(plugin: string, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from([0xfe]), Buffer.from(`${plugin}\0`, 'latin1'), data]);
}

export function parseAuthSwitch(payload: Buffer): { plugin: string; data: Buffer } {
  const c = new Cursor(payload);
  if (c.u8() !== 0xfe) throw new MysqlWireError('not an AuthSwitchRequest');
  if (c.left === 0) return { plugin: 'mysql_old_password', data: Buffer.alloc(0) };
  return { plugin: c.nulString().toString('latin1'), data: Buffer.from(c.rest()) };
}

/** mysql_clear_password sends the password NUL-terminated. */
export function parseClearPassword(payload: Buffer): string {
  const end = payload.indexOf(0);
  return payload.subarray(0, end < 0 ? payload.length : end).toString('utf8');
}

export interface ErrPacket {
  errno: number;
  sqlstate: string;
  message: string;
}

export function encodeErr(e: ErrPacket): Buffer {
  const head = Buffer.alloc(3);
  head[0] = 0xff;
  head.writeUInt16LE(e.errno, 1);
  return Buffer.concat([
    head,
    Buffer.from(`#${e.sqlstate.padEnd(5).slice(0, 5)}`, 'latin1'),
    Buffer.from(e.message),
  ]);
}

export function parseErr(payload: Buffer): ErrPacket {
  const c = new Cursor(payload);
  if (c.u8() !== 0xff) throw new MysqlWireError('not an ERR packet');
  const errno = c.bytes(2).readUInt16LE(0);
  let sqlstate = '';
  if (c.left >= 6 && payload[c.pos] === 0x23) {
    c.u8();
    sqlstate = c.bytes(5).toString('latin1');
  }
  return { errno, sqlstate, message: c.rest().toString('utf8') };
}

/** OK packet with no rows affected, no insert id, no warnings. */
export function encodeOk(status = SERVER_STATUS_AUTOCOMMIT): Buffer {
  const b = Buffer.from([0, 0, 0, 0, 0, 0, 0]);
  b.writeUInt16LE(status, 3);
  return b;
}

export function packetKind(payload: Buffer): 'ok' | 'err' | 'auth-switch' | 'auth-more' | 'other' {
  switch (payload[0]) {
    case 0x00:
      return 'ok';
    case 0xff:
      return 'err';
    case 0xfe:
      return 'auth-switch';
    case 0x01:
      return 'auth-more';
    default:
      return 'other';
  }
}
