/**
 * Two data channels wired back to back through an in-memory link with a fake clock. The link can drop,
 * duplicate, delay (and so reorder) frames and simulate transport reconnects, all from a seeded PRNG.
 */
import { DataChannel, RESEND_TICK_MS } from '../../src/protocol/data-channel.js';
import { decodeMessage, MessageType, PayloadType } from '../../src/protocol/message.js';
import { mulberry32 } from '../../src/sim/faults.js';

export interface LinkFaults {
  drop: number;
  duplicate: number;
  /**
   * Flips one bit of the payload (past the 120-byte header: the digest covers the payload only, so a
   * changed header would be undetectable by design, and TLS rules it out on a real link).
   */
  corrupt?: number;
  /** Max extra random delay in ms; >0 reorders frames. */
  jitterMs: number;
  baseDelayMs: number;
  /** Times (ms) at which the transport drops for `reconnectDownMs`, losing everything in flight. */
  reconnectAt: number[];
  reconnectDownMs: number;
  /** Hook to drop specific frames (e.g. one ack) deterministically. Return true to drop. */
  dropIf?: (frame: Buffer, from: 'client' | 'agent') => boolean;
}

/** Where a message's payload starts (SPEC 4.1: 116 header bytes, then the 4-byte PayloadLength). */
const PAYLOAD_OFFSET = 120;

interface InFlight {
  at: number;
  frame: Buffer;
  to: 'client' | 'agent';
}

export interface PairResult {
  clientReceived: Buffer[];
  agentReceived: Buffer[];
  client: DataChannel;
  agent: DataChannel;
  time: number;
  done: boolean;
}

export interface PairOptions {
  seed: number;
  faults: LinkFaults;
  clientToAgent: Buffer[];
  agentToClient: Buffer[];
  maxTimeMs: number;
  reackDuplicates?: { client?: boolean; agent?: boolean };
  maxUnackedMessages?: number;
}

/** Runs both transfers to completion (or until maxTimeMs) and returns what each side delivered. */
export function runPair(o: PairOptions): PairResult {
  const rnd = mulberry32(o.seed);
  // CreatedDate 0 is invalid on the wire, so the fake clock starts at a realistic epoch.
  const t0 = 1_700_000_000_000;
  let now = t0;
  const clock = () => now;
  let flight: InFlight[] = [];
  let up = true;
  const clientReceived: Buffer[] = [];
  const agentReceived: Buffer[] = [];

  const transmit = (from: 'client' | 'agent', frame: Buffer) => {
    if (!up) return;
    if (o.faults.dropIf?.(frame, from)) return;
    if (rnd() < o.faults.drop) return;
    const copies = rnd() < o.faults.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let copy = frame;
      if (o.faults.corrupt && frame.length > PAYLOAD_OFFSET && rnd() < o.faults.corrupt) {
        copy = Buffer.from(frame);
        copy[PAYLOAD_OFFSET + Math.floor(rnd() * (frame.length - PAYLOAD_OFFSET))] ^=
          1 << Math.floor(rnd() * 8);
      }
      flight.push({
        at: now + o.faults.baseDelayMs + Math.floor(rnd() * (o.faults.jitterMs + 1)),
        frame: copy,
        to: from === 'client' ? 'agent' : 'client',
      });
    }
  };

  const client: DataChannel = new DataChannel({
    role: 'client',
    now: clock,
    send: (f) => transmit('client', f),
    deliver: (m) => {
      clientReceived.push(Buffer.from(m.payload));
      return true;
    },
    reackDuplicates: o.reackDuplicates?.client,
    maxUnackedMessages: o.maxUnackedMessages,
  });
  const agent: DataChannel = new DataChannel({
    role: 'agent',
    now: clock,
    send: (f) => transmit('agent', f),
    deliver: (m) => {
      agentReceived.push(Buffer.from(m.payload));
      return true;
    },
    reackDuplicates: o.reackDuplicates?.agent,
    maxUnackedMessages: o.maxUnackedMessages,
  });

  let ci = 0;
  let ai = 0;
  const reconnects = o.faults.reconnectAt.map((t) => t0 + t).sort((a, b) => a - b);
  let downUntil = -1;
  const finished = () =>
    ci === o.clientToAgent.length &&
    ai === o.agentToClient.length &&
    client.unackedCount === 0 &&
    agent.unackedCount === 0;

  while (now - t0 <= o.maxTimeMs) {
    while (ci < o.clientToAgent.length && client.writable)
      client.sendStream(PayloadType.Output, o.clientToAgent[ci++]);
    while (ai < o.agentToClient.length && agent.writable)
      agent.sendStream(PayloadType.Output, o.agentToClient[ai++]);
    if (finished()) break;
    if (reconnects.length && now >= reconnects[0]) {
      reconnects.shift();
      up = false;
      flight = [];
      client.setConnected(false);
      agent.setConnected(false);
      downUntil = now + o.faults.reconnectDownMs;
    }
    if (!up && now >= downUntil) {
      up = true;
      agent.setConnected(true);
      client.setConnected(true);
    }
    const due = flight.filter((f) => f.at <= now);
    if (due.length) {
      flight = flight.filter((f) => f.at > now);
      for (const f of due) (f.to === 'client' ? client : agent).receive(f.frame);
      continue; // deliveries may have freed window space; refill at the same instant
    }
    now += 1;
    if (now % RESEND_TICK_MS === 0) {
      client.tick();
      agent.tick();
    }
  }
  return { clientReceived, agentReceived, client, agent, time: now - t0, done: finished() };
}

export function isAckFor(frame: Buffer, seq: number): boolean {
  const r = decodeMessage(frame);
  return (
    r.ok &&
    r.message.messageType === MessageType.Acknowledge &&
    JSON.parse(r.message.payload.toString()).AcknowledgedMessageSequenceNumber === seq
  );
}

export function isStreamSeq(frame: Buffer, seq: number): boolean {
  const r = decodeMessage(frame);
  return r.ok && r.message.messageType !== MessageType.Acknowledge && r.message.sequenceNumber === seq;
}
