/**
 * The data channel as the agent runs it (SPEC 7.6, 7.7, 7.8, 10.8): the reliability layer with the
 * agent's own capacities and resend policy (only the front entry of the unacked list, once per RTO,
 * never given up on), and the paced Output queue that turns destination bytes and flags into stream
 * messages of at most 1024 bytes, one per millisecond like the agent's 1 ms sleep per read.
 */

import { DataChannel, type DataChannelOptions } from '../../protocol/data-channel.js';
import { encodeFlag, PayloadType } from '../../protocol/message.js';

/** The agent's buffer capacity in messages (SPEC 7.7). */
const AGENT_BUFFER_CAPACITY = 100_000;
/** Upstream never sends more than this per stream message (SPEC 10.8). */
export const MAX_PAYLOAD = 1024;
/** Stop reading destinations while this much is queued for the data channel. */
const OUT_QUEUE_HIGH_WATER = 64 * 1024;

type AgentChannelHooks = Pick<
  DataChannelOptions,
  'send' | 'deliver' | 'onChannelClosed' | 'onError' | 'onInvalid' | 'onDrain'
>;

export function createAgentDataChannel(
  pacing: boolean,
  reackDuplicates: boolean,
  hooks: AgentChannelHooks,
): DataChannel {
  return new DataChannel({
    role: 'agent',
    now: Date.now,
    // The real agent resends only its oldest unacked message, once per RTO, even after reconnecting.
    // Paced (as it really is), little is ever in flight, so a dropped socket costs a few ticks. Run
    // flat out for benchmarks, thousands of messages can be in flight: without round-trip recovery
    // a dropped client socket would stall for minutes, an artefact no real agent produces.
    fastRecovery: !pacing,
    resendAllOnReconnect: false,
    ...hooks,
    reackDuplicates,
    // The agent's own capacities (SPEC 7.7) and no resend limit (SPEC 7.6).
    maxUnackedMessages: AGENT_BUFFER_CAPACITY,
    maxUnackedBytes: AGENT_BUFFER_CAPACITY * MAX_PAYLOAD,
    reorderCapacity: AGENT_BUFFER_CAPACITY,
    resendDeadlineMs: Number.POSITIVE_INFINITY,
    connected: false,
  });
}

/**
 * Takes up to `max` bytes off the front of a queue, across the Buffers there, stopping at anything
 * that is not a Buffer (a flag keeps its own message). The queue is left with the rest.
 */
export function takeFront(queue: unknown[], max: number): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  while (size < max && queue.length > 0 && Buffer.isBuffer(queue[0])) {
    const b = queue[0] as Buffer;
    const take = Math.min(b.length, max - size);
    parts.push(take === b.length ? b : b.subarray(0, take));
    size += take;
    if (take === b.length) queue.shift();
    else queue[0] = b.subarray(take);
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
}

type FlagItem = { flag: number };
type OutItem = Buffer | FlagItem;

export interface OutputPumpHost {
  /** Running, connected, window open and not paused. */
  canSend(): boolean;
  isEnding(): boolean;
  sendStream(payloadType: number, payload: Buffer): number;
  /**
   * Whether the destinations should be read (see Destinations.setReading): `canSend` is the
   * channel's state, `queueHasRoom` this queue's. Mux streams are held by the shaper one by one, so
   * only basic mode's single reader goes by the queue.
   */
  setReading(canSend: boolean, queueHasRoom: boolean): void;
  /** The queue has room: a writer with more (the smux shaper) may add it now. */
  refill?(): void;
}

/** Agent → client: destination bytes and flags, in order, as paced Output and Flag messages. */
export class OutputPump {
  private out: OutItem[] = [];
  private outBytes = 0;
  private pumpImmediate: NodeJS.Immediate | undefined;
  private pumpTimer: NodeJS.Timeout | undefined;
  private pumping = false;

  constructor(
    private readonly host: OutputPumpHost,
    private readonly pacing: boolean,
  ) {}

  get pending(): number {
    return this.out.length;
  }

  enqueue(bytes: Buffer): void {
    if (bytes.length === 0 || this.host.isEnding()) return;
    this.out.push(bytes);
    this.outBytes += bytes.length;
    this.schedule();
  }

  /** A flag is a message of its own: bytes queued before and after it never share its message. */
  enqueueFlag(flag: number): void {
    if (this.host.isEnding()) return;
    this.out.push({ flag });
    this.schedule();
  }

  /** Resume sending and reading after a pause, a drained window or a reconnect. */
  kick(): void {
    this.refill();
    if (this.out.length > 0) this.schedule();
    this.updateReading();
  }

  /** Whether a writer may add more now without the queue passing its high water. */
  hasRoom(): boolean {
    return this.outBytes < OUT_QUEUE_HIGH_WATER;
  }

  private refill(): void {
    if (this.hasRoom()) this.host.refill?.();
  }

  clear(): void {
    this.out = [];
    this.outBytes = 0;
    if (this.pumpImmediate) clearImmediate(this.pumpImmediate);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpImmediate = undefined;
    this.pumpTimer = undefined;
  }

  private schedule(): void {
    // Inside pump() what is queued now is sent by that pump or its timer: no second pump.
    if (this.pumpImmediate || this.pumpTimer || this.pumping) return;
    // A turn of the event loop lets an smux header and its data leave in one message, as a 1024-byte
    // pipe read would upstream.
    this.pumpImmediate = setImmediate(() => {
      this.pumpImmediate = undefined;
      this.pump();
    });
  }

  private pump(): void {
    this.pumping = true;
    try {
      this.pumpSome();
    } finally {
      this.pumping = false;
    }
  }

  private pumpSome(): void {
    this.refill();
    while (this.out.length > 0 && this.host.canSend()) {
      this.sendOne();
      if (this.pacing) {
        // The agent sleeps 1 ms after every read (SPEC 10.8).
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = undefined;
          this.pump();
        }, 1);
        break;
      }
    }
    this.updateReading();
  }

  private sendOne(): void {
    const head = this.out[0];
    if (!Buffer.isBuffer(head)) {
      this.out.shift();
      this.host.sendStream(PayloadType.Flag, encodeFlag(head.flag));
      return;
    }
    const bytes = takeFront(this.out, MAX_PAYLOAD);
    this.outBytes -= bytes.length;
    this.host.sendStream(PayloadType.Output, bytes);
    this.refill();
  }

  /** Destinations are read only while the channel can take more (SPEC 7.7, 10.3.3). */
  private updateReading(): void {
    this.host.setReading(this.host.canSend(), this.hasRoom());
  }
}
