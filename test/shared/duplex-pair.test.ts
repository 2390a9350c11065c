import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { duplexPair } from '../../src/shared/duplex-pair.js';

/** Writes the chunks honouring back-pressure (waits for 'drain'), then ends. */
async function writeAll(s: Duplex, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) if (!s.write(c)) await once(s, 'drain');
  s.end();
}

/** Reads until 'end', pausing after every `pauseEvery`-th chunk for a turn of the event loop like a slow consumer. */
function readAll(s: Duplex, pauseEvery: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      out.push(c);
      if (out.length % pauseEvery === 0) {
        s.pause();
        setImmediate(() => s.resume());
      }
    });
    s.once('end', () => resolve(Buffer.concat(out)));
    s.once('error', reject);
  });
}

const chunksArb = fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { maxLength: 40 });

describe('duplexPair', () => {
  it('carries bytes intact and in order both ways at once, for random chunkings and reader speeds', async () => {
    await fc.assert(
      fc.asyncProperty(
        chunksArb,
        chunksArb,
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 4 }),
        async (left, right, hwm, pauseEvery) => {
          const [a, b] = duplexPair({ highWaterMark: hwm });
          const l = left.map((c) => Buffer.from(c));
          const r = right.map((c) => Buffer.from(c));
          const [atB, atA] = await Promise.all([
            readAll(b, pauseEvery),
            readAll(a, pauseEvery),
            writeAll(a, l),
            writeAll(b, r),
          ]);
          expect(atB.equals(Buffer.concat(l))).toBe(true);
          expect(atA.equals(Buffer.concat(r))).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('applies back-pressure: the writer waits until the other side reads', async () => {
    const [a, b] = duplexPair({ highWaterMark: 16 });
    let writes = 0;
    while (a.write(Buffer.alloc(8, 1))) writes++;
    // The peer's buffer (16) plus the writer's own (16) fill up; nothing more is accepted without a read.
    expect(writes).toBeLessThan(5);
    let drained = false;
    a.once('drain', () => {
      drained = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    b.read();
    await once(a, 'drain');
    expect(drained).toBe(true);
    a.destroy();
  });

  it('end on one side ends the other side readable, and the other side can still answer (half-close)', async () => {
    const [a, b] = duplexPair();
    const got: Buffer[] = [];
    b.on('data', (c: Buffer) => got.push(c));
    a.end('bye');
    await once(b, 'end');
    expect(Buffer.concat(got).toString()).toBe('bye');
    const back = once(a, 'data');
    b.write('still here');
    expect(String((await back)[0])).toBe('still here');
  });

  it('destroy on either side closes both, with no error on the peer', async () => {
    for (const side of [0, 1]) {
      const pair = duplexPair();
      const errors: Error[] = [];
      for (const s of pair) s.on('error', (e) => errors.push(e));
      const closed = Promise.all(pair.map((s) => once(s, 'close')));
      pair[side].destroy();
      await closed;
      expect(pair.every((s) => s.destroyed)).toBe(true);
      expect(errors).toEqual([]);
    }
  });

  it('a writer blocked on a full peer is released when the peer is destroyed', async () => {
    const [a, b] = duplexPair({ highWaterMark: 4 });
    a.on('error', () => {});
    while (a.write(Buffer.alloc(4))) {}
    b.destroy();
    await once(a, 'close');
    expect(a.destroyed).toBe(true);
  });
});
