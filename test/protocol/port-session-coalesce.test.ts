/**
 * Mux-mode output coalescing (PortSessionOptions.coalesce): the smux frames of several connections
 * written in one turn leave in one Output message, a full message's worth never waits, and the byte
 * stream the agent reads is exactly the one an uncoalesced session sends. Pure: the "turn" is a list
 * of scheduled flushes the test runs itself.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFlag, PayloadFlag, PayloadType } from '../../src/protocol/message.js';
import { buildHandshakeComplete, buildHandshakeRequest } from '../../src/protocol/payloads.js';
import { DEFAULT_MAX_PAYLOAD, PortSession } from '../../src/protocol/port-session.js';
import { SmuxSession } from '../../src/protocol/smux.js';

interface Sent {
  type: number;
  payload: Buffer;
}

function muxSession(coalesced: boolean) {
  const sent: Sent[] = [];
  const scheduled: Array<() => void> = [];
  const port = new PortSession(
    {
      now: 0,
      coalesce: coalesced ? (flush) => scheduled.push(flush) : undefined,
    },
    {
      sendStream: (type, payload) => {
        sent.push({ type, payload: Buffer.from(payload) });
        return sent.length - 1;
      },
      ready: () => {},
      data: () => {},
      remoteClosed: () => {},
      connectToPortError: () => {},
      failed: (e) => {
        throw e;
      },
    },
  );
  let seq = 0;
  const deliver = (payloadType: number, payload: Buffer) =>
    port.deliver({
      messageType: 'output_stream_data',
      schemaVersion: 1,
      createdDate: 0,
      sequenceNumber: seq++,
      flags: 0,
      messageId: '00000000-0000-4000-8000-000000000000',
      payloadType,
      payload,
      payloadDigest: Buffer.alloc(32),
    } as never);
  deliver(
    PayloadType.HandshakeRequest,
    buildHandshakeRequest({
      AgentVersion: '3.3.987.0',
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
  );
  deliver(
    PayloadType.HandshakeComplete,
    buildHandshakeComplete({ HandshakeTimeToComplete: 1, CustomerMessage: '' }),
  );
  expect(port.sessionInfo?.mode).toBe('mux');
  sent.length = 0; // the HandshakeResponse
  const outputs = () => sent.filter((m) => m.type === PayloadType.Output);
  return {
    port,
    sent,
    outputs,
    /** Ends the turn: runs what was scheduled. */
    endTurn: () => {
      for (const f of scheduled.splice(0)) f();
    },
    scheduledCount: () => scheduled.length,
  };
}

/** What the agent's smux server makes of the Output byte stream: per stream, its data and whether it ended. */
function agentView(outputs: Sent[]): Map<number, { data: string; closed: boolean }> {
  const streams = new Map<number, { data: string; closed: boolean }>();
  const server = new SmuxSession(
    { role: 'server', keepalive: false },
    {
      output: () => {},
      streamOpened: (sid) => streams.set(sid, { data: '', closed: false }),
      data: (sid, d) => {
        const s = streams.get(sid);
        if (s) s.data += d.toString('latin1');
      },
      streamClosed: (sid) => {
        const s = streams.get(sid);
        if (s) s.closed = true;
      },
      error: (e) => {
        throw e;
      },
    },
    0,
  );
  for (const m of outputs) server.receive(m.payload);
  return streams;
}

describe('mux output coalescing', () => {
  it('sends the frames of three connections written in one turn as one Output message', () => {
    const s = muxSession(true);
    const ids = [0, 1, 2].map(() => s.port.openConnection());
    for (const [i, id] of ids.entries()) s.port.write(id, Buffer.from(`query ${i}`));
    expect(s.outputs()).toEqual([]);
    expect(s.scheduledCount()).toBe(1);
    s.endTurn();
    expect(s.outputs()).toHaveLength(1);
    const view = agentView(s.outputs());
    expect([...view.keys()]).toEqual([3, 5, 7]);
    expect([...view.values()].map((v) => v.data)).toEqual(['query 0', 'query 1', 'query 2']);
  });

  it('without the option sends each frame at once (one message per SYN and per write)', () => {
    const s = muxSession(false);
    const id = s.port.openConnection();
    s.port.write(id, Buffer.from('a'));
    s.port.write(id, Buffer.from('b'));
    expect(s.outputs()).toHaveLength(3);
  });

  it('never holds back a full message: a large write goes at once in <= 1024-byte messages', () => {
    const s = muxSession(true);
    const id = s.port.openConnection();
    const big = Buffer.alloc(5000, 0x61);
    s.port.write(id, big);
    const now = s.outputs();
    expect(now.length).toBe(Math.ceil((big.length + 16) / DEFAULT_MAX_PAYLOAD));
    for (const m of now) expect(m.payload.length).toBeLessThanOrEqual(DEFAULT_MAX_PAYLOAD);
    s.endTurn();
    expect(s.outputs()).toHaveLength(now.length);
    expect(agentView(s.outputs()).get(3)?.data).toBe(big.toString('latin1'));
  });

  it('sends what is pending before the TerminateSession flag, and nothing once the session is closed', () => {
    const s = muxSession(true);
    const id = s.port.openConnection();
    s.port.write(id, Buffer.from('last words'));
    s.port.terminate();
    expect(s.sent.map((m) => m.type)).toEqual([PayloadType.Output, PayloadType.Flag]);
    expect(decodeFlag(s.sent[1].payload)).toBe(PayloadFlag.TerminateSession);
    expect(agentView(s.outputs()).get(3)?.data).toBe('last words');

    const t = muxSession(true);
    t.port.write(t.port.openConnection(), Buffer.from('dropped'));
    t.port.close();
    t.endTurn();
    expect(t.sent).toEqual([]);
  });

  it('carries the same byte stream as an uncoalesced session, in messages of at most 1024 bytes', () => {
    type Op =
      | { kind: 'open' }
      | { kind: 'write'; conn: number; size: number }
      | { kind: 'close'; conn: number }
      | { kind: 'turn' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ kind: 'open' as const }),
      fc.record({
        kind: fc.constant('write' as const),
        conn: fc.nat(7),
        size: fc.integer({ min: 1, max: 3000 }),
      }),
      fc.record({ kind: fc.constant('close' as const), conn: fc.nat(7) }),
      fc.constant({ kind: 'turn' as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const plain = muxSession(false);
        const batched = muxSession(true);
        const run = (s: ReturnType<typeof muxSession>) => {
          const open: number[] = [];
          let n = 0;
          for (const o of ops) {
            if (o.kind === 'open') open.push(s.port.openConnection());
            else if (o.kind === 'turn') s.endTurn();
            else if (open.length > 0) {
              const id = open[o.conn % open.length];
              if (o.kind === 'write') s.port.write(id, Buffer.alloc(o.size, n++ & 0xff));
              else {
                s.port.closeConnection(id);
                open.splice(open.indexOf(id), 1);
              }
            }
          }
          s.endTurn();
          return Buffer.concat(s.outputs().map((m) => m.payload));
        };
        expect(run(batched).equals(run(plain))).toBe(true);
        for (const m of batched.outputs()) expect(m.payload.length).toBeLessThanOrEqual(DEFAULT_MAX_PAYLOAD);
        expect(batched.outputs().length).toBeLessThanOrEqual(plain.outputs().length);
      }),
      { numRuns: 200 },
    );
  });
});
