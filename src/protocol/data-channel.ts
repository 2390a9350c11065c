/**
 * The reliable, ordered data channel (SPEC section 7) as a pure state machine. Time comes from the
 * injected clock and the driver calls `tick()` every RESEND_TICK_MS; bytes leave through `send` and
 * in-order stream messages reach the consumer through `deliver`. No sockets, no timers.
 */
import { ProtocolError } from './errors.js';
import {
  type DecodedMessage,
  decodeMessage,
  encodeMessage,
  HeaderFlags,
  MessageType,
  PayloadType,
} from './message.js';
import { buildAcknowledge, type ChannelClosed, parseAckSequence, parseChannelClosed } from './payloads.js';

export const RESEND_TICK_MS = 100;
export const INITIAL_SRTT_MS = 100;
export const INITIAL_RTO_MS = 200;
export const MAX_RTO_MS = 1000;
export const CLOCK_GRANULARITY_MS = 10;
export const DEFAULT_RESEND_DEADLINE_MS = 5 * 60_000;
/** Unacked bound: enough in flight to fill loopback and WAN pipes, small enough to never overrun an agent. */
export const DEFAULT_MAX_UNACKED_MESSAGES = 2048;
export const DEFAULT_MAX_UNACKED_BYTES = 4 * 1024 * 1024;
export const DEFAULT_REORDER_CAPACITY = 10_000;
/** Bounds one scan's work when a dead socket lost a whole window (reconnects resend it all anyway). */
const MAX_HOLE_RESENDS_PER_SCAN = 512;
/** Hole scans on acks at most this often; each walks the unacked window. */
const HOLE_SCAN_MS = 10;
/** Sent this much before an acked entry and still unacked: lost (the sim's reorder holds one frame). */
const REORDER_MARGIN_MS = 5;
/**
 * The reorder buffer holds early messages only while a hole waits for the peer's resend (about one
 * RTO), so a few MB cover it; the byte bound keeps big frames from growing it without limit.
 */
export const DEFAULT_REORDER_MAX_BYTES = 16 * 1024 * 1024;

export type ChannelRole = 'client' | 'agent';

export interface DataChannelStats {
  sent: number;
  received: number;
  retransmissions: number;
  duplicates: number;
  reordered: number;
  /** Early messages not stored (beyond the reorder window in sequence numbers or bytes); unacked. */
  reorderRefused: number;
  reorderBytes: number;
  invalid: number;
  ignored: number;
  srttMs: number;
  rttvarMs: number;
  rtoMs: number;
  unackedMessages: number;
  unackedBytes: number;
}

export interface DataChannelOptions {
  role: ChannelRole;
  /**
   * Wall-clock milliseconds (Date.now or a fake clock starting at a real epoch): it stamps CreatedDate,
   * which must not be 0 on the wire, as well as timing RTTs.
   */
  now: () => number;
  /** Transmit one frame. Only called while the channel is connected and not paused. */
  send: (frame: Buffer) => void;
  /**
   * An in-order stream message for the consumer. Return false when the consumer cannot take it yet:
   * the message is then not acknowledged (the peer retransmits it) or stays parked until
   * `retryDelivery()` (SPEC trap 14: ack only what was processed or buffered).
   */
  deliver: (msg: DecodedMessage) => boolean;
  onChannelClosed?: (closed: ChannelClosed) => void;
  /** The channel failed for good (resend deadline). */
  onError?: (err: ProtocolError) => void;
  /** A malformed frame was dropped; the channel goes on. */
  onInvalid?: (err: ProtocolError) => void;
  /** The unacked bound has room again after `writable` went false. */
  onDrain?: () => void;
  /** Re-ack duplicates (SPEC trap 13). Only the simulator's emulation of old peers turns this off. */
  reackDuplicates?: boolean;
  /**
   * Recover losses in round trips rather than in 100 ms ticks: when the front entry is overdue and a
   * later entry has already been acked (a hole: the front was lost, not queued), resend it on that
   * ack; and when `start_publication` says the peer is back, resend everything unacked, since what was
   * in flight to its old socket is likely gone. The real agent does neither; the simulator's agent
   * turns this off to stay faithful (unless it runs flat out for benchmarks).
   */
  fastRecovery?: boolean;
  /**
   * On reconnect, resend everything unacked rather than only the front entry (see setConnected). The
   * real agent resends only the front; the simulator's agent turns this off to stay faithful.
   */
  resendAllOnReconnect?: boolean;
  maxUnackedMessages?: number;
  maxUnackedBytes?: number;
  reorderCapacity?: number;
  reorderMaxBytes?: number;
  resendDeadlineMs?: number;
  /** Whether the transport is up at construction. */
  connected?: boolean;
  /** Reject frames whose PayloadLength disagrees with the bytes present. */
  strictLength?: boolean;
}

interface OutgoingEntry {
  seq: number;
  frame: Buffer;
  payloadBytes: number;
  firstSent: number;
  lastSent: number;
  transmitted: boolean;
  acked: boolean;
}

export class DataChannel {
  readonly role: ChannelRole;
  private readonly opts: DataChannelOptions;
  private readonly sendType: string;
  private readonly recvType: string;
  private readonly maxUnackedMessages: number;
  private readonly maxUnackedBytes: number;
  private readonly reorderCapacity: number;
  private readonly reorderMaxBytes: number;
  private reorderBytes = 0;
  private readonly resendDeadlineMs: number;
  private readonly reack: boolean;
  private readonly fastRecovery: boolean;
  private readonly resendAll: boolean;

  private nextSendSeq = 0;
  private expectedRecvSeq = 0;
  /** FIFO of unacked entries; acked entries in the middle are skipped lazily via `acked`. */
  private outgoing: OutgoingEntry[] = [];
  private outHead = 0;
  private readonly bySeq = new Map<number, OutgoingEntry>();
  private readonly reorder = new Map<number, DecodedMessage>();
  /** An in-order message the consumer refused after we had already acked it (it came via reorder). */
  private parked: DecodedMessage | undefined;
  private unackedBytes = 0;
  /** Payload bytes from the oldest unacked entry to the newest (see windowMessages). */
  private windowBytes = 0;
  private highestAckedSeq = -1;
  /** Latest send time among acked entries: anything sent clearly before it and still unacked is lost. */
  private latestAckedSentAt = 0;
  private lastHoleScan = 0;
  private blocked = false;
  private connected: boolean;
  private paused = false;
  private failed = false;

  private srtt = INITIAL_SRTT_MS;
  private rttvar = 0;
  private rto = INITIAL_RTO_MS;
  private readonly counters = {
    sent: 0,
    received: 0,
    retransmissions: 0,
    duplicates: 0,
    reordered: 0,
    reorderRefused: 0,
    invalid: 0,
    ignored: 0,
  };

  constructor(opts: DataChannelOptions) {
    this.opts = opts;
    this.role = opts.role;
    this.sendType = opts.role === 'client' ? MessageType.InputStreamData : MessageType.OutputStreamData;
    this.recvType = opts.role === 'client' ? MessageType.OutputStreamData : MessageType.InputStreamData;
    this.maxUnackedMessages = opts.maxUnackedMessages ?? DEFAULT_MAX_UNACKED_MESSAGES;
    this.maxUnackedBytes = opts.maxUnackedBytes ?? DEFAULT_MAX_UNACKED_BYTES;
    this.reorderCapacity = opts.reorderCapacity ?? DEFAULT_REORDER_CAPACITY;
    this.reorderMaxBytes = opts.reorderMaxBytes ?? DEFAULT_REORDER_MAX_BYTES;
    this.resendDeadlineMs = opts.resendDeadlineMs ?? DEFAULT_RESEND_DEADLINE_MS;
    this.reack = opts.reackDuplicates ?? true;
    this.fastRecovery = opts.fastRecovery ?? true;
    this.resendAll = opts.resendAllOnReconnect ?? true;
    this.connected = opts.connected ?? true;
  }

  get nextSequenceNumber(): number {
    return this.nextSendSeq;
  }

  get expectedSequenceNumber(): number {
    return this.expectedRecvSeq;
  }

  get isFailed(): boolean {
    return this.failed;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** False while the unacked bound is reached: stop reading local sockets until `onDrain`. */
  get writable(): boolean {
    return this.windowMessages() < this.maxUnackedMessages && this.windowBytes < this.maxUnackedBytes;
  }

  /**
   * The window spans from the oldest unacked message to the newest, acked ones in between included: a
   * peer that refuses one message (its destination is full) but acks and buffers everything behind it
   * would otherwise let us fill its reorder buffer without bound.
   */
  private windowMessages(): number {
    const front = this.front();
    return front ? this.nextSendSeq - front.seq : 0;
  }

  get unackedCount(): number {
    return this.bySeq.size;
  }

  stats(): DataChannelStats {
    return {
      ...this.counters,
      srttMs: this.srtt,
      rttvarMs: this.rttvar,
      rtoMs: this.rto,
      unackedMessages: this.bySeq.size,
      unackedBytes: this.unackedBytes,
      reorderBytes: this.reorderBytes,
    };
  }

  /** Whether the peer acknowledged our stream message `seq`. */
  isAcknowledged(seq: number): boolean {
    return seq < this.nextSendSeq && !this.bySeq.has(seq);
  }

  /** Incoming messages wait behind a missing one (or a parked one). */
  get hasInboundGap(): boolean {
    return this.reorder.size > 0 || this.parked !== undefined;
  }

  /** Milliseconds since the oldest unacknowledged message was first sent (0 when none). */
  oldestUnackedAgeMs(): number {
    const front = this.front();
    return front ? Math.max(0, this.opts.now() - front.firstSent) : 0;
  }

  /**
   * Queues one stream message. It is always accepted and buffered until acked (never dropped, SPEC
   * trap 15); callers respect `writable` to bound memory. Returns the sequence number used.
   */
  sendStream(payloadType: number, payload: Uint8Array): number {
    if (this.failed) throw new ProtocolError('CHANNEL_CLOSED', 'data channel has failed');
    const seq = this.nextSendSeq++;
    const now = this.opts.now();
    const frame = encodeMessage({
      messageType: this.sendType,
      sequenceNumber: seq,
      flags: this.role === 'agent' && seq === 0 ? HeaderFlags.Syn : HeaderFlags.Data,
      payloadType,
      payload,
      createdDate: now,
    });
    const entry: OutgoingEntry = {
      seq,
      frame,
      payloadBytes: payload.length,
      firstSent: now,
      lastSent: now,
      transmitted: false,
      acked: false,
    };
    this.outgoing.push(entry);
    this.bySeq.set(seq, entry);
    this.unackedBytes += payload.length;
    this.windowBytes += payload.length;
    if (this.connected && !this.paused) this.transmit(entry, now);
    if (!this.writable) this.blocked = true;
    return seq;
  }

  private transmit(entry: OutgoingEntry, now: number): void {
    if (entry.transmitted) this.counters.retransmissions++;
    else this.counters.sent++;
    entry.transmitted = true;
    entry.lastSent = now;
    this.opts.send(entry.frame);
  }

  /** Feeds one WebSocket frame from the peer. Malformed frames are dropped and reported, never thrown. */
  receive(frame: Uint8Array): void {
    if (this.failed) return;
    const result = decodeMessage(frame, { strictLength: this.opts.strictLength });
    if (!result.ok) {
      this.counters.invalid++;
      this.opts.onInvalid?.(result.error);
      return;
    }
    this.receiveMessage(result.message);
  }

  /** Like receive(), for a caller that has decoded (and validated) the frame already. */
  receiveMessage(msg: DecodedMessage): void {
    if (this.failed) return;
    switch (msg.messageType) {
      case this.recvType:
        this.resumePublication();
        this.onStreamMessage(msg);
        return;
      case MessageType.Acknowledge:
        this.resumePublication();
        this.onAcknowledge(msg);
        return;
      case MessageType.ChannelClosed:
        this.opts.onChannelClosed?.(parseChannelClosed(msg.payload));
        return;
      case MessageType.PausePublication:
        this.paused = true;
        return;
      case MessageType.StartPublication:
        // The other side is back (SPEC 5.3): whatever was in flight to its old socket is likely gone.
        if (this.fastRecovery) {
          this.paused = false;
          this.resendAllUnacked();
        } else {
          this.resumePublication();
        }
        return;
      default:
        // agent_session_state, data_channel_ready, anything newer: ignore (SPEC 5).
        this.counters.ignored++;
    }
  }

  private sendAck(msg: DecodedMessage): void {
    if (!this.connected) return;
    this.opts.send(
      encodeMessage({
        messageType: MessageType.Acknowledge,
        sequenceNumber: 0,
        flags: HeaderFlags.Ack,
        payloadType: PayloadType.None,
        payload: buildAcknowledge(msg.messageType, msg.messageId, msg.sequenceNumber),
        createdDate: this.opts.now(),
      }),
    );
  }

  private onStreamMessage(msg: DecodedMessage): void {
    const s = msg.sequenceNumber;
    this.counters.received++;
    if (s === this.expectedRecvSeq) {
      if (this.parked) {
        // A copy of the parked message, which was acked already: re-ack so the peer stops resending.
        this.sendAck(msg);
        return;
      }
      // Handshake messages are acked before processing, as the plugin does (SPEC 7.3).
      const ackFirst = isHandshakePayload(msg.payloadType);
      if (ackFirst) this.sendAck(msg);
      if (!this.opts.deliver(msg)) {
        // Already acked, so the peer will not resend it: keep it until the consumer is ready.
        if (ackFirst) this.parked = msg;
        return;
      }
      if (!ackFirst) this.sendAck(msg);
      this.expectedRecvSeq = s + 1;
      this.drainReorder();
    } else if (s > this.expectedRecvSeq) {
      const old = this.reorder.get(s);
      const bytes = this.reorderBytes - (old ? old.payload.length : 0) + msg.payload.length;
      // The window, in sequence numbers and bytes: beyond it a message is dropped unacked, and the
      // peer's resend brings it back once the hole in front has been filled.
      if (s - this.expectedRecvSeq <= this.reorderCapacity && bytes <= this.reorderMaxBytes) {
        this.reorder.set(s, msg);
        this.reorderBytes = bytes;
        this.counters.reordered++;
        this.sendAck(msg);
      } else {
        this.counters.reorderRefused++;
      }
    } else {
      this.counters.duplicates++;
      if (this.reack) this.sendAck(msg);
    }
  }

  private drainReorder(): void {
    for (;;) {
      const next = this.parked ?? this.reorder.get(this.expectedRecvSeq);
      if (!next) return;
      if (!this.parked) this.reorderBytes -= next.payload.length;
      this.reorder.delete(this.expectedRecvSeq);
      if (!this.opts.deliver(next)) {
        this.parked = next;
        return;
      }
      this.parked = undefined;
      this.expectedRecvSeq++;
    }
  }

  /** The consumer is ready again: deliver what was parked or buffered behind it. */
  retryDelivery(): void {
    if (!this.failed) this.drainReorder();
  }

  private onAcknowledge(msg: DecodedMessage): void {
    const seq = parseAckSequence(msg.payload);
    if (seq === undefined) {
      this.counters.invalid++;
      this.opts.onInvalid?.(new ProtocolError('BAD_PAYLOAD', 'unparseable acknowledge payload'));
      return;
    }
    const entry = this.bySeq.get(seq);
    if (!entry) return;
    const now = this.opts.now();
    this.updateRtt(now - entry.lastSent);
    if (entry.lastSent > this.latestAckedSentAt) this.latestAckedSentAt = entry.lastSent;
    entry.acked = true;
    this.bySeq.delete(entry.seq);
    this.unackedBytes -= entry.payloadBytes;
    this.compact();
    if (seq > this.highestAckedSeq) this.highestAckedSeq = seq;
    // A hole: something sent after the front was acked while the front waits past its RTO, so the
    // front was lost (not merely queued). Resend it now rather than on the next tick.
    if (this.fastRecovery && this.connected && !this.paused) {
      const front = this.front();
      if (front && front.seq < this.highestAckedSeq && now - front.lastSent > this.rto)
        this.transmit(front, now);
      if (now - this.lastHoleScan >= HOLE_SCAN_MS) {
        this.lastHoleScan = now;
        this.resendHoles(now);
      }
    }
    if (this.blocked && this.belowLowWater()) {
      this.blocked = false;
      this.opts.onDrain?.();
    }
  }

  /** Resume reading only once half the window is free, so sockets are not toggled per ack. */
  private belowLowWater(): boolean {
    return (
      this.windowMessages() <= this.maxUnackedMessages / 2 && this.windowBytes <= this.maxUnackedBytes / 2
    );
  }

  private compact(): void {
    const q = this.outgoing;
    while (this.outHead < q.length && q[this.outHead].acked)
      this.windowBytes -= q[this.outHead++].payloadBytes;
    if (this.outHead === q.length) {
      this.outgoing = [];
      this.outHead = 0;
    } else if (this.outHead > 1024 && this.outHead * 2 > q.length) {
      this.outgoing = q.slice(this.outHead);
      this.outHead = 0;
    }
  }

  /** SPEC 7.5, including its order: RTTVAR uses the old SRTT. */
  private updateRtt(sample: number): void {
    const r = Math.max(0, sample);
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
    this.srtt = 0.875 * this.srtt + 0.125 * r;
    this.rto = Math.min(this.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.rttvar), MAX_RTO_MS);
  }

  private front(): OutgoingEntry | undefined {
    return this.outHead < this.outgoing.length ? this.outgoing[this.outHead] : undefined;
  }

  /**
   * Agent-style retransmission (SPEC 7.6): only the oldest unacked entry, once per RTO. Suspended
   * while disconnected or paused. An entry unacked past the deadline fails the channel.
   */
  tick(): void {
    if (this.failed) return;
    const entry = this.front();
    if (!entry) return;
    const now = this.opts.now();
    if (now - entry.firstSent > this.resendDeadlineMs) {
      this.fail(
        new ProtocolError(
          'RESEND_TIMEOUT',
          `message ${entry.seq} unacknowledged for ${Math.round((now - entry.firstSent) / 1000)} s`,
        ),
      );
      return;
    }
    if (!this.connected || this.paused) return;
    if (!entry.transmitted || now - entry.lastSent > this.rto) this.transmit(entry, now);
    if (this.fastRecovery) this.resendHoles(now);
  }

  /**
   * Acks come back in send order (one WebSocket), so an unacked entry sent clearly before one that
   * has been acked was lost, not queued: resend every such hole at once. Front-only resending
   * recovers n losses of a window one after another, a tick or more each, which with 2% loss and a
   * full window meant multi-second stalls. A resent entry is only resent again once something sent
   * after the resend has been acked.
   */
  private resendHoles(now: number): void {
    const q = this.outgoing;
    let budget = MAX_HOLE_RESENDS_PER_SCAN;
    for (let i = this.outHead; i < q.length && budget > 0; i++) {
      const e = q[i];
      if (e.seq >= this.highestAckedSeq) break;
      if (!e.acked && e.transmitted && e.lastSent + REORDER_MARGIN_MS < this.latestAckedSentAt) {
        this.transmit(e, now);
        budget--;
      }
    }
  }

  /**
   * The transport went down or came back. Sequence numbers and buffers carry over (SPEC 11.2). On
   * reconnect everything unacked is sent again at once: whatever was in flight on the dead socket is
   * probably lost, and front-only resending would recover it one message per tick.
   */
  setConnected(up: boolean): void {
    this.connected = up;
    if (!up || this.failed) return;
    // A fresh connection ends any pause, as the agent does after reconnecting (SPEC 5.3).
    this.paused = false;
    if (this.resendAll) {
      this.resendAllUnacked();
      return;
    }
    const front = this.front();
    if (front) this.transmit(front, this.opts.now());
    this.flushUntransmitted();
  }

  private resendAllUnacked(): void {
    if (!this.connected || this.failed) return;
    const now = this.opts.now();
    const q = this.outgoing;
    for (let i = this.outHead; i < q.length; i++) if (!q[i].acked) this.transmit(q[i], now);
  }

  /** Like the agent, any sign of life from the peer ends a pause (SPEC 5.3). */
  private resumePublication(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flushUntransmitted();
  }

  private flushUntransmitted(): void {
    if (!this.connected) return;
    const now = this.opts.now();
    const q = this.outgoing;
    for (let i = this.outHead; i < q.length; i++)
      if (!q[i].acked && !q[i].transmitted) this.transmit(q[i], now);
  }

  private fail(err: ProtocolError): void {
    if (this.failed) return;
    this.failed = true;
    this.opts.onError?.(err);
  }

  /** Stops the channel: no more sends, retransmissions or deliveries. */
  close(): void {
    this.failed = true;
  }
}

function isHandshakePayload(t: number): boolean {
  return (
    t === PayloadType.HandshakeRequest ||
    t === PayloadType.HandshakeComplete ||
    t === PayloadType.EncChallengeRequest
  );
}
