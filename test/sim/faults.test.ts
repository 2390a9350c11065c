import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeMessage, MessageType } from '../../src/protocol/message.js';
import { buildAcknowledge } from '../../src/protocol/payloads.js';
import {
  FaultInjector,
  type FaultSpec,
  FaultSpecError,
  frameSequence,
  frameTypeIs,
  isStreamData,
  mulberry32,
  REORDER_HOLD_MS,
  validateFaultSpecs,
} from '../../src/sim/faults.js';

function stream(seq: number, type: string = MessageType.OutputStreamData): Buffer {
  return encodeMessage({
    messageType: type,
    sequenceNumber: seq,
    flags: 0,
    payloadType: 1,
    payload: Buffer.from(`m${seq}`),
  });
}

function ack(seq: number): Buffer {
  return encodeMessage({
    messageType: MessageType.Acknowledge,
    sequenceNumber: 0,
    flags: 3,
    payloadType: 0,
    payload: buildAcknowledge(MessageType.OutputStreamData, '00000000-0000-4000-8000-000000000000', seq),
  });
}

/** Runs frames 0..n-1 through the injector and returns the sequence numbers that came out, in order. */
function run(
  inj: FaultInjector,
  n: number,
  dir: 'client->agent' | 'agent->client' = 'agent->client',
  sid = 's1',
) {
  const out: number[] = [];
  const kills: string[] = [];
  for (let i = 0; i < n; i++) {
    inj.apply(
      dir,
      stream(i, dir === 'agent->client' ? MessageType.OutputStreamData : MessageType.InputStreamData),
      (f) => out.push(frameSequence(f)!),
      (side) => kills.push(side),
      sid,
    );
  }
  return { out, kills };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('header helpers', () => {
  it('recognise stream data and read the sequence from raw bytes', () => {
    expect(isStreamData(stream(5))).toBe(true);
    expect(isStreamData(stream(5, MessageType.InputStreamData))).toBe(true);
    expect(isStreamData(ack(5))).toBe(false);
    expect(isStreamData(Buffer.alloc(10))).toBe(false);
    expect(frameSequence(stream(123456))).toBe(123456);
    expect(frameSequence(Buffer.alloc(3))).toBeUndefined();
    expect(frameTypeIs(ack(1), Buffer.from('acknowledge'))).toBe(true);
    // A longer type that merely starts with the name is not a match.
    expect(frameTypeIs(stream(1), Buffer.from('output_stream'))).toBe(false);
  });

  it('mulberry32 is deterministic and in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    for (let i = 0; i < 1000; i++) {
      const x = a();
      expect(x).toBe(b());
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });
});

describe('FaultInjector', () => {
  it('passes everything through unchanged without specs', () => {
    const inj = new FaultInjector([], 1);
    expect(inj.active).toBe(false);
    const frame = stream(1);
    let got: Buffer | undefined;
    inj.apply(
      'client->agent',
      frame,
      (f) => {
        got = f;
      },
      () => {},
    );
    expect(got).toBe(frame);
  });

  it('makes the same decisions for the same seed and different ones for another seed', () => {
    const spec: FaultSpec[] = [{ direction: 'both', drop: 0.2, duplicate: 0.2 }];
    const a = run(new FaultInjector(spec, 7), 2000).out;
    const b = run(new FaultInjector(spec, 7), 2000).out;
    const c = run(new FaultInjector(spec, 8), 2000).out;
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it("keeps one session's decisions independent of other sessions' traffic", () => {
    const spec: FaultSpec[] = [{ direction: 'both', drop: 0.3 }];
    const alone = new FaultInjector(spec, 3);
    const aloneOut = run(alone, 500, 'agent->client', 'A').out;
    const mixed = new FaultInjector(spec, 3);
    const mixedOut: number[] = [];
    for (let i = 0; i < 500; i++) {
      mixed.apply(
        'agent->client',
        stream(i),
        (f) => mixedOut.push(frameSequence(f)!),
        () => {},
        'A',
      );
      mixed.apply(
        'agent->client',
        stream(i),
        () => {},
        () => {},
        'B',
      );
      mixed.apply(
        'client->agent',
        stream(i, MessageType.InputStreamData),
        () => {},
        () => {},
        'A',
      );
    }
    expect(mixedOut).toEqual(aloneOut);
  });

  it('honours drop and duplicate rates over 10 000 frames', () => {
    const inj = new FaultInjector([{ direction: 'agent->client', drop: 0.1, duplicate: 0.25 }], 11);
    const { out } = run(inj, 10_000);
    const st = inj.stats['agent->client'];
    expect(st.frames).toBe(10_000);
    expect(st.dropped).toBeGreaterThan(850);
    expect(st.dropped).toBeLessThan(1150);
    // Duplication is decided for frames that survive the drop.
    expect(st.duplicated).toBeGreaterThan(0.25 * 9000 * 0.88);
    expect(st.duplicated).toBeLessThan(0.25 * 9000 * 1.12);
    expect(out.length).toBe(10_000 - st.dropped + st.duplicated);
    expect(st.forwarded).toBe(out.length);
    expect(inj.sessionStats('s1')['agent->client'].dropped).toBe(st.dropped);
    expect(inj.stats['client->agent'].frames).toBe(0);
  });

  it('applies a spec to its direction only', () => {
    const inj = new FaultInjector([{ direction: 'client->agent', drop: 1 }], 1);
    expect(run(inj, 10, 'agent->client').out).toHaveLength(10);
    expect(run(inj, 10, 'client->agent').out).toHaveLength(0);
  });

  it('applies a spec to its session only', () => {
    const inj = new FaultInjector([{ direction: 'both', drop: 1, sessionId: 'victim' }], 1);
    expect(run(inj, 10, 'agent->client', 'other').out).toHaveLength(10);
    expect(run(inj, 10, 'agent->client', 'victim').out).toHaveLength(0);
  });

  it('drops exactly the listed sequence numbers, once each', () => {
    const inj = new FaultInjector([{ direction: 'agent->client', dropSeqs: [3, 7, 7, 50] }], 1);
    const first = run(inj, 10).out;
    expect(first).toEqual([0, 1, 2, 4, 5, 6, 8, 9]);
    // Retransmissions of the same numbers get through.
    const again = run(inj, 10).out;
    expect(again).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // dropSeqs only ever hits stream data: an ack carrying seq 0 in its header is not "seq 3".
    const acks: Buffer[] = [];
    const inj2 = new FaultInjector([{ direction: 'both', dropSeqs: [0] }], 1);
    inj2.apply(
      'client->agent',
      ack(0),
      (f) => acks.push(f),
      () => {},
    );
    expect(acks).toHaveLength(1);
  });

  it('duplicates: a frame is sent twice when duplicate is 1', () => {
    const inj = new FaultInjector([{ direction: 'both', duplicate: 1 }], 1);
    expect(run(inj, 4).out).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect(inj.stats['agent->client'].duplicated).toBe(4);
  });

  it('reorders: a held frame is released right after the next one', () => {
    const inj = new FaultInjector([{ direction: 'both', reorder: 1 }], 1);
    const { out } = run(inj, 6);
    expect(out).toEqual([1, 0, 3, 2, 5, 4]);
    expect(inj.stats['agent->client'].reordered).toBe(3);
  });

  it('releases a held frame on its own when nothing follows it', async () => {
    vi.useFakeTimers();
    const inj = new FaultInjector([{ direction: 'both', reorder: 1 }], 1);
    const out: number[] = [];
    inj.apply(
      'agent->client',
      stream(9),
      (f) => out.push(frameSequence(f)!),
      () => {},
    );
    expect(out).toEqual([]);
    await vi.advanceTimersByTimeAsync(REORDER_HOLD_MS + 1);
    expect(out).toEqual([9]);
  });

  it('releases held frames when the specs are replaced', () => {
    const inj = new FaultInjector([{ direction: 'both', reorder: 1 }], 1);
    const out: number[] = [];
    inj.apply(
      'agent->client',
      stream(1),
      (f) => out.push(frameSequence(f)!),
      () => {},
    );
    inj.set([]);
    expect(out).toEqual([1]);
    expect(inj.active).toBe(false);
  });

  it('delays frames and keeps them in order despite jitter', async () => {
    vi.useFakeTimers();
    const inj = new FaultInjector([{ direction: 'both', delayMs: 100, jitterMs: 80 }], 5);
    const out: number[] = [];
    for (let i = 0; i < 50; i++)
      inj.apply(
        'agent->client',
        stream(i),
        (f) => out.push(frameSequence(f)!),
        () => {},
      );
    await vi.advanceTimersByTimeAsync(99);
    expect(out).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(out).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(inj.stats['agent->client'].delayed).toBe(50);
  });

  it('kills the chosen side once after the given number of frames', () => {
    const inj = new FaultInjector(
      [{ direction: 'client->agent', killAfterFrames: { side: 'agent', frames: 3 } }],
      1,
    );
    const { out, kills } = run(inj, 10, 'client->agent');
    expect(out).toHaveLength(10);
    expect(kills).toEqual(['agent']);
    expect(inj.stats['client->agent'].kills).toBe(1);
    // Per session: another session gets its own kill.
    expect(run(inj, 3, 'client->agent', 's2').kills).toEqual(['agent']);
  });

  it('onlyStreamData lets acknowledgements through', () => {
    const inj = new FaultInjector([{ direction: 'both', drop: 1, onlyStreamData: true }], 1);
    const out: Buffer[] = [];
    inj.apply(
      'client->agent',
      ack(1),
      (f) => out.push(f),
      () => {},
    );
    inj.apply(
      'client->agent',
      stream(1, MessageType.InputStreamData),
      (f) => out.push(f),
      () => {},
    );
    expect(out).toHaveLength(1);
    expect(isStreamData(out[0])).toBe(false);
    // Without it acks are fair game too.
    const all = new FaultInjector([{ direction: 'both', drop: 1 }], 1);
    all.apply(
      'client->agent',
      ack(1),
      (f) => out.push(f),
      () => {},
    );
    expect(out).toHaveLength(1);
  });

  it('chains specs: each stage sees what the previous one let through', () => {
    const inj = new FaultInjector(
      [
        { direction: 'both', dropSeqs: [0] },
        { direction: 'both', duplicate: 1 },
      ],
      1,
    );
    expect(run(inj, 3).out).toEqual([1, 1, 2, 2]);
  });

  it('discards pending frames on dispose', async () => {
    vi.useFakeTimers();
    const inj = new FaultInjector([{ direction: 'both', delayMs: 10 }], 1);
    const out: number[] = [];
    inj.apply(
      'agent->client',
      stream(1),
      (f) => out.push(frameSequence(f)!),
      () => {},
    );
    inj.dispose();
    await vi.advanceTimersByTimeAsync(50);
    expect(out).toEqual([]);
  });
});

describe('validateFaultSpecs', () => {
  it('accepts a valid list', () => {
    const specs = validateFaultSpecs([
      { direction: 'both', drop: 0.1, dropSeqs: [1, 2], killAfterFrames: { side: 'client', frames: 5 } },
    ]);
    expect(specs).toHaveLength(1);
  });

  it.each([
    [{ direction: 'up' }],
    [{ direction: 'both', drop: 2 }],
    [{ direction: 'both', delayMs: -1 }],
    [{ direction: 'both', dropSeqs: [1.5] }],
    [{ direction: 'both', killAfterFrames: { side: 'both', frames: 1 } }],
    [{ direction: 'both', killAfterFrames: { side: 'agent', frames: 0 } }],
    [{ direction: 'both', dorp: 0.1 }],
    [{ direction: 'both', sessionId: '' }],
  ])('rejects %j with a typed error', (spec) => {
    try {
      validateFaultSpecs([spec]);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FaultSpecError);
      expect((err as FaultSpecError).code).toBe('INVALID_FAULT_SPEC');
    }
  });

  it('rejects a non-array', () => {
    expect(() => validateFaultSpecs({ direction: 'both' })).toThrow(FaultSpecError);
  });
});
