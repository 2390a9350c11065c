/**
 * Basic port forwarding on the agent's side (SPEC 10.5): one destination connection at a time, dialled
 * right after the handshake (a failure ends the session, or crashes the agent, see quirks.ts); Output
 * payloads are raw TCP bytes; Flag 1 (DisconnectToPort) or the destination's own EOF closes the
 * connection and the next Output redials before it is written.
 */

import type net from 'node:net';
import type { OutputPump } from './channel.js';
import type { Destinations } from './destinations.js';
import type { AgentContext } from './options.js';
import { CRASH_REASON, crashesOnRefusedDial } from './quirks.js';

export interface BasicHost {
  /** The first dial succeeded (the session is ready). */
  ready(): void;
  /** Output refused while dialling can be taken now. */
  retryDelivery(): void;
}

export class BasicForwarder {
  private sock: net.Socket | undefined;
  private dialing = false;
  private pending: Buffer[] = [];
  private started = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly dest: Destinations,
    private readonly out: OutputPump,
    private readonly host: BasicHost,
  ) {}

  /** Right after HandshakeComplete. */
  start(): void {
    this.dial(true);
  }

  /** One Output payload from the client; false refuses it (unacked, the client resends). */
  input(payload: Buffer): boolean {
    if (!this.started) return false; // the initial dial has not finished
    if (this.sock) {
      if (this.dest.inputRefused()) return false;
      this.dest.write(this.sock, payload);
      return true;
    }
    // The agent redials inside its handler and writes afterwards; holding the bytes is equivalent.
    this.pending.push(payload);
    if (!this.dialing) this.dial(false);
    return true;
  }

  /** Flag 1; false refuses it while a dial is under way. */
  disconnect(): boolean {
    // Its own dial is synchronous in the real agent's handler, so nothing is taken meanwhile.
    if (this.dialing) return false;
    const sock = this.sock;
    this.sock = undefined;
    if (sock) this.dest.close(sock);
    return true;
  }

  pendingBytes(): number {
    let n = 0;
    for (const b of this.pending) n += b.length;
    return n;
  }

  /** The session's end (the sockets themselves are Destinations'). */
  clear(): void {
    this.sock = undefined;
    this.pending = [];
  }

  private dial(initial: boolean): void {
    this.dialing = true;
    this.dest.dial().then(
      (sock) => {
        this.dialing = false;
        if (this.ctx.isEnding()) {
          sock.destroy();
          return;
        }
        this.sock = sock;
        this.dest.track(
          sock,
          (chunk) => {
            if (sock === this.sock) this.out.enqueue(chunk);
          },
          () => {
            // Destination EOF in LocalPortForwarding: close and redial on the next Output.
            if (sock === this.sock) this.sock = undefined;
            this.dest.close(sock);
          },
        );
        const pending = this.pending;
        this.pending = [];
        for (const b of pending) this.dest.write(sock, b);
        if (initial) {
          this.started = true;
          this.host.ready();
        }
        this.host.retryDelivery();
      },
      (err: Error) => {
        this.dialing = false;
        this.ctx.counters.dialFailures++;
        this.pending = [];
        if (this.ctx.isEnding()) return;
        if (crashesOnRefusedDial(this.ctx)) {
          this.ctx.finish(CRASH_REASON, 'terminate');
          return;
        }
        this.ctx.finish(`Unable to connect to specified port: ${err.message}`, 'drain');
      },
    );
  }
}
