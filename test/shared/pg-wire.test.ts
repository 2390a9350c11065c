import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  authenticationCleartextPassword,
  authenticationOk,
  authenticationSasl,
  CANCEL_REQUEST_CODE,
  cancelRequest,
  errorResponse,
  GSSENC_REQUEST_CODE,
  gssencRequest,
  MAX_STARTUP_PACKET_LENGTH,
  MessageReader,
  PgWireError,
  PROTOCOL_3_0,
  parseErrorFields,
  parsePasswordMessage,
  parseStartupPacket,
  passwordMessage,
  readyForQuery,
  SSL_REQUEST_CODE,
  sslRequest,
  startupMessage,
} from '../../src/shared/pg-wire.js';

type Expected = { mode: 'startup' | 'typed'; raw: Buffer };

const paramName = fc.stringMatching(/^[a-z_]{1,12}$/);
const paramValue = fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0'));

const startupArb = fc.oneof(
  fc.constant(sslRequest()),
  fc.constant(gssencRequest()),
  fc.tuple(fc.integer(), fc.integer()).map(([p, k]) => cancelRequest(p, k)),
  fc.dictionary(paramName, paramValue, { maxKeys: 6 }).map((p) => startupMessage(p)),
);
const typedArb = fc.oneof(
  paramValue.map((pw) => passwordMessage(pw)),
  fc.constant(authenticationOk()),
  fc.array(fc.stringMatching(/^[A-Z0-9-]{1,20}$/), { maxLength: 3 }).map((m) => authenticationSasl(m)),
  fc.uint8Array({ maxLength: 300 }).map((b) => {
    const out = Buffer.alloc(5 + b.length);
    out.write('d', 0, 'latin1');
    out.writeInt32BE(4 + b.length, 1);
    Buffer.from(b).copy(out, 5);
    return out;
  }),
);

/** Split points in [0, len]; duplicates give empty chunks, which the reader must ignore. */
function chunksOf(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, data.length]) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  return out;
}

describe('MessageReader', () => {
  it('yields the same startup and typed messages however the stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(startupArb, { minLength: 1, maxLength: 3 }),
        fc.array(typedArb, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (startups, typedMsgs, cuts) => {
          const expected: Expected[] = [
            ...startups.map((raw) => ({ mode: 'startup' as const, raw })),
            ...typedMsgs.map((raw) => ({ mode: 'typed' as const, raw })),
          ];
          const stream = Buffer.concat(expected.map((e) => e.raw));
          const reader = new MessageReader();
          const got: Buffer[] = [];
          for (const chunk of chunksOf(stream, cuts)) {
            reader.push(chunk);
            for (;;) {
              const next = expected[got.length];
              if (!next) break;
              const msg = next.mode === 'startup' ? reader.nextStartup() : reader.nextTyped()?.raw;
              if (!msg) break;
              got.push(Buffer.from(msg));
            }
          }
          expect(got.map((b) => b.toString('hex'))).toEqual(expected.map((e) => e.raw.toString('hex')));
          expect(reader.buffered).toBe(0);
        },
      ),
    );
  });

  it('gives back bytes after a message untouched (takeRemaining)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), (tail, cut) => {
        const stream = Buffer.concat([sslRequest(), Buffer.from(tail)]);
        const reader = new MessageReader();
        const at = cut % (stream.length + 1);
        reader.push(stream.subarray(0, at));
        reader.push(stream.subarray(at));
        expect(reader.nextStartup()?.equals(sslRequest())).toBe(true);
        expect(reader.takeRemaining().equals(Buffer.from(tail))).toBe(true);
        expect(reader.buffered).toBe(0);
      }),
    );
  });

  it('refuses startup lengths PostgreSQL refuses, before the packet is whole', () => {
    for (const length of [0, 4, 7, MAX_STARTUP_PACKET_LENGTH + 5, -1]) {
      const reader = new MessageReader();
      const b = Buffer.alloc(4);
      b.writeInt32BE(length, 0);
      reader.push(b);
      expect(() => reader.nextStartup()).toThrow(PgWireError);
    }
    const ok = new MessageReader();
    const b = Buffer.alloc(4);
    b.writeInt32BE(MAX_STARTUP_PACKET_LENGTH + 4, 0);
    ok.push(b);
    expect(ok.nextStartup()).toBeUndefined();
  });

  it('refuses typed messages longer than its limit or shorter than the length word', () => {
    const reader = new MessageReader(100);
    reader.push(Buffer.from([0x70, 0, 0, 0, 101]));
    expect(() => reader.nextTyped()).toThrow(/invalid message length 101/);
    const short = new MessageReader();
    short.push(Buffer.from([0x70, 0, 0, 0, 3]));
    expect(() => short.nextTyped()).toThrow(PgWireError);
  });
});

describe('startup packets', () => {
  it('parses StartupMessage parameters, user and database', () => {
    const raw = startupMessage({ user: 'alice', database: 'orders', application_name: 'psql' });
    const p = parseStartupPacket(raw);
    expect(p).toMatchObject({
      kind: 'startup',
      protocol: PROTOCOL_3_0,
      user: 'alice',
      database: 'orders',
      params: { user: 'alice', database: 'orders', application_name: 'psql' },
    });
  });

  it('keeps a parameter named __proto__ as its own key (found by the property below)', () => {
    const params: Record<string, string> = { user: 'u' };
    Object.defineProperty(params, '__proto__', { value: 'x', enumerable: true });
    const p = parseStartupPacket(startupMessage(params));
    expect(p.kind === 'startup' && Object.entries(p.params)).toEqual([
      ['user', 'u'],
      ['__proto__', 'x'],
    ]);
    expect(p.kind === 'startup' && Object.getPrototypeOf(p.params)).toBe(null);
  });

  it('round-trips arbitrary parameters', () => {
    fc.assert(
      fc.property(fc.dictionary(paramName, paramValue, { maxKeys: 8 }), (params) => {
        const p = parseStartupPacket(startupMessage(params));
        expect(p.kind === 'startup' && p.params).toEqual(params);
      }),
    );
  });

  it('recognises SSLRequest, GSSENCRequest and CancelRequest codes', () => {
    expect(sslRequest().readInt32BE(4)).toBe(SSL_REQUEST_CODE);
    expect(gssencRequest().readInt32BE(4)).toBe(GSSENC_REQUEST_CODE);
    expect(parseStartupPacket(sslRequest()).kind).toBe('ssl');
    expect(parseStartupPacket(gssencRequest()).kind).toBe('gssenc');
    const c = parseStartupPacket(cancelRequest(1234, -5));
    expect(c).toMatchObject({ kind: 'cancel', processId: 1234, secretKey: -5 });
    expect(cancelRequest(1, 2).readInt32BE(4)).toBe(CANCEL_REQUEST_CODE);
  });

  it('refuses other protocol versions and broken layouts', () => {
    expect(() => parseStartupPacket(startupMessage({ user: 'a' }, 2 << 16))).toThrow(
      /unsupported frontend protocol 2\.0/,
    );
    const noTerminator = startupMessage({ user: 'a' }).subarray(0, -1);
    const fixed = Buffer.from(noTerminator);
    fixed.writeInt32BE(fixed.length, 0);
    expect(() => parseStartupPacket(fixed)).toThrow(PgWireError);
    const noValue = Buffer.concat([Buffer.alloc(4), Buffer.from([0, 3, 0, 0]), Buffer.from('user\0')]);
    noValue.writeInt32BE(noValue.length, 0);
    expect(() => parseStartupPacket(noValue)).toThrow(PgWireError);
  });
});

describe('server messages', () => {
  it('builds Authentication messages byte-exact', () => {
    expect(authenticationOk().toString('hex')).toBe('520000000800000000');
    expect(authenticationCleartextPassword().toString('hex')).toBe('520000000800000003');
    expect(authenticationSasl(['SCRAM-SHA-256'])).toEqual(
      Buffer.concat([Buffer.from('R\0\0\0\x17\0\0\0\x0a', 'latin1'), Buffer.from('SCRAM-SHA-256\0\0')]),
    );
    expect(readyForQuery().toString('latin1')).toBe('Z\0\0\0\x05I');
  });

  it('builds an ErrorResponse that parses back, terminated', () => {
    const raw = errorResponse({
      severity: 'FATAL',
      code: '28P01',
      message: 'PAM authentication failed for user "alice"',
      detail: 'why',
    });
    const reader = new MessageReader();
    reader.push(raw);
    const msg = reader.nextTyped()!;
    expect(msg.type).toBe('E');
    expect(raw[raw.length - 1]).toBe(0);
    expect(parseErrorFields(msg.body)).toEqual({
      S: 'FATAL',
      V: 'FATAL',
      C: '28P01',
      M: 'PAM authentication failed for user "alice"',
      D: 'why',
    });
  });

  it('parses a PasswordMessage and refuses a malformed one', () => {
    const reader = new MessageReader();
    reader.push(passwordMessage('tok:en/?x=1'));
    expect(parsePasswordMessage(reader.nextTyped()!)).toBe('tok:en/?x=1');
    const body = Buffer.from('ab\0cd\0');
    expect(() => parsePasswordMessage({ type: 'p', body, raw: body })).toThrow(
      /invalid password packet size/,
    );
    expect(() => parsePasswordMessage({ type: 'Q', body, raw: body })).toThrow(PgWireError);
  });
});
