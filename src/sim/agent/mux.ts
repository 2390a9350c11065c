/**
 * Multiplexed port forwarding on the agent's side (SPEC 10.3, agent steps 1-6): an smux v1 server over
 * the Output byte stream; every stream the client opens is dialled to the destination; a failed dial is
 * Flag 3 (ConnectToPortError) then FIN; the first EOF or error on either side closes both; the agent
 * echoes a FIN even after the client's (SPEC 16).
 *
 * Streams share the session as they do upstream: each destination is read by its own copy loop that
 * blocks in the smux Write of one frame (at most 32 KiB, SPEC 10.8) until smux's shaper sends it, and
 * the shaper takes one frame per stream in turn. Without that, whichever socket the event loop happens
 * to report first would win every refill and the others would starve for seconds, an artefact of
 * this simulator, not of the agent.
 */

import type net from 'node:net';
import { PayloadFlag } from '../../protocol/message.js';
import { encodeSmuxHeader, SMUX_MAX_FRAME_SIZE, SmuxCmd, SmuxSession } from '../../protocol/smux.js';
import { type OutputPump, takeFront } from './channel.js';
import type { Destinations } from './destinations.js';
import type { AgentContext } from './options.js';

interface MuxStream {
  sid: number;
  sock?: net.Socket;
  /** Destination bytes read but not yet framed: the copy loop's Write in progress. */
  unsent: Buffer[];
  unsentBytes: number;
  /** The destination ended: FIN once `unsent` is out. */
  finAfterUnsent: boolean;
  /** Data for the stream that arrived while its destination was still being dialled. */
  pending: Buffer[];
  pendingBytes: number;
  clientFin: boolean;
  closed: boolean;
}

export class MuxForwarder {
  private smux: SmuxSession | undefined;
  private readonly streams = new Map<number, MuxStream>();
  /** Streams with destination bytes waiting, in the shaper's round-robin order. */
  private readonly ready: MuxStream[] = [];

  constructor(
    private readonly ctx: AgentContext,
    private readonly dest: Destinations,
    private readonly out: OutputPump,
  ) {}

  /** After HandshakeComplete: the smux server, keepalive as the version gate decided (SPEC 10.2). */
  start(keepalive: boolean): void {
    const { opts } = this.ctx;
    this.smux = new SmuxSession(
      {
        role: 'server',
        keepalive,
        keepaliveIntervalMs: opts.smuxKeepaliveIntervalMs,
        keepaliveTimeoutMs: opts.smuxKeepaliveTimeoutMs,
      },
      {
        output: (bytes) => this.out.enqueue(bytes),
        streamOpened: (sid) => this.onStreamOpened(sid),
        data: (sid, data) => this.onStreamData(sid, data),
        streamClosed: (sid) => this.onStreamFin(sid),
        error: (err) => this.ctx.finish(`smux session failed: ${err.message}`, 'drain'),
      },
      Date.now(),
    );
  }

  /** One Output payload from the client; false refuses it (unacked, the client resends). */
  input(payload: Buffer): boolean {
    if (!this.smux || this.dest.inputRefused()) return false;
    this.smux.receive(payload);
    return true;
  }

  tick(now: number): void {
    this.smux?.tick(now);
  }

  pendingBytes(): number {
    let n = 0;
    for (const st of this.streams.values()) n += st.pendingBytes;
    return n;
  }

  /** The session's end: the smux session and every stream, without FINs. */
  close(): void {
    this.smux?.close();
    for (const st of this.streams.values()) st.closed = true;
    this.streams.clear();
    this.ready.length = 0;
  }

  /** The shaper: while the Output queue has room, one frame from the next stream that has one. */
  refill(): void {
    while (this.ready.length > 0 && this.out.hasRoom()) {
      const st = this.ready.shift() as MuxStream;
      if (st.closed && !st.finAfterUnsent) continue;
      this.smux?.write(st.sid, this.takeFrame(st));
      if (st.unsentBytes > 0) this.ready.push(st);
      else if (st.finAfterUnsent) this.finishStream(st);
      if (st.sock && st.unsentBytes < SMUX_MAX_FRAME_SIZE) this.dest.hold(st.sock, false);
    }
  }

  private takeFrame(st: MuxStream): Buffer {
    const frame = takeFront(st.unsent, SMUX_MAX_FRAME_SIZE);
    st.unsentBytes -= frame.length;
    return frame;
  }

  private queueFromDestination(st: MuxStream, chunk: Buffer): void {
    if (st.closed) return;
    if (st.unsentBytes === 0) this.ready.push(st);
    st.unsent.push(chunk);
    st.unsentBytes += chunk.length;
    // The copy loop is inside Write until its frame went: it reads nothing more meanwhile.
    if (st.sock && st.unsentBytes >= SMUX_MAX_FRAME_SIZE) this.dest.hold(st.sock, true);
    // The pump refills from the shaper (refill) and sends.
    this.out.kick();
  }

  private onStreamOpened(sid: number): void {
    this.ctx.counters.streamsAccepted++;
    const st: MuxStream = {
      sid,
      pending: [],
      pendingBytes: 0,
      unsent: [],
      unsentBytes: 0,
      finAfterUnsent: false,
      clientFin: false,
      closed: false,
    };
    this.streams.set(sid, st);
    this.dest.dial().then(
      (sock) => this.onStreamDialled(st, sock),
      (err: Error) => this.onStreamDialFailed(st, err),
    );
  }

  private onStreamDialled(st: MuxStream, sock: net.Socket): void {
    if (this.ctx.isEnding() || st.closed) {
      sock.destroy();
      return;
    }
    st.sock = sock;
    this.dest.track(
      sock,
      (chunk) => this.queueFromDestination(st, chunk),
      () => this.closeStream(st, 'destination'),
    );
    for (const b of st.pending) this.dest.write(sock, b);
    st.pending = [];
    st.pendingBytes = 0;
    if (st.clientFin) this.closeStream(st, 'client');
  }

  private onStreamDialFailed(st: MuxStream, err: Error): void {
    this.ctx.counters.dialFailures++;
    this.ctx.log.debug({ sid: st.sid, err: err.message }, 'destination dial failed');
    if (this.ctx.isEnding() || st.closed) return;
    st.closed = true;
    this.streams.delete(st.sid);
    st.pending = [];
    st.pendingBytes = 0;
    // Flag 3 in one message, the FIN in the next (SPEC 16): the queue keeps them apart.
    this.out.enqueueFlag(PayloadFlag.ConnectToPortError);
    this.sendFin(st.sid);
    this.dest.checkUnblock();
  }

  private onStreamData(sid: number, data: Buffer): void {
    const st = this.streams.get(sid);
    if (!st || st.closed) return;
    if (st.sock) {
      this.dest.write(st.sock, data);
    } else {
      st.pending.push(data);
      st.pendingBytes += data.length;
    }
  }

  private onStreamFin(sid: number): void {
    const st = this.streams.get(sid);
    if (!st) return;
    st.clientFin = true;
    // Still dialling: the dial's outcome closes it.
    if (st.sock) this.closeStream(st, 'client');
  }

  /**
   * First EOF/error on either side closes both: our FIN (echoed even after the client's) and TCP.
   * The destination's EOF comes after what it sent, so the FIN waits for the frames still queued;
   * the client's FIN makes the pending Write fail, so those frames are dropped.
   */
  private closeStream(st: MuxStream, by: 'client' | 'destination'): void {
    if (st.closed) return;
    st.closed = true;
    this.streams.delete(st.sid);
    if (st.sock) this.dest.close(st.sock);
    if (by === 'destination' && st.unsentBytes > 0) {
      st.finAfterUnsent = true;
      return;
    }
    st.unsent = [];
    st.unsentBytes = 0;
    this.finishStream(st);
  }

  private finishStream(st: MuxStream): void {
    st.finAfterUnsent = false;
    this.sendFin(st.sid);
  }

  private sendFin(sid: number): void {
    if (!this.smux || this.smux.isClosed) return;
    // The smux core forgets a stream on the peer's FIN, yet the agent still answers with its own.
    if (this.smux.hasStream(sid)) this.smux.closeStream(sid);
    else this.out.enqueue(encodeSmuxHeader(SmuxCmd.FIN, 0, sid));
  }
}
