/**
 * Basic mode's connection gate (issue 14, defect 1): output of a finished connection must never reach
 * the next one. Pure: a PortSession in basic mode with a fake clock and a fake data channel.
 */
import { describe, expect, it } from 'vitest';
import { BasicGate } from '../../src/protocol/basic-gate.js';
import { decodeFlag, PayloadFlag, PayloadType } from '../../src/protocol/message.js';
import { buildHandshakeComplete, buildHandshakeRequest } from '../../src/protocol/payloads.js';
import { PortSession } from '../../src/protocol/port-session.js';

function basicSession(quietMs = 300) {
  let now = 1_000;
  let seq = 0;
  const acked = new Set<number>();
  const sent: Array<{ seq: number; type: number; payload: Buffer }> = [];
  const data: Array<{ id: number; bytes: string }> = [];
  let gap = false;
  let freed = 0;
  const port = new PortSession(
    { clientVersion: '1.2.764.0', now, clock: () => now, basicGate: { quietMs } },
    {
      sendStream: (type, payload) => {
        sent.push({ seq, type, payload });
        return seq++;
      },
      isAcknowledged: (s) => acked.has(s),
      inboundGap: () => gap,
      slotFree: () => freed++,
      ready: () => {},
      data: (id, d) => data.push({ id, bytes: d.toString() }),
      remoteClosed: () => {},
      connectToPortError: () => {},
      failed: (e) => {
        throw e;
      },
    },
  );
  let agentSeq = 0;
  const msg = (payloadType: number, payload: Buffer) => ({
    messageType: 'output_stream_data',
    schemaVersion: 1,
    createdDate: now,
    sequenceNumber: agentSeq++,
    flags: 0,
    messageId: '00000000-0000-4000-8000-000000000000',
    payloadType,
    payload,
    payloadDigest: Buffer.alloc(32),
  });
  port.deliver(
    msg(
      PayloadType.HandshakeRequest,
      buildHandshakeRequest({
        AgentVersion: '3.0.161.0',
        RequestedClientActions: [
          {
            ActionType: 'SessionType',
            ActionParameters: {
              SessionType: 'Port',
              Properties: { portNumber: '5432', type: 'LocalPortForwarding' },
            },
          },
        ],
      }),
    ) as never,
  );
  port.deliver(
    msg(
      PayloadType.HandshakeComplete,
      buildHandshakeComplete({ HandshakeTimeToComplete: 1, CustomerMessage: '' }),
    ) as never,
  );
  expect(port.sessionInfo?.mode).toBe('basic');
  return {
    port,
    sent,
    data,
    acked,
    output: (s: string) => port.deliver(msg(PayloadType.Output, Buffer.from(s)) as never),
    advance: (ms: number) => {
      now += ms;
      port.tick(now);
    },
    setGap: (g: boolean) => {
      gap = g;
    },
    freed: () => freed,
  };
}

describe('basic mode gate', () => {
  it("acks and drops a finished connection's output, and opens the next one only after the DisconnectToPort ack and a quiet period", () => {
    const t = basicSession(300);
    const a = t.port.openConnection();
    t.output('A1');
    expect(t.data).toEqual([{ id: a, bytes: 'A1' }]);
    t.port.closeConnection(a);
    const flag = t.sent.at(-1)!;
    expect(flag.type).toBe(PayloadType.Flag);
    expect(decodeFlag(flag.payload)).toBe(PayloadFlag.DisconnectToPort);
    expect(t.port.canOpenConnection).toBe(false);

    // Late output of A: taken (so acknowledged and never resent), but delivered to nobody.
    expect(t.output('A2-late')).toBe(true);
    t.advance(400);
    expect(t.port.canOpenConnection).toBe(false); // the flag is not acknowledged yet
    t.acked.add(flag.seq);
    t.advance(100);
    expect(t.port.canOpenConnection).toBe(true);
    expect(t.freed()).toBe(1);

    const b = t.port.openConnection();
    t.output('B1');
    expect(t.data).toEqual([
      { id: a, bytes: 'A1' },
      { id: b, bytes: 'B1' },
    ]);
    expect(t.port.basicStats).toEqual({ discardedMessages: 1, discardedBytes: 7 });
  });

  it('keeps the gate shut while output keeps arriving, while a hole waits for a resend, and longer after a reconnect', () => {
    const t = basicSession(300);
    const a = t.port.openConnection();
    t.port.closeConnection(a);
    t.acked.add(t.sent.at(-1)!.seq);
    for (let i = 0; i < 5; i++) {
      t.advance(200);
      t.output(`A${i}`);
    }
    expect(t.port.canOpenConnection).toBe(false);
    t.setGap(true);
    t.advance(1000);
    expect(t.port.canOpenConnection).toBe(false);
    t.setGap(false);
    t.port.reconnected(0); // the clock is injected; only the event matters
    t.advance(400);
    expect(t.port.canOpenConnection).toBe(false); // the agent may still resend what the dead socket lost
    t.advance(1000);
    expect(t.port.canOpenConnection).toBe(true);
    expect(t.data).toEqual([]);
  });

  it("holds output that arrives before the first connection for it (the session-start dial is the first connection's)", async () => {
    const t = basicSession();
    expect(t.output('banner')).toBe(true);
    const a = t.port.openConnection();
    await Promise.resolve();
    expect(t.data).toEqual([{ id: a, bytes: 'banner' }]);
  });

  it('BasicGate alone: poll opens exactly once', () => {
    const g = new BasicGate({ quietMs: 10 });
    g.disconnected(4, 0);
    const probe = { isAcknowledged: (s: number) => s === 4, inboundGap: () => false };
    expect(g.poll(5, probe)).toBe(false);
    expect(g.poll(10, probe)).toBe(true);
    expect(g.poll(20, probe)).toBe(false);
  });
});
