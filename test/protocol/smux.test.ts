import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ProtocolError } from '../../src/protocol/errors.js';
import {
  encodeSmuxHeader,
  SMUX_HEADER_SIZE,
  SMUX_MAX_FRAME_SIZE,
  SmuxCmd,
  type SmuxHandlers,
  type SmuxOptions,
  SmuxSession,
} from '../../src/protocol/smux.js';

interface Recorder {
  handlers: SmuxHandlers;
  out: Buffer[];
  opened: number[];
  closed: number[];
  data: Map<number, Buffer[]>;
  errors: ProtocolError[];
  /** Every handler call except output, in order; data calls of one stream in a row are merged. */
  log: { ev: 'open' | 'data' | 'close'; sid: number; pieces?: Buffer[] }[];
  /** Handler calls that arrived after error(): must stay 0. */
  callsAfterError: number;
  /** data() calls with no bytes: must stay 0. */
  emptyData: number;
  output(): Buffer;
  received(sid: number): Buffer;
}

function recorder(): Recorder {
  const r: Recorder = {
    out: [],
    opened: [],
    closed: [],
    data: new Map(),
    errors: [],
    log: [],
    callsAfterError: 0,
    emptyData: 0,
    handlers: {
      output: (bytes) => r.out.push(bytes),
      streamOpened: (sid) => {
        if (r.errors.length > 0) r.callsAfterError++;
        r.opened.push(sid);
        r.log.push({ ev: 'open', sid });
      },
      data: (sid, bytes) => {
        if (r.errors.length > 0) r.callsAfterError++;
        if (bytes.length === 0) r.emptyData++;
        const list = r.data.get(sid) ?? [];
        list.push(bytes);
        r.data.set(sid, list);
        const last = r.log[r.log.length - 1];
        if (last?.ev === 'data' && last.sid === sid) last.pieces!.push(bytes);
        else r.log.push({ ev: 'data', sid, pieces: [bytes] });
      },
      streamClosed: (sid) => {
        if (r.errors.length > 0) r.callsAfterError++;
        r.closed.push(sid);
        r.log.push({ ev: 'close', sid });
      },
      error: (err) => {
        if (r.errors.length > 0) r.callsAfterError++;
        r.errors.push(err);
      },
    },
    output: () => Buffer.concat(r.out.splice(0)),
    received: (sid) => Buffer.concat(r.data.get(sid) ?? []),
  };
  return r;
}

function session(role: 'client' | 'server', extra: Partial<SmuxOptions> = {}, now = 0) {
  const rec = recorder();
  const s = new SmuxSession({ role, keepalive: false, ...extra }, rec.handlers, now);
  return { s, rec };
}

/** One direction of an in-memory byte stream, cut into chunks of the given sizes (cycled). */
class Link {
  private pending: Buffer[] = [];
  constructor(
    private readonly from: Recorder,
    private readonly to: SmuxSession,
    private readonly chunkSizes: readonly number[],
  ) {}

  get backlog(): number {
    this.collect();
    return this.pending.reduce((n, b) => n + b.length, 0);
  }

  deliver(limit = Number.POSITIVE_INFINITY): void {
    this.collect();
    const all = Buffer.concat(this.pending);
    const end = Math.min(limit, all.length);
    let offset = 0;
    for (let k = 0; offset < end; k++) {
      const size = this.chunkSizes[k % this.chunkSizes.length];
      const next = Math.min(offset + size, end);
      this.to.receive(all.subarray(offset, next));
      offset = next;
    }
    this.pending = end < all.length ? [all.subarray(end)] : [];
  }

  private collect(): void {
    this.pending.push(...this.from.out.splice(0));
  }
}

function pair(
  c2sChunks: readonly number[] = [1024],
  s2cChunks: readonly number[] = [1024],
  extra: Partial<SmuxOptions> = {},
) {
  const client = session('client', extra);
  const server = session('server', extra);
  const c2s = new Link(client.rec, server.s, c2sChunks);
  const s2c = new Link(server.rec, client.s, s2cChunks);
  return { client, server, c2s, s2c };
}

/** Deterministic pseudo-random bytes (xorshift32), so large payloads cost nothing to shrink. */
function payload(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const hex = (s: string) => Buffer.from(s.replaceAll(' ', ''), 'hex');

describe('wire format (SPEC 10.3.2 examples)', () => {
  it('encodes SYN 3, PSH "hello" on 3, FIN 3, then SYN 5 byte for byte', () => {
    const { s, rec } = session('client');
    expect(s.openStream()).toBe(3);
    expect(rec.output()).toEqual(hex('01 00 00 00 03 00 00 00'));
    s.write(3, Buffer.from('hello'));
    expect(rec.out).toHaveLength(1);
    expect(rec.output()).toEqual(hex('01 02 05 00 03 00 00 00 68 65 6c 6c 6f'));
    s.closeStream(3);
    expect(rec.output()).toEqual(hex('01 01 00 00 03 00 00 00'));
    expect(s.openStream()).toBe(5);
    expect(rec.output()).toEqual(hex('01 00 00 00 05 00 00 00'));
  });

  it('decodes the same bytes on the server side', () => {
    const { s, rec } = session('server');
    s.receive(hex('01 00 00 00 03 00 00 00 01 02 05 00 03 00 00 00 68 65 6c 6c 6f'));
    expect(rec.opened).toEqual([3]);
    expect(rec.received(3).toString()).toBe('hello');
    expect(s.hasStream(3)).toBe(true);
    s.receive(hex('01 01 00 00 03 00 00 00 01 00 00 00 05 00 00 00'));
    expect(rec.closed).toEqual([3]);
    expect(rec.opened).toEqual([3, 5]);
    expect(s.hasStream(3)).toBe(false);
    expect(s.streamCount).toBe(1);
    expect(rec.errors).toEqual([]);
  });

  it('encodeSmuxHeader writes little-endian length and stream id', () => {
    expect(encodeSmuxHeader(SmuxCmd.PSH, 0x1234, 0xa1b2c3d4)).toEqual(hex('01 02 34 12 d4 c3 b2 a1'));
    expect(encodeSmuxHeader(SmuxCmd.NOP, 0, 0)).toEqual(hex('01 03 00 00 00 00 00 00'));
  });

  it('server role opens even ids starting at 2', () => {
    const { s, rec } = session('server');
    expect([s.openStream(), s.openStream()]).toEqual([2, 4]);
    expect(rec.output()).toEqual(hex('01 00 00 00 02 00 00 00 01 00 00 00 04 00 00 00'));
  });

  it('splits writes into frames of at most maxFrameSize data bytes, without copying large pieces', () => {
    const { s, rec } = session('client');
    s.openStream();
    rec.out.length = 0;
    const big = payload(SMUX_MAX_FRAME_SIZE * 2 + 5, 7);
    s.write(3, big);
    const wire = rec.output();
    expect(wire.length).toBe(big.length + 3 * SMUX_HEADER_SIZE);
    expect(wire.subarray(0, 8)).toEqual(hex('01 02 00 80 03 00 00 00'));
    expect(wire.subarray(8 + 32768, 16 + 32768)).toEqual(hex('01 02 00 80 03 00 00 00'));
    expect(wire.subarray(16 + 65536, 24 + 65536)).toEqual(hex('01 02 05 00 03 00 00 00'));

    s.write(3, big);
    const pieces = rec.out.splice(0).filter((b) => b.length === SMUX_MAX_FRAME_SIZE);
    expect(pieces).toHaveLength(2);
    for (const p of pieces) expect(p.buffer).toBe(big.buffer);

    s.write(3, new Uint8Array(0));
    expect(rec.out).toEqual([]);
  });

  it('honours a smaller maxFrameSize and accepts a plain Uint8Array', () => {
    const { s, rec } = session('client', { maxFrameSize: 4 });
    s.openStream();
    rec.out.length = 0;
    s.write(3, new Uint8Array([1, 2, 3, 4, 5, 6]));
    expect(rec.output()).toEqual(hex('01 02 04 00 03 00 00 00 01 02 03 04 01 02 02 00 03 00 00 00 05 06'));
  });

  it('hands data() a view of the input chunk when the frame body lies in one chunk', () => {
    const { s, rec } = session('server');
    const chunk = Buffer.concat([
      encodeSmuxHeader(SmuxCmd.SYN, 0, 3),
      encodeSmuxHeader(SmuxCmd.PSH, 3, 3),
      hex('aabbcc'),
    ]);
    s.receive(chunk);
    const [got] = rec.data.get(3)!;
    expect(got).toEqual(hex('aabbcc'));
    expect(got.buffer).toBe(chunk.buffer);
    expect(got.byteOffset).toBe(chunk.byteOffset + 16);

    const body = payload(60_000, 3);
    const big = Buffer.concat([encodeSmuxHeader(SmuxCmd.PSH, body.length, 3), body]);
    s.receive(big);
    expect(rec.data.get(3)).toHaveLength(2);
    expect(rec.data.get(3)![1].buffer).toBe(big.buffer);
    expect(rec.data.get(3)![1].equals(body)).toBe(true);
  });

  it('refuses new streams past the end of the id space but keeps the session', () => {
    class NearEnd extends SmuxSession {
      constructor(role: 'client' | 'server', handlers: SmuxHandlers, last: number) {
        super({ role, keepalive: false }, handlers, 0);
        this.lastStreamId = last;
      }
    }
    const rec = recorder();
    const c = new NearEnd('client', rec.handlers, 0xfffffffd);
    expect(c.openStream()).toBe(0xffffffff);
    expect(rec.output()).toEqual(hex('01 00 00 00 ff ff ff ff'));
    for (let i = 0; i < 2; i++) {
      expect(() => c.openStream()).toThrow(expect.objectContaining({ code: 'SMUX_STREAM_IDS_EXHAUSTED' }));
    }
    expect(rec.out).toEqual([]);
    expect(c.isClosed).toBe(false);
    c.write(0xffffffff, Buffer.from('x'));
    expect(rec.output()).toEqual(hex('01 02 01 00 ff ff ff ff 78'));

    const srec = recorder();
    const srv = new NearEnd('server', srec.handlers, 0xfffffffc);
    expect(srv.openStream()).toBe(0xfffffffe);
    expect(() => srv.openStream()).toThrow(expect.objectContaining({ code: 'SMUX_STREAM_IDS_EXHAUSTED' }));
  });
});

describe('many streams over one session pair', () => {
  const sizeArb = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 300 }) },
    { weight: 3, arbitrary: fc.integer({ min: 301, max: 5000 }) },
    { weight: 1, arbitrary: fc.constantFrom(32767, 32768, 32769, 65535, 65536, 70001) },
  );
  const chunkingArb = fc.oneof(
    fc.constant([1]),
    fc.constant([1024]),
    fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 6 }),
  );
  const actionArb = fc.oneof(
    fc.record({
      kind: fc.constant('write' as const),
      stream: fc.nat(),
      toServer: fc.boolean(),
      size: sizeArb,
      seed: fc.integer(),
    }),
    fc.record({
      kind: fc.constant('deliver' as const),
      toServer: fc.boolean(),
      bytes: fc.integer({ min: 1, max: 80_000 }),
    }),
  );

  it('delivers every stream byte-exact and in order in both directions, under any chunking', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(actionArb, { maxLength: 30 }),
        chunkingArb,
        chunkingArb,
        (nStreams, actions, c2sChunks, s2cChunks) => {
          // Byte-at-a-time delivery of tens of kilobytes is slow and proves nothing more.
          const total = actions.reduce((n, a) => n + (a.kind === 'write' ? a.size : 0), 0);
          fc.pre(!(c2sChunks.length === 1 && c2sChunks[0] === 1 && total > 150_000));
          fc.pre(!(s2cChunks.length === 1 && s2cChunks[0] === 1 && total > 150_000));

          const { client, server, c2s, s2c } = pair(c2sChunks, s2cChunks);
          const sids: number[] = [];
          const sent = { toServer: new Map<number, Buffer[]>(), toClient: new Map<number, Buffer[]>() };
          const streamFor = (index: number) => {
            while (sids.length <= index) sids.push(client.s.openStream());
            return sids[index];
          };

          for (const a of actions) {
            if (a.kind === 'deliver') {
              (a.toServer ? c2s : s2c).deliver(a.bytes);
              continue;
            }
            const sid = streamFor(a.stream % nStreams);
            const bytes = payload(a.size, a.seed);
            if (a.toServer) {
              client.s.write(sid, bytes);
            } else {
              if (!server.s.hasStream(sid)) c2s.deliver();
              server.s.write(sid, bytes);
            }
            const log = a.toServer ? sent.toServer : sent.toClient;
            log.set(sid, [...(log.get(sid) ?? []), bytes]);
          }
          c2s.deliver();
          s2c.deliver();

          expect(server.rec.opened).toEqual(sids);
          for (const sid of sids) {
            expect(server.rec.received(sid).equals(Buffer.concat(sent.toServer.get(sid) ?? []))).toBe(true);
            expect(client.rec.received(sid).equals(Buffer.concat(sent.toClient.get(sid) ?? []))).toBe(true);
          }

          // Close half the streams from each side; the other side must see each FIN.
          const byClient = sids.filter((_, i) => i % 2 === 0);
          const byServer = sids.filter((_, i) => i % 2 === 1);
          for (const sid of byClient) client.s.closeStream(sid);
          for (const sid of byServer) server.s.closeStream(sid);
          c2s.deliver();
          s2c.deliver();
          expect(server.rec.closed).toEqual(byClient);
          expect(client.rec.closed).toEqual(byServer);
          expect([client.s.streamCount, server.s.streamCount]).toEqual([0, 0]);
          expect([...client.rec.errors, ...server.rec.errors]).toEqual([]);
          expect([client.rec.emptyData, server.rec.emptyData]).toEqual([0, 0]);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('stream close (FIN)', () => {
  it('client close reaches the server, server close reaches the client', () => {
    const { client, server, c2s, s2c } = pair();
    const a = client.s.openStream();
    const b = client.s.openStream();
    c2s.deliver();
    expect(server.rec.opened).toEqual([3, 5]);

    client.s.closeStream(a);
    expect(client.s.hasStream(a)).toBe(false);
    c2s.deliver();
    expect(server.rec.closed).toEqual([a]);
    expect(server.s.hasStream(a)).toBe(false);

    server.s.closeStream(b);
    expect(server.s.hasStream(b)).toBe(false);
    s2c.deliver();
    expect(client.rec.closed).toEqual([b]);
    expect(client.s.streamCount).toBe(0);
    expect(server.s.streamCount).toBe(0);

    // Neither side answers a FIN with its own: the stream is already forgotten.
    client.s.closeStream(b);
    server.s.closeStream(a);
    expect([c2s.backlog, s2c.backlog]).toEqual([0, 0]);
  });

  it('discards PSH for a closed or unknown stream and carries on', () => {
    const { s, rec } = session('server');
    s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, 3));
    s.receive(encodeSmuxHeader(SmuxCmd.FIN, 0, 3));
    s.receive(Buffer.concat([encodeSmuxHeader(SmuxCmd.PSH, 5, 3), Buffer.from('late!')]));
    s.receive(Buffer.concat([encodeSmuxHeader(SmuxCmd.PSH, 2, 99), Buffer.from('??')]));
    s.receive(encodeSmuxHeader(SmuxCmd.FIN, 0, 77));
    s.receive(
      Buffer.concat([encodeSmuxHeader(SmuxCmd.SYN, 0, 5), encodeSmuxHeader(SmuxCmd.PSH, 2, 5), hex('0102')]),
    );
    expect(rec.data.has(3)).toBe(false);
    expect(rec.data.has(99)).toBe(false);
    expect(rec.received(5)).toEqual(hex('0102'));
    expect(rec.opened).toEqual([3, 5]);
    expect(rec.closed).toEqual([3]);
    expect(rec.errors).toEqual([]);
  });

  it('stops delivering the rest of a frame once the stream is closed locally', () => {
    const { s, rec } = session('server');
    s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, 3));
    s.receive(Buffer.concat([encodeSmuxHeader(SmuxCmd.PSH, 6, 3), Buffer.from('abc')]));
    s.closeStream(3);
    s.receive(Buffer.from('def'));
    s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, 5));
    expect(rec.received(3).toString()).toBe('abc');
    expect(rec.opened).toEqual([3, 5]);
  });

  it('ignores a duplicate SYN, and writes or closes on unknown streams emit nothing', () => {
    const { s, rec } = session('server');
    s.receive(Buffer.concat([encodeSmuxHeader(SmuxCmd.SYN, 0, 3), encodeSmuxHeader(SmuxCmd.SYN, 0, 3)]));
    expect(rec.opened).toEqual([3]);
    s.write(9, Buffer.from('x'));
    s.closeStream(9);
    expect(rec.out).toEqual([]);
  });
});

describe('protocol errors', () => {
  const garbage: [string, Buffer][] = [
    ['version 2', hex('02 00 00 00 03 00 00 00')],
    ['cmd 4 (UPD)', Buffer.concat([encodeSmuxHeader(4, 8, 3), Buffer.alloc(8)])],
    ['cmd 9', encodeSmuxHeader(9, 0, 3)],
  ];

  for (const [name, frame] of garbage) {
    it(`fails the session once on ${name} and ignores later input`, () => {
      const { s, rec } = session('server');
      const other = session('server');
      // The bad frame sits between two good ones in one chunk, and is also split byte by byte.
      s.receive(
        Buffer.concat([encodeSmuxHeader(SmuxCmd.SYN, 0, 3), frame, encodeSmuxHeader(SmuxCmd.SYN, 0, 5)]),
      );
      expect(rec.errors).toHaveLength(1);
      expect(rec.errors[0].code).toBe('SMUX_PROTOCOL');
      expect(rec.opened).toEqual([3]);
      expect(s.isClosed).toBe(true);
      expect(s.streamCount).toBe(0);

      s.receive(frame);
      s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, 7));
      s.tick(1e9);
      s.write(3, Buffer.from('x'));
      s.closeStream(3);
      expect(rec.errors).toHaveLength(1);
      expect(rec.opened).toEqual([3]);
      expect(rec.out).toEqual([]);
      expect(() => s.openStream()).toThrow(expect.objectContaining({ code: 'CHANNEL_CLOSED' }));

      const split = session('server');
      for (const byte of frame) split.s.receive(Buffer.from([byte]));
      expect(split.rec.errors.map((e) => e.code)).toEqual(['SMUX_PROTOCOL']);

      other.s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, 3));
      expect(other.rec.opened).toEqual([3]);
      expect(other.rec.errors).toEqual([]);
    });
  }

  it('accepts a NOP that carries a body and skips the body', () => {
    const { s, rec } = session('server');
    s.receive(
      Buffer.concat([
        encodeSmuxHeader(SmuxCmd.NOP, 4, 0),
        hex('ffffffff'),
        encodeSmuxHeader(SmuxCmd.SYN, 0, 3),
      ]),
    );
    expect(rec.errors).toEqual([]);
    expect(rec.opened).toEqual([3]);
  });

  it('local close() emits nothing and silences the session', () => {
    const { s, rec } = session('client', { keepalive: true });
    s.openStream();
    rec.out.length = 0;
    s.close();
    s.close();
    s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, 4));
    s.tick(1e9);
    s.write(3, Buffer.from('x'));
    expect(s.isClosed).toBe(true);
    expect(s.streamCount).toBe(0);
    expect(rec.out).toEqual([]);
    expect(rec.opened).toEqual([]);
    expect(rec.errors).toEqual([]);
  });

  const rawHeader = (f: { ver: number; cmd: number; len: number; sid: number }) => {
    const h = encodeSmuxHeader(f.cmd, f.len, f.sid);
    h[0] = f.ver;
    return h;
  };
  const frameArb = fc.record({
    ver: fc.constantFrom(1, 1, 1, 1, 0, 2, 255),
    cmd: fc.integer({ min: 0, max: 10 }),
    len: fc.integer({ min: 0, max: 40 }),
    sid: fc.constantFrom(0, 1, 3, 5, 0xffffffff),
  });

  it('never throws on random bytes or random frames, and reports at most one error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }).map((bytes) => ({ bytes: Buffer.from(bytes), bad: undefined })),
          fc.array(frameArb, { maxLength: 20 }).map((frames) => ({
            bytes: Buffer.concat(frames.flatMap((f) => [rawHeader(f), Buffer.alloc(f.len, 0xab)])),
            bad: frames.some((f) => f.ver !== 1 || f.cmd > SmuxCmd.NOP),
          })),
        ),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 5 }),
        fc.constantFrom<'client' | 'server'>('client', 'server'),
        ({ bytes, bad }, chunks, role) => {
          const { s, rec } = session(role);
          let offset = 0;
          for (let k = 0; offset < bytes.length; k++) {
            const next = offset + chunks[k % chunks.length];
            s.receive(bytes.subarray(offset, next));
            offset = next;
          }
          expect(rec.errors.length).toBeLessThanOrEqual(1);
          expect(rec.callsAfterError).toBe(0);
          for (const e of rec.errors) expect(e.code).toBe('SMUX_PROTOCOL');
          if (bad !== undefined) expect(rec.errors.length).toBe(bad ? 1 : 0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('keepalive (injected time)', () => {
  const NOP = hex('01 03 00 00 00 00 00 00');

  it('sends a NOP every 10 s when on', () => {
    const { s, rec } = session('client', { keepalive: true }, 1000);
    s.tick(10_999);
    expect(rec.out).toEqual([]);
    s.tick(11_000);
    expect(rec.output()).toEqual(NOP);
    s.tick(15_000);
    expect(rec.out).toEqual([]);
    s.receive(NOP);
    s.tick(21_000);
    expect(rec.output()).toEqual(NOP);
    // A late tick sends one NOP, not one per missed interval, and keeps the 10 s grid.
    s.receive(NOP);
    s.tick(55_000);
    expect(rec.output()).toEqual(NOP);
    s.receive(NOP);
    s.tick(60_999);
    expect(rec.out).toEqual([]);
    s.tick(61_000);
    expect(rec.output()).toEqual(NOP);
  });

  it('sends nothing and never times out when off', () => {
    const { s, rec } = session('client', { keepalive: false });
    for (let t = 0; t <= 300_000; t += 1000) s.tick(t);
    expect(rec.out).toEqual([]);
    expect(rec.errors).toEqual([]);
    expect(s.isClosed).toBe(false);
  });

  it('fails with SMUX_KEEPALIVE_TIMEOUT after a silent 30 s window', () => {
    const { s, rec } = session('client', { keepalive: true });
    s.tick(29_999);
    expect(rec.errors).toEqual([]);
    s.tick(30_000);
    expect(rec.errors.map((e) => e.code)).toEqual(['SMUX_KEEPALIVE_TIMEOUT']);
    expect(s.isClosed).toBe(true);
    rec.out.length = 0;
    s.tick(40_000);
    s.tick(90_000);
    expect(rec.errors).toHaveLength(1);
    expect(rec.out).toEqual([]);
  });

  it('any received frame keeps the session alive for that window; half a header does not', () => {
    const { s, rec } = session('server', { keepalive: true });
    s.receive(encodeSmuxHeader(SmuxCmd.NOP, 0, 0));
    s.tick(30_000);
    expect(rec.errors).toEqual([]);
    s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, 3).subarray(0, 4));
    s.tick(59_999);
    expect(rec.errors).toEqual([]);
    s.tick(60_000);
    expect(rec.errors.map((e) => e.code)).toEqual(['SMUX_KEEPALIVE_TIMEOUT']);
  });

  it('honours custom interval and timeout', () => {
    const { s, rec } = session('client', {
      keepalive: true,
      keepaliveIntervalMs: 100,
      keepaliveTimeoutMs: 250,
    });
    s.tick(100);
    expect(rec.output()).toEqual(NOP);
    s.tick(249);
    expect(rec.errors).toEqual([]);
    s.tick(250);
    expect(rec.errors.map((e) => e.code)).toEqual(['SMUX_KEEPALIVE_TIMEOUT']);
  });

  it('two peers with keepalive on keep each other alive through an idle hour', () => {
    const { client, server, c2s, s2c } = pair([3], [5], { keepalive: true });
    client.s.openStream();
    for (let t = 0; t <= 3_600_000; t += 1000) {
      client.s.tick(t);
      server.s.tick(t);
      c2s.deliver();
      s2c.deliver();
    }
    expect([...client.rec.errors, ...server.rec.errors]).toEqual([]);
    expect(server.rec.opened).toEqual([3]);
  });
});

describe('real agent and plugin vectors', () => {
  interface SmuxFrame {
    ver: number;
    cmd: 'SYN' | 'FIN' | 'PSH' | 'NOP';
    sid: number;
    len: number;
    dataText?: string;
  }
  interface VectorFrame {
    direction: string;
    payloadTypeName?: string | null;
    sequenceNumber?: number;
    resend?: boolean;
    hex: string;
    smuxFramesCompleted?: SmuxFrame[];
  }
  type Event = { ev: 'open' | 'data' | 'close'; sid: number; text?: string };

  /** One direction's smux byte stream: Output payloads in sequence order, each sequence number once. */
  function direction(frames: VectorFrame[], dir: 'client->agent' | 'agent->client') {
    const bySeq = new Map<number, VectorFrame>();
    for (const f of frames) {
      if (f.direction !== dir || f.payloadTypeName !== 'Output' || f.resend) continue;
      if (!bySeq.has(f.sequenceNumber!)) bySeq.set(f.sequenceNumber!, f);
    }
    const ordered = [...bySeq.values()].sort((a, b) => a.sequenceNumber! - b.sequenceNumber!);
    const expected = ordered.flatMap((f) => f.smuxFramesCompleted ?? []);
    for (const e of expected) {
      expect(e.ver).toBe(1);
      if (e.cmd === 'PSH') expect(Buffer.byteLength(e.dataText!)).toBe(e.len);
    }
    return { payloads: ordered.map((f) => Buffer.from(f.hex, 'hex').subarray(120)), expected };
  }

  function expectedEvents(frames: SmuxFrame[]): Event[] {
    const events: Event[] = [];
    for (const f of frames) {
      const last = events[events.length - 1];
      if (f.cmd === 'SYN') events.push({ ev: 'open', sid: f.sid });
      else if (f.cmd === 'FIN') events.push({ ev: 'close', sid: f.sid });
      else if (f.cmd === 'PSH' && last?.ev === 'data' && last.sid === f.sid) last.text += f.dataText!;
      else if (f.cmd === 'PSH') events.push({ ev: 'data', sid: f.sid, text: f.dataText });
    }
    return events;
  }

  const actualEvents = (rec: Recorder): Event[] =>
    rec.log.map(({ ev, sid, pieces }) =>
      pieces ? { ev, sid, text: Buffer.concat(pieces).toString() } : { ev, sid },
    );

  for (const file of [
    'real-agent-mux.json',
    'real-agent-mux-two-streams.json',
    'real-agent-connect-error.json',
  ]) {
    it(`${file}: decodes both directions into the recorded smux frames`, () => {
      const { frames } = JSON.parse(
        readFileSync(new URL(`../fixtures/${file}`, import.meta.url), 'utf8'),
      ) as {
        frames: VectorFrame[];
      };
      const up = direction(frames, 'client->agent');
      const down = direction(frames, 'agent->client');
      expect(up.expected.length).toBeGreaterThan(0);
      expect(down.expected.length).toBeGreaterThan(0);

      const agent = session('server');
      for (const p of up.payloads) agent.s.receive(p);
      expect(actualEvents(agent.rec)).toEqual(expectedEvents(up.expected));

      // The agent's bytes only make sense to a client that opened the streams (ids 3, 5, ...).
      const plugin = session('client');
      const synSids = up.expected.filter((f) => f.cmd === 'SYN').map((f) => f.sid);
      expect(synSids.map(() => plugin.s.openStream())).toEqual(synSids);
      for (const p of down.payloads) plugin.s.receive(p);
      expect(actualEvents(plugin.rec)).toEqual(expectedEvents(down.expected));
      expect([...agent.rec.errors, ...plugin.rec.errors]).toEqual([]);
    });

    it(`${file}: re-encodes both directions byte for byte`, () => {
      const { frames } = JSON.parse(
        readFileSync(new URL(`../fixtures/${file}`, import.meta.url), 'utf8'),
      ) as {
        frames: VectorFrame[];
      };
      const replay = (s: SmuxSession, script: SmuxFrame[]) => {
        for (const f of script) {
          if (f.cmd === 'SYN') expect(s.openStream()).toBe(f.sid);
          else if (f.cmd === 'PSH') s.write(f.sid, Buffer.from(f.dataText!));
          else if (f.cmd === 'FIN') s.closeStream(f.sid);
        }
      };
      const up = direction(frames, 'client->agent');
      const plugin = session('client');
      replay(plugin.s, up.expected);
      expect(plugin.rec.output().equals(Buffer.concat(up.payloads))).toBe(true);

      const down = direction(frames, 'agent->client');
      const agent = session('server');
      for (const f of up.expected)
        if (f.cmd === 'SYN') agent.s.receive(encodeSmuxHeader(SmuxCmd.SYN, 0, f.sid));
      replay(agent.s, down.expected);
      expect(agent.rec.output().equals(Buffer.concat(down.payloads))).toBe(true);
    });
  }
});
