import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLIENT,
  encodeAuthSwitch,
  encodeErr,
  encodeHandshakeResponse41,
  encodeHandshakeV10,
  encodeOk,
  encodePacket,
  encodeSslRequest,
  type HandshakeResponse41,
  isSslRequest,
  MysqlWireError,
  PacketReader,
  packetKind,
  parseAuthSwitch,
  parseClearPassword,
  parseErr,
  parseHandshakeResponse41,
  parseHandshakeV10,
} from '../../src/shared/mysql-wire.js';

/** Splits bytes at the given cut points (any arrival pattern a socket could produce). */
function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

describe('packet framing', () => {
  it('any packets, cut anywhere, come out whole and in order, with their sequence ids', () => {
    // A small chunk limit makes the >16 MiB split path cheap to exercise; the logic is the same.
    const maxChunk = 7;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 })), {
          maxLength: 8,
        }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (packets, cuts) => {
          const wire = Buffer.concat(packets.map(([seq, p]) => encodePacket(seq, Buffer.from(p), maxChunk)));
          const reader = new PacketReader(Number.POSITIVE_INFINITY, maxChunk);
          const got: Array<[number, Buffer]> = [];
          for (const c of chunked(wire, cuts)) {
            reader.push(c);
            for (let p = reader.next(); p; p = reader.next()) got.push([p.seq, p.payload]);
          }
          expect(got).toEqual(packets.map(([seq, p]) => [seq, Buffer.from(p)]));
          expect(reader.buffered).toBe(0);
        },
      ),
    );
  });

  it('a payload filling whole chunks ends with an empty packet; sequence ids wrap at 255', () => {
    const wire = encodePacket(255, Buffer.from('abcdefgh'), 4);
    expect([...wire]).toEqual([4, 0, 0, 255, 97, 98, 99, 100, 4, 0, 0, 0, 101, 102, 103, 104, 0, 0, 0, 1]);
    expect([...encodePacket(3, Buffer.alloc(0))]).toEqual([0, 0, 0, 3]);
  });

  it('the real 16 MiB split: 0xffffff bytes then an empty packet', () => {
    const payload = Buffer.alloc(0xffffff + 10, 7);
    const wire = encodePacket(0, payload);
    expect(wire.readUIntLE(0, 3)).toBe(0xffffff);
    expect(wire.readUIntLE(0xffffff + 4, 3)).toBe(10);
    const reader = new PacketReader();
    reader.push(wire);
    expect(reader.next()?.payload.equals(payload)).toBe(true);
  });

  it('bytes behind a packet stay for takeRemaining (a TLS ClientHello behind an SSLRequest)', () => {
    const reader = new PacketReader();
    reader.push(
      Buffer.concat([encodePacket(1, encodeSslRequest(CLIENT.PROTOCOL_41, 45)), Buffer.from([0x16, 3, 1])]),
    );
    const p = reader.next();
    expect(p?.seq).toBe(1);
    expect(isSslRequest(p!.payload)).toBe(true);
    expect([...reader.takeRemaining()]).toEqual([0x16, 3, 1]);
  });

  it('a connection-phase packet over the limit is an error, not a buffer that grows', () => {
    const reader = new PacketReader(100);
    reader.push(Buffer.from([0xff, 0xff, 0x00, 0]));
    expect(() => reader.next()).toThrow(MysqlWireError);
  });
});

describe('connection-phase packets', () => {
  it('HandshakeV10 round-trips with a 20-byte scramble split 8 + 12', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9a-z._-]{1,40}$/),
        fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b.map((x) => (x % 255) + 1))),
        fc.integer({ min: 0, max: 0xffffffff }),
        (serverVersion, scramble, caps) => {
          const h = {
            serverVersion,
            connectionId: 42,
            scramble,
            capabilities: (caps | CLIENT.PLUGIN_AUTH) >>> 0,
            charset: 45,
            status: 2,
            authPlugin: 'mysql_native_password',
          };
          expect(parseHandshakeV10(encodeHandshakeV10(h))).toEqual(h);
        },
      ),
    );
  });

  const responseArb = fc
    .record({
      lenenc: fc.boolean(),
      withDb: fc.boolean(),
      withAttrs: fc.boolean(),
      user: fc.stringMatching(/^[a-z_]{1,16}$/),
      database: fc.stringMatching(/^[a-z_]{1,16}$/),
      auth: fc.uint8Array({ maxLength: 300 }),
    })
    .map((r): HandshakeResponse41 => {
      let caps = CLIENT.PROTOCOL_41 | CLIENT.SECURE_CONNECTION | CLIENT.PLUGIN_AUTH;
      if (r.lenenc) caps |= CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA;
      if (r.withDb) caps |= CLIENT.CONNECT_WITH_DB;
      if (r.withAttrs) caps |= CLIENT.CONNECT_ATTRS;
      return {
        capabilities: caps,
        maxPacketSize: 0x1000000,
        charset: 45,
        filler: Buffer.alloc(23),
        user: r.user,
        // Without the lenenc flag the auth response has a one-byte length.
        authResponse: Buffer.from(r.lenenc ? r.auth : r.auth.slice(0, 255)),
        ...(r.withDb && { database: r.database }),
        authPlugin: 'mysql_native_password',
        ...(r.withAttrs && { attributes: Buffer.from([4, 1, 0x61, 1, 0x62]) }),
      };
    });

  it('HandshakeResponse41 round-trips (lenenc or 1-byte auth data, database, attributes)', () => {
    fc.assert(
      fc.property(responseArb, (r) => {
        expect(parseHandshakeResponse41(encodeHandshakeResponse41(r))).toEqual(r);
      }),
    );
  });

  it('a truncated HandshakeResponse41 is a MysqlWireError, never a partial result', () => {
    fc.assert(
      fc.property(responseArb, fc.nat(), (r, cut) => {
        const bytes = encodeHandshakeResponse41(r);
        const n = cut % bytes.length;
        // Cutting inside the user name or earlier always breaks the packet.
        if (n > 32 + r.user.length) return;
        expect(() => parseHandshakeResponse41(bytes.subarray(0, n))).toThrow(MysqlWireError);
      }),
    );
  });

  it('an SSLRequest is the 32-byte prefix of a response with CLIENT_SSL', () => {
    const ssl = encodeSslRequest(CLIENT.PROTOCOL_41 | CLIENT.PLUGIN_AUTH, 45);
    expect(ssl.length).toBe(32);
    expect(isSslRequest(ssl)).toBe(true);
    expect(isSslRequest(Buffer.concat([ssl, Buffer.from('app\0')]))).toBe(false);
  });

  it('AuthSwitchRequest, cleartext password, ERR and OK', () => {
    const sw = encodeAuthSwitch('mysql_clear_password');
    expect(packetKind(sw)).toBe('auth-switch');
    expect(parseAuthSwitch(sw)).toEqual({ plugin: 'mysql_clear_password', data: Buffer.alloc(0) });
    expect(parseClearPassword(Buffer.from('tok=en\0'))).toBe('tok=en');
    expect(parseClearPassword(Buffer.from('tok'))).toBe('tok');
    const err = {
      errno: 1045,
      sqlstate: '28000',
      message: "Access denied for user 'a'@'h' (using password: YES)",
    };
    const e = encodeErr(err);
    expect(packetKind(e)).toBe('err');
    expect(parseErr(e)).toEqual(err);
    expect([...e.subarray(0, 9)]).toEqual([0xff, 0x15, 0x04, 0x23, 0x32, 0x38, 0x30, 0x30, 0x30]);
    expect(packetKind(encodeOk())).toBe('ok');
  });
});
