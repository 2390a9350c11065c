/**
 * Property runs against the decoders with arbitrary and mutated input: they must never throw, and
 * a valid frame with one byte flipped must never decode as the same frame (the digest catches it).
 */
import fc from 'fast-check';
import { DataChannel } from '../../src/protocol/data-channel.js';
import {
  decodeMessage,
  encodeMessage,
  MessageType,
  PAYLOAD_OFFSET,
  PayloadType,
} from '../../src/protocol/message.js';
import {
  parseAcknowledge,
  parseChannelClosed,
  parseHandshakeComplete,
  parseHandshakeRequest,
  parseHandshakeResponse,
} from '../../src/protocol/payloads.js';
import { SmuxSession } from '../../src/protocol/smux.js';

export function runDecoderProperties(cases: number, seed: number): { cases: number; failures: string[] } {
  const failures: string[] = [];
  const per = Math.max(1, Math.floor(cases / 4));
  const check = (name: string, prop: fc.IProperty<unknown>) => {
    const r = fc.check(prop, { numRuns: per, seed });
    if (r.failed) failures.push(`${name}: ${fc.defaultReportMessage(r)?.slice(0, 500)}`);
  };
  check(
    'decodeMessage never throws on arbitrary bytes',
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = decodeMessage(bytes);
      return r.ok || typeof r.error.code === 'string';
    }),
  );
  check(
    'a flipped payload byte is refused (digest)',
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 1024 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (payload, pos, x) => {
        const frame = encodeMessage({
          messageType: MessageType.OutputStreamData,
          sequenceNumber: 7,
          flags: 0,
          payloadType: PayloadType.Output,
          payload,
        });
        const i = pos % frame.length;
        const bad = Buffer.from(frame);
        bad[i] ^= x;
        const r = decodeMessage(bad, { strictLength: true });
        // A flip inside the payload must be caught by the digest; header flips may decode (or not).
        return i < PAYLOAD_OFFSET || !r.ok;
      },
    ),
  );
  check(
    'payload parsers never throw',
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const b = Buffer.from(bytes);
      parseAcknowledge(b);
      parseHandshakeRequest(b);
      parseHandshakeResponse(b);
      parseHandshakeComplete(b);
      try {
        parseChannelClosed(b);
      } catch {
        return false;
      }
      return true;
    }),
  );
  check(
    'smux and the data channel survive arbitrary input without throwing',
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 8 }), (chunks) => {
      const smux = new SmuxSession(
        { role: 'client', keepalive: false },
        { output: () => {}, streamOpened: () => {}, data: () => {}, streamClosed: () => {}, error: () => {} },
        0,
      );
      const ch = new DataChannel({ role: 'client', now: () => 1, send: () => {}, deliver: () => true });
      for (const c of chunks) {
        smux.receive(Buffer.from(c));
        ch.receive(c);
      }
      return true;
    }),
  );
  return { cases: per * 4, failures };
}
