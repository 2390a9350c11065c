import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFlag,
  decodeMessage,
  encodeFlag,
  encodeMessage,
  HEADER_LENGTH,
  MessageType,
  PayloadType,
} from '../../src/protocol/message.js';
import { buildAcknowledge } from '../../src/protocol/payloads.js';
import { binaryFrames, loadVectors } from '../helpers/vectors.js';

const hex = (s: string) => Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex');

// SPEC 4.7 example A and B, transcribed from the hex dumps.
const EXAMPLE_A = hex(`
00 00 00 74 61 63 6b 6e 6f 77 6c 65 64 67 65 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20
20 20 20 20 00 00 00 01 00 00 01 8b cf e5 68 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03
81 23 45 67 89 ab cd ef 12 34 56 78 9a bc 4d ef 58 65 6a 2d c2 f7 8b 0b e7 f8 ec 9c c5 89 91 17
26 da 23 3a 9e d4 d0 97 e9 34 6d 4d 1e e0 ba 0e 00 00 00 00 00 00 00 b0`);
const EXAMPLE_A_PAYLOAD =
  '{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","AcknowledgedMessageSequenceNumber":5,"IsSequentialMessage":true}';
const EXAMPLE_B = hex(`
00 00 00 74 69 6e 70 75 74 5f 73 74 72 65 61 6d 5f 64 61 74 61 20 20 20 20 20 20 20 20 20 20 20
20 20 20 20 00 00 00 01 00 00 01 8b cf e5 68 7b 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 00
88 99 aa bb cc dd ee ff 00 11 22 33 44 55 46 77 43 3e bf 5b c0 3d ff a3 85 36 67 32 07 a2 12 81
61 2c ef 5f aa 9b c7 a4 d5 b9 be 2f db 12 cf 1a 00 00 00 0a 00 00 00 04 00 00 00 02`);

describe('SPEC 4.7 worked examples', () => {
  it('example A (acknowledge) encodes byte-for-byte and decodes to its fields', () => {
    const frame = Buffer.concat([EXAMPLE_A, Buffer.from(EXAMPLE_A_PAYLOAD)]);
    expect(frame.length).toBe(296);
    const encoded = encodeMessage({
      messageType: MessageType.Acknowledge,
      sequenceNumber: 0,
      flags: 3,
      payloadType: PayloadType.None,
      payload: buildAcknowledge('output_stream_data', '3fa85f64-5717-4562-b3fc-2c963f66afa6', 5),
      messageId: '12345678-9abc-4def-8123-456789abcdef',
      createdDate: 1700000000000,
    });
    expect(encoded.toString('hex')).toBe(frame.toString('hex'));
    const r = decodeMessage(frame);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.message).toMatchObject({
      headerLength: 116,
      messageType: 'acknowledge',
      schemaVersion: 1,
      createdDate: 1700000000000,
      sequenceNumber: 0,
      flags: 3,
      messageId: '12345678-9abc-4def-8123-456789abcdef',
      payloadType: 0,
      declaredPayloadLength: 176,
    });
    expect(r.message.payload.toString()).toBe(EXAMPLE_A_PAYLOAD);
  });

  it('example B (TerminateSession flag) encodes byte-for-byte and decodes to its fields', () => {
    expect(EXAMPLE_B.length).toBe(124);
    const encoded = encodeMessage({
      messageType: MessageType.InputStreamData,
      sequenceNumber: 42,
      flags: 0,
      payloadType: PayloadType.Flag,
      payload: encodeFlag(2),
      messageId: '00112233-4455-4677-8899-aabbccddeeff',
      createdDate: 1700000000123,
    });
    expect(encoded.equals(EXAMPLE_B)).toBe(true);
    const r = decodeMessage(EXAMPLE_B);
    expect(r.ok && r.message.sequenceNumber).toBe(42);
    expect(r.ok && r.message.messageId).toBe('00112233-4455-4677-8899-aabbccddeeff');
    expect(r.ok && decodeFlag(r.message.payload)).toBe(2);
  });
});

const FLAG_NAMES = ['', 'DisconnectToPort', 'TerminateSession', 'ConnectToPortError'];

describe('captured vectors', () => {
  for (const v of loadVectors()) {
    it(`${v.file}: every binary frame decodes to its recorded fields and re-encodes byte-for-byte`, () => {
      const frames = binaryFrames(v);
      expect(frames.length).toBeGreaterThan(5);
      for (const f of frames) {
        const bytes = Buffer.from(f.hex, 'hex');
        const r = decodeMessage(bytes, { strictLength: true });
        if (!r.ok) throw new Error(`${v.file}#${f.index}: ${r.error.code} ${r.error.message}`);
        const m = r.message;
        expect({
          messageType: m.messageType,
          sequenceNumber: m.sequenceNumber,
          flags: m.flags,
          payloadType: m.payloadType,
          payloadLength: m.payload.length,
          messageId: m.messageId,
          createdDate: m.createdDate,
        }).toEqual({
          messageType: f.messageType,
          sequenceNumber: f.sequenceNumber,
          flags: f.flags,
          payloadType: f.payloadType,
          payloadLength: f.payloadLength,
          messageId: f.messageId,
          createdDate: f.createdDate,
        });
        if (f.payloadText !== undefined) expect(m.payload.toString('utf8')).toBe(f.payloadText);
        if (f.flag !== undefined) expect(FLAG_NAMES[decodeFlag(m.payload) ?? 0]).toBe(f.flag);
        const again = encodeMessage({ ...m, payload: m.payload });
        expect(again.toString('hex')).toBe(f.hex);
      }
    });
  }
});

describe('untrusted input', () => {
  const valid = encodeMessage({
    messageType: MessageType.OutputStreamData,
    sequenceNumber: 7,
    flags: 0,
    payloadType: PayloadType.Output,
    payload: Buffer.from('hello world'),
  });

  it('rejects truncated frames, bad header lengths, zero dates and bad digests with typed codes', () => {
    const cases: Array<[Buffer, string]> = [
      [valid.subarray(0, 100), 'FRAME_TRUNCATED'],
      [Buffer.alloc(0), 'FRAME_TRUNCATED'],
      [Buffer.from(valid).fill(0, 0, 4), 'BAD_HEADER_LENGTH'],
      [withU32(valid, 0, 5000), 'BAD_HEADER_LENGTH'],
      [withU32(valid, 0, 100), 'BAD_HEADER_LENGTH'],
      [Buffer.from(valid).fill(0x20, 4, 36), 'EMPTY_MESSAGE_TYPE'],
      [Buffer.from(valid).fill(0, 40, 48), 'ZERO_CREATED_DATE'],
      [flipLastByte(valid), 'DIGEST_MISMATCH'],
    ];
    for (const [frame, code] of cases) {
      const r = decodeMessage(frame);
      expect(r.ok, code).toBe(false);
      if (!r.ok) expect(r.error.code).toBe(code);
    }
  });

  it('trusts the bytes present over PayloadLength, as upstream does, unless strict', () => {
    const lying = withU32(valid, HEADER_LENGTH, 3);
    const lenient = decodeMessage(lying);
    expect(lenient.ok && lenient.message.payload.toString()).toBe('hello world');
    const strict = decodeMessage(lying, { strictLength: true });
    expect(!strict.ok && strict.error.code).toBe('PAYLOAD_LENGTH_MISMATCH');
  });

  it('accepts start/pause_publication without validation (SPEC trap 17)', () => {
    const pub = encodeMessage({
      messageType: MessageType.PausePublication,
      sequenceNumber: 0,
      flags: 0,
      payloadType: 0,
      payload: Buffer.from('x'),
    });
    const broken = flipLastByte(pub).fill(0, 40, 48);
    const r = decodeMessage(broken);
    expect(r.ok && r.message.messageType).toBe('pause_publication');
  });

  it('NUL-padded message types decode like space-padded ones', () => {
    const nul = Buffer.from(valid);
    nul.fill(0, 4 + 'output_stream_data'.length, 36);
    const r = decodeMessage(nul);
    expect(r.ok && r.message.messageType).toBe('output_stream_data');
  });

  it('never throws on arbitrary bytes or mutations of a valid frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        decodeMessage(bytes);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), (i, b) => {
        const m = Buffer.from(valid);
        m[i] = b;
        decodeMessage(m);
        decodeMessage(m.subarray(0, i));
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips arbitrary field values', () => {
    fc.assert(
      fc.property(
        fc.record({
          messageType: fc.constantFrom(...Object.values(MessageType)),
          sequenceNumber: fc.maxSafeNat(),
          flags: fc.integer({ min: 0, max: 3 }),
          payloadType: fc.integer({ min: 0, max: 12 }),
          payload: fc.uint8Array({ minLength: 1, maxLength: 2048 }),
          messageId: fc.uuid({ version: 4 }),
          createdDate: fc.integer({ min: 1, max: 2 ** 48 }),
        }),
        (m) => {
          const r = decodeMessage(encodeMessage(m), { strictLength: true });
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          expect(r.message.messageType).toBe(m.messageType);
          expect(r.message.sequenceNumber).toBe(m.sequenceNumber);
          expect(r.message.messageId).toBe(m.messageId.toLowerCase());
          expect(r.message.createdDate).toBe(m.createdDate);
          expect(Buffer.compare(r.message.payload, Buffer.from(m.payload))).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

function withU32(buf: Buffer, off: number, v: number): Buffer {
  const b = Buffer.from(buf);
  b.writeUInt32BE(v, off);
  return b;
}

function flipLastByte(buf: Buffer): Buffer {
  const b = Buffer.from(buf);
  b[b.length - 1] ^= 0xff;
  return b;
}

describe('acknowledge payloads', () => {
  it('the fast sequence parser agrees with JSON.parse on every form', async () => {
    const { parseAckSequence, buildAcknowledge: build } = await import('../../src/protocol/payloads.js');
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.uuid({ version: 4 }), (seq, id) => {
        expect(parseAckSequence(build('output_stream_data', id, seq))).toBe(seq);
        const spaced = Buffer.from(
          JSON.stringify({ IsSequentialMessage: true, AcknowledgedMessageSequenceNumber: seq }, null, 1),
        );
        expect(parseAckSequence(spaced)).toBe(seq);
      }),
    );
    expect(parseAckSequence(Buffer.from('{"AcknowledgedMessageSequenceNumber":1.5}'))).toBeUndefined();
    expect(parseAckSequence(Buffer.from('{"AcknowledgedMessageSequenceNumber":-3}'))).toBeUndefined();
    expect(parseAckSequence(Buffer.from('not json'))).toBeUndefined();
  });

  it('generated message ids are valid v4 UUIDs and distinct', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const r = decodeMessage(
        encodeMessage({
          messageType: 'acknowledge',
          sequenceNumber: 0,
          flags: 3,
          payloadType: 0,
          payload: Buffer.from('{}'),
        }),
      );
      if (!r.ok) throw r.error;
      expect(r.message.messageId).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      ids.add(r.message.messageId);
    }
    expect(ids.size).toBe(3000);
  });
});
