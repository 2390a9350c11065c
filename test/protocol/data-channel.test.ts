import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataChannel, INITIAL_RTO_MS, MAX_RTO_MS } from '../../src/protocol/data-channel.js';
import { decodeMessage, encodeMessage, MessageType, PayloadType } from '../../src/protocol/message.js';
import { isAckFor, isStreamSeq, type LinkFaults, runPair } from './lossy-link.js';

const clean: LinkFaults = {
  drop: 0,
  duplicate: 0,
  jitterMs: 0,
  baseDelayMs: 1,
  reconnectAt: [],
  reconnectDownMs: 0,
};

function chunks(n: number, seed: number): Buffer[] {
  return Array.from({ length: n }, (_, i) =>
    Buffer.from(`${seed}:${i}:`.padEnd(8 + ((i * 7 + seed) % 40), 'x')),
  );
}

const concat = (b: Buffer[]) => Buffer.concat(b).toString('latin1');

/** An agent's ack of our message `seq`, as raw frame bytes. */
const ack = (seq: number) =>
  encodeMessage({
    messageType: MessageType.Acknowledge,
    sequenceNumber: 0,
    flags: 3,
    payloadType: 0,
    payload: Buffer.from(
      `{"AcknowledgedMessageType":"input_stream_data","AcknowledgedMessageId":"00000000-0000-4000-8000-000000000000","AcknowledgedMessageSequenceNumber":${seq},"IsSequentialMessage":true}`,
    ),
  });

describe('data channel over a lossy link', () => {
  it('delivers everything in order on a clean link, one ack per message', () => {
    const out = chunks(200, 1);
    const back = chunks(150, 2);
    const r = runPair({ seed: 1, faults: clean, clientToAgent: out, agentToClient: back, maxTimeMs: 10_000 });
    expect(r.done).toBe(true);
    expect(r.agentReceived).toEqual(out);
    expect(r.clientReceived).toEqual(back);
    expect(r.client.stats().retransmissions).toBe(0);
  });

  it('property: drop, duplicate, corrupt payloads, reorder, delay and reconnects deliver every byte exactly once, in order, both ways', () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer(),
          drop: fc.double({ min: 0, max: 0.3, noNaN: true }),
          duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
          corrupt: fc.double({ min: 0, max: 0.2, noNaN: true }),
          jitterMs: fc.integer({ min: 0, max: 60 }),
          baseDelayMs: fc.integer({ min: 0, max: 30 }),
          reconnectAt: fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 3 }),
          reconnectDownMs: fc.integer({ min: 1, max: 500 }),
          nOut: fc.integer({ min: 0, max: 120 }),
          nBack: fc.integer({ min: 0, max: 120 }),
          window: fc.integer({ min: 1, max: 64 }),
        }),
        (p) => {
          const out = chunks(p.nOut, p.seed & 0xff);
          const back = chunks(p.nBack, (p.seed >> 8) & 0xff);
          const r = runPair({
            seed: p.seed,
            faults: {
              drop: p.drop,
              duplicate: p.duplicate,
              corrupt: p.corrupt,
              jitterMs: p.jitterMs,
              baseDelayMs: p.baseDelayMs,
              reconnectAt: p.reconnectAt,
              reconnectDownMs: p.reconnectDownMs,
            },
            clientToAgent: out,
            agentToClient: back,
            maxTimeMs: 600_000,
            maxUnackedMessages: p.window,
          });
          expect(r.done).toBe(true);
          expect(concat(r.agentReceived)).toBe(concat(out));
          expect(concat(r.clientReceived)).toBe(concat(back));
          expect(r.agentReceived.length).toBe(out.length);
          expect(r.clientReceived.length).toBe(back.length);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('SPEC 16 stuck message: a lost ack is healed by re-acking duplicates, even with a loss behind it', () => {
    const back = chunks(40, 3);
    let ackDropped = false;
    let lossDone = false;
    const faults: LinkFaults = {
      ...clean,
      // The agent "discards" the client's ack of its seq 5 (as its racy send/record does), and its seq 6
      // is lost once: only the front entry is ever resent, so 6 waits behind 5.
      dropIf: (frame, from) => {
        if (from === 'client' && !ackDropped && isAckFor(frame, 5)) {
          ackDropped = true;
          return true;
        }
        if (from === 'agent' && !lossDone && isStreamSeq(frame, 6)) {
          lossDone = true;
          return true;
        }
        return false;
      },
    };
    const healed = runPair({ seed: 9, faults, clientToAgent: [], agentToClient: back, maxTimeMs: 60_000 });
    expect(healed.done).toBe(true);
    expect(healed.clientReceived).toEqual(back);

    // The same fault against a client that does not re-ack duplicates (the reference client) stalls.
    ackDropped = false;
    lossDone = false;
    const stuck = runPair({
      seed: 9,
      faults,
      clientToAgent: [],
      agentToClient: back,
      maxTimeMs: 60_000,
      reackDuplicates: { client: false },
    });
    expect(stuck.done).toBe(false);
    expect(stuck.clientReceived.length).toBeLessThan(back.length);
  });
});

describe('data channel rules', () => {
  function pairWithCapture() {
    let now = 1000;
    const sent: Buffer[] = [];
    const delivered: number[] = [];
    let accept = true;
    let refuse = (_seq: number) => false;
    const ch = new DataChannel({
      role: 'client',
      now: () => now,
      send: (f) => sent.push(f),
      deliver: (m) => {
        if (!accept || refuse(m.sequenceNumber)) return false;
        delivered.push(m.sequenceNumber);
        return true;
      },
    });
    const agentMsg = (seq: number, payloadType: number = PayloadType.Output) =>
      encodeMessage({
        messageType: MessageType.OutputStreamData,
        sequenceNumber: seq,
        flags: 0,
        payloadType,
        payload: Buffer.from(`m${seq}`),
      });
    return {
      ch,
      sent,
      delivered,
      agentMsg,
      ack,
      setNow: (t: number) => {
        now = t;
      },
      setAccept: (a: boolean) => {
        accept = a;
      },
      setRefuse: (f: (seq: number) => boolean) => {
        refuse = f;
      },
    };
  }
  const ackedSeqs = (frames: Buffer[]) =>
    frames
      .map((f) => decodeMessage(f))
      .filter((r) => r.ok && r.message.messageType === 'acknowledge')
      .map((r) => (r.ok ? JSON.parse(r.message.payload.toString()).AcknowledgedMessageSequenceNumber : -1));

  it('acks with SPEC header values and the message id of what it acks', () => {
    const t = pairWithCapture();
    const m = t.agentMsg(0);
    t.ch.receive(m);
    const ack = decodeMessage(t.sent[0]);
    const orig = decodeMessage(m);
    expect(ack.ok && orig.ok).toBe(true);
    if (!ack.ok || !orig.ok) return;
    expect(ack.message).toMatchObject({
      messageType: 'acknowledge',
      sequenceNumber: 0,
      flags: 3,
      payloadType: 0,
    });
    expect(JSON.parse(ack.message.payload.toString())).toEqual({
      AcknowledgedMessageType: 'output_stream_data',
      AcknowledgedMessageId: orig.message.messageId,
      AcknowledgedMessageSequenceNumber: 0,
      IsSequentialMessage: true,
    });
  });

  it('buffers early messages (acked on arrival), re-acks duplicates, delivers in order', () => {
    const t = pairWithCapture();
    t.ch.receive(t.agentMsg(2));
    t.ch.receive(t.agentMsg(1));
    expect(t.delivered).toEqual([]);
    t.ch.receive(t.agentMsg(0));
    expect(t.delivered).toEqual([0, 1, 2]);
    t.ch.receive(t.agentMsg(1));
    expect(t.delivered).toEqual([0, 1, 2]);
    expect(ackedSeqs(t.sent)).toEqual([2, 1, 0, 1]);
    expect(t.ch.stats().duplicates).toBe(1);
  });

  it('does not ack what the consumer refuses; delivers it when it comes again', () => {
    const t = pairWithCapture();
    t.setAccept(false);
    t.ch.receive(t.agentMsg(0));
    expect(ackedSeqs(t.sent)).toEqual([]);
    t.setAccept(true);
    t.ch.receive(t.agentMsg(0));
    expect(t.delivered).toEqual([0]);
    expect(ackedSeqs(t.sent)).toEqual([0]);
  });

  it('parks an acked reordered message the consumer refuses, and delivers it on retryDelivery', () => {
    const t = pairWithCapture();
    t.ch.receive(t.agentMsg(1)); // early: acked and buffered
    t.setRefuse((seq) => seq === 1);
    t.ch.receive(t.agentMsg(0)); // accepted; the buffered 1 is refused and parked
    expect(t.delivered).toEqual([0]);
    t.ch.receive(t.agentMsg(1)); // the peer never needs to resend it, but a copy is re-acked
    expect(ackedSeqs(t.sent)).toEqual([1, 0, 1]);
    t.setRefuse(() => false);
    t.ch.retryDelivery();
    expect(t.delivered).toEqual([0, 1]);
    t.ch.receive(t.agentMsg(2));
    expect(t.delivered).toEqual([0, 1, 2]);
  });

  it('ignores unknown message types and reports malformed frames without failing', () => {
    const t = pairWithCapture();
    let invalid = 0;
    const ch = new DataChannel({
      role: 'client',
      now: () => 5,
      send: () => {},
      deliver: () => true,
      onInvalid: () => invalid++,
    });
    ch.receive(
      encodeMessage({
        messageType: MessageType.AgentSessionState,
        sequenceNumber: 0,
        flags: 3,
        payloadType: 0,
        payload: Buffer.from('{}'),
      }),
    );
    ch.receive(Buffer.from('garbage'));
    expect(invalid).toBe(1);
    expect(ch.stats().ignored).toBe(1);
    expect(ch.isFailed).toBe(false);
    expect(t.ch.isFailed).toBe(false);
  });

  it('RTT/RTO follow SPEC 7.5 exactly', () => {
    const t = pairWithCapture();
    expect(t.ch.stats().rtoMs).toBe(INITIAL_RTO_MS);
    t.setNow(1000);
    t.ch.sendStream(PayloadType.Output, Buffer.from('a'));
    t.setNow(1040);
    t.ch.receive(t.ack(0));
    // RTTVAR = 0.75*0 + 0.25*|100-40| = 15; SRTT = 0.875*100 + 0.125*40 = 92.5; RTO = 92.5 + max(10, 60)
    expect(t.ch.stats()).toMatchObject({ rttvarMs: 15, srttMs: 92.5, rtoMs: 152.5 });
    for (let i = 1; i < 200; i++) {
      t.ch.sendStream(PayloadType.Output, Buffer.from('a'));
      t.setNow(1040 + i * 5000);
      t.ch.receive(t.ack(i));
    }
    expect(t.ch.stats().rtoMs).toBe(MAX_RTO_MS);
  });

  it('resends only the front entry, once per RTO (agent style), and fails after the resend deadline', () => {
    const t0 = 1_700_000_000_000;
    let now = t0;
    const sent: number[] = [];
    let error = '';
    const ch = new DataChannel({
      role: 'client',
      now: () => now,
      send: (f) => {
        const r = decodeMessage(f);
        if (r.ok) sent.push(r.message.sequenceNumber);
      },
      deliver: () => true,
      resendDeadlineMs: 10_000,
      onError: (e) => {
        error = e.code;
      },
    });
    ch.sendStream(PayloadType.Output, Buffer.from('a'));
    ch.sendStream(PayloadType.Output, Buffer.from('b'));
    for (now = t0 + 100; now <= t0 + 1000; now += 100) ch.tick();
    // RTO 200 ms, strictly greater: resends at 300, 600, 900; never seq 1.
    expect(sent).toEqual([0, 1, 0, 0, 0]);
    for (; now <= t0 + 10_100; now += 100) ch.tick();
    expect(error).toBe('RESEND_TIMEOUT');
    expect(ch.isFailed).toBe(true);
  });

  it('bounds unacked messages: writable goes false at the cap and onDrain fires at half', () => {
    let drained = 0;
    let now = 0;
    const ch = new DataChannel({
      role: 'client',
      now: () => now,
      send: () => {},
      deliver: () => true,
      maxUnackedMessages: 10,
      onDrain: () => drained++,
    });
    const t = pairWithCapture();
    for (let i = 0; i < 10; i++) ch.sendStream(PayloadType.Output, Buffer.from('x'));
    expect(ch.writable).toBe(false);
    // Over the cap is still accepted and kept (never dropped).
    ch.sendStream(PayloadType.Output, Buffer.from('y'));
    expect(ch.unackedCount).toBe(11);
    now = 5;
    for (let i = 0; i < 5; i++) ch.receive(t.ack(i));
    expect(drained).toBe(0);
    ch.receive(t.ack(5));
    expect(drained).toBe(1);
    expect(ch.writable).toBe(true);
  });

  it('counts the window from the oldest unacked message, so acks of later ones cannot overrun a peer', () => {
    let drained = 0;
    const ch = new DataChannel({
      role: 'client',
      now: () => 1_700_000_000_000,
      send: () => {},
      deliver: () => true,
      maxUnackedMessages: 10,
      onDrain: () => drained++,
    });
    const t = pairWithCapture();
    // The peer refuses seq 0 (its destination is full) but acks and buffers everything behind it.
    for (let i = 0; i < 10; i++) {
      ch.sendStream(PayloadType.Output, Buffer.from('x'));
      if (i > 0) ch.receive(t.ack(i));
    }
    expect(ch.unackedCount).toBe(1);
    expect(ch.writable).toBe(false);
    ch.receive(t.ack(0));
    expect(ch.writable).toBe(true);
    expect(drained).toBe(1);
  });

  it('holds messages while disconnected or paused and sends them on reconnect / start_publication', () => {
    const sent: number[] = [];
    const ch = new DataChannel({
      role: 'client',
      now: () => 1,
      send: (f) => {
        const r = decodeMessage(f);
        if (r.ok) sent.push(r.message.sequenceNumber);
      },
      deliver: () => true,
    });
    ch.sendStream(PayloadType.Output, Buffer.from('a'));
    ch.setConnected(false);
    ch.sendStream(PayloadType.Output, Buffer.from('b'));
    ch.tick();
    expect(sent).toEqual([0]);
    ch.setConnected(true);
    expect(sent).toEqual([0, 0, 1]);
    const pub = (type: string) =>
      encodeMessage({
        messageType: type,
        sequenceNumber: 0,
        flags: 0,
        payloadType: 0,
        payload: Buffer.alloc(0),
      });
    ch.receive(pub(MessageType.PausePublication));
    ch.sendStream(PayloadType.Output, Buffer.from('c'));
    expect(sent).toEqual([0, 0, 1]);
    ch.receive(pub(MessageType.StartPublication));
    // Everything unacked goes again (the peer's old socket lost what was in flight), then the held one.
    expect(sent).toEqual([0, 0, 1, 0, 1, 2]);
  });

  it('agent role marks seq 0 with the SYN flag and later messages with 0', () => {
    const frames: Buffer[] = [];
    const ch = new DataChannel({
      role: 'agent',
      now: () => 1,
      send: (f) => frames.push(f),
      deliver: () => true,
    });
    ch.sendStream(PayloadType.HandshakeRequest, Buffer.from('{}'));
    ch.sendStream(PayloadType.Output, Buffer.from('x'));
    const flags = frames.map((f) => {
      const r = decodeMessage(f);
      return r.ok ? [r.message.messageType, r.message.flags] : [];
    });
    expect(flags).toEqual([
      ['output_stream_data', 1],
      ['output_stream_data', 0],
    ]);
  });
});

describe('reorder buffer bounds (issue 14)', () => {
  const early = (seq: number, bytes: number) =>
    encodeMessage({
      messageType: MessageType.OutputStreamData,
      sequenceNumber: seq,
      flags: 0,
      payloadType: PayloadType.Output,
      payload: Buffer.alloc(bytes, seq & 0xff),
    });

  it('is bounded in bytes: big early frames past the bound are not stored (nor acked), and come again', () => {
    const sent: Buffer[] = [];
    const delivered: number[] = [];
    const ch = new DataChannel({
      role: 'client',
      now: () => 1000,
      send: (f) => sent.push(f),
      deliver: (m) => {
        delivered.push(m.sequenceNumber);
        return true;
      },
      reorderMaxBytes: 3 * 1024 * 1024,
    });
    // seq 0 is missing; 100 frames of 1 MiB arrive behind it.
    for (let s = 1; s <= 100; s++) ch.receive(early(s, 1024 * 1024));
    expect(ch.stats().reorderBytes).toBeLessThanOrEqual(3 * 1024 * 1024);
    expect(ch.stats().reorderRefused).toBe(97);
    expect(ch.hasInboundGap).toBe(true);
    ch.receive(early(0, 10));
    expect(delivered).toEqual([0, 1, 2, 3]);
    expect(ch.hasInboundGap).toBe(false);
    for (let s = 4; s <= 100; s++) ch.receive(early(s, 1024 * 1024));
    expect(delivered.length).toBe(101);
    expect(ch.stats().reorderBytes).toBe(0);
  });

  it('acks every in-window message the consumer takes, and reports acknowledgement of its own', () => {
    const sent: Buffer[] = [];
    const ch = new DataChannel({
      role: 'client',
      now: () => 1000,
      send: (f) => sent.push(f),
      deliver: () => true,
    });
    const seq = ch.sendStream(PayloadType.Output, Buffer.from('x'));
    expect(ch.isAcknowledged(seq)).toBe(false);
    expect(ch.isAcknowledged(seq + 1)).toBe(false);
    ch.receive(ack(seq));
    expect(ch.isAcknowledged(seq)).toBe(true);
  });
});

describe('loss recovery (issue 14)', () => {
  it('resends every hole of the window at once, not one front per tick', () => {
    let now = 1_000_000;
    const sent: Buffer[] = [];
    const ch = new DataChannel({
      role: 'client',
      now: () => now,
      send: (f) => sent.push(f),
      deliver: () => true,
    });
    for (let i = 0; i < 10; i++) {
      ch.sendStream(PayloadType.Output, Buffer.from(`m${i}`));
      now += 10;
    }
    sent.length = 0;
    // 2, 4 and 6 were lost; everything else is acked (in order, as one WebSocket delivers them).
    for (const s of [0, 1, 3, 5, 7, 8, 9]) ch.receive(ack(s));
    // The next tick, well within the RTO (200 ms) of any of them, resends all three holes together.
    ch.tick();
    const resent = sent.map((f) => {
      const d = decodeMessage(f);
      return d.ok ? d.message.sequenceNumber : -1;
    });
    expect(resent.sort()).toEqual([2, 4, 6]);
    expect(ch.stats().retransmissions).toBe(3);
  });
});
