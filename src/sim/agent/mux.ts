/**
 * Multiplexed port forwarding on the agent's side (SPEC 10.3, agent steps 1-6): an smux v1 server over
 * the Output byte stream; every stream the client opens is dialled to the destination; a failed dial is
 * Flag 3 (ConnectToPortError) then FIN; the first EOF or error on either side closes both; the agent
 * echoes a FIN even after the client's (SPEC 16).
 */

import type net from 'node:net';
import { PayloadFlag } from '../../protocol/message.js';
import { encodeSmuxHeader, SmuxCmd, SmuxSession } from '../../protocol/smux.js';
import type { OutputPump } from './channel.js';
import type { Destinations } from './destinations.js';
import type { AgentContext } from './options.js';

interface MuxStream {
  sid: number;
  sock?: net.Socket;
  /** Data for the stream that arrived while its destination was still being dialled. */
  pending: Buffer[];
  pendingBytes: number;
  clientFin: boolean;
  closed: boolean;
}

export class MuxForwarder {
  private smux: SmuxSession | undefined;
  private readonly streams = new Map<number, MuxStream>();

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
  }

  private onStreamOpened(sid: number): void {
    this.ctx.counters.streamsAccepted++;
    const st: MuxStream = { sid, pending: [], pendingBytes: 0, clientFin: false, closed: false };
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
      (chunk) => {
        if (!st.closed) this.smux?.write(st.sid, chunk);
      },
      () => this.closeStream(st),
    );
    for (const b of st.pending) this.dest.write(sock, b);
    st.pending = [];
    st.pendingBytes = 0;
    if (st.clientFin) this.closeStream(st);
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
    if (st.sock) this.closeStream(st);
  }

  /** First EOF/error on either side closes both: our FIN (echoed even after the client's) and TCP. */
  private closeStream(st: MuxStream): void {
    if (st.closed) return;
    st.closed = true;
    this.streams.delete(st.sid);
    this.sendFin(st.sid);
    if (st.sock) this.dest.close(st.sock);
  }

  private sendFin(sid: number): void {
    if (!this.smux || this.smux.isClosed) return;
    // The smux core forgets a stream on the peer's FIN, yet the agent still answers with its own.
    if (this.smux.hasStream(sid)) this.smux.closeStream(sid);
    else this.out.enqueue(encodeSmuxHeader(SmuxCmd.FIN, 0, sid));
  }
}
