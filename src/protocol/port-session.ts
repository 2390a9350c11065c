/**
 * The client side of a Port session on top of a data channel (SPEC 10): the handshake, then either
 * multiplexed mode (one smux stream per local connection) or basic mode (one connection at a time,
 * raw bytes). Pure: local sockets and the data channel are the caller's; this turns their events into
 * stream messages and back.
 */
import { BasicGate, type BasicGateOptions } from './basic-gate.js';
import { ProtocolError } from './errors.js';
import { CLIENT_VERSION, ClientHandshake } from './handshake.js';
import { type DecodedMessage, decodeFlag, encodeFlag, PayloadFlag, PayloadType } from './message.js';
import { buildHandshakeResponse, type PortProperties } from './payloads.js';
import { SmuxSession } from './smux.js';
import { clientModeFor } from './version.js';

/** Upstream never sends more than 1024 payload bytes per stream message (SPEC 10.8). */
export const DEFAULT_MAX_PAYLOAD = 1024;

export type PortMode = 'mux' | 'basic';

export interface PortSessionInfo {
  mode: PortMode;
  agentVersion: string;
  properties: PortProperties;
  smuxKeepalive: boolean;
  /** Whether the agent understands the in-band TerminateSession flag (else call the API). */
  terminateFlag: boolean;
  customerMessage: string;
}

export interface PortSessionHandlers {
  /** Send one stream message through the data channel; returns its sequence number. */
  sendStream(payloadType: number, payload: Buffer): number | undefined;
  /**
   * Basic mode's gate asks the data channel whether the agent acknowledged a message, and whether
   * incoming messages wait behind a hole. Without these the gate only waits for quiet.
   */
  isAcknowledged?(seq: number): boolean;
  inboundGap?(): boolean;
  /** Basic mode: the previous connection's output has drained; a waiting connection may open now. */
  slotFree?(): void;
  /** Handshake complete: connections may be opened now. */
  ready(info: PortSessionInfo): void;
  /** Bytes from the remote side for a local connection. */
  data(connId: number, data: Buffer): void;
  /** The remote side closed this connection (smux FIN). */
  remoteClosed(connId: number): void;
  /** The agent could not reach the destination (Flag 3; carries no stream id, the FIN follows). */
  connectToPortError(): void;
  /** The session cannot go on (handshake refused, smux protocol error or keepalive timeout). */
  failed(err: ProtocolError): void;
}

export interface PortSessionOptions {
  clientVersion?: string;
  maxPayload?: number;
  now: number;
  /** The injected clock for basic mode's quiet period (defaults to the time last given to tick()). */
  clock?: () => number;
  basicGate?: BasicGateOptions;
  /**
   * Basic mode: output that arrives before the first connection attaches (a server banner for the
   * destination dialled at session start) is held for it up to this many bytes; more is refused
   * unacknowledged, so the agent resends it.
   */
  maxEarlyOutputBytes?: number;
  /**
   * Mux mode: runs `flush` later in the same turn of the caller's event loop (setImmediate), so the
   * smux frames of several connections that became readable together leave in one Output message,
   * as the plugin's 1024-byte pipe reads carry them (SPEC 10.3.1), instead of one message, one
   * digest and one ack each. Without it every frame is sent at once.
   */
  coalesce?: (flush: () => void) => void;
}

const DEFAULT_MAX_EARLY_OUTPUT = 256 * 1024;

export class PortSession {
  private readonly handshake: ClientHandshake;
  private readonly maxPayload: number;
  private info: PortSessionInfo | undefined;
  private smux: SmuxSession | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  /** One closure for every scheduled flush, not one per turn. */
  private readonly scheduledFlush = (): void => {
    this.flushScheduled = false;
    if (!this.dead) this.flushOutput(true);
  };
  private basicConn: number | undefined;
  private nextBasicConn = 1;
  private basicEverAttached = false;
  private readonly gate: BasicGate;
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private lastNow: number;
  private dead = false;

  constructor(
    private readonly opts: PortSessionOptions,
    private readonly handlers: PortSessionHandlers,
  ) {
    this.handshake = new ClientHandshake(opts.clientVersion ?? CLIENT_VERSION);
    this.maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.gate = new BasicGate(opts.basicGate);
    this.lastNow = opts.now;
  }

  private now(): number {
    return this.opts.clock ? this.opts.clock() : this.lastNow;
  }

  /** Basic mode: the slot is closed while a finished connection's output may still arrive. */
  get basicDraining(): boolean {
    return this.gate.isDraining;
  }

  get basicStats(): { discardedMessages: number; discardedBytes: number } {
    return this.gate.stats;
  }

  get ready(): boolean {
    return this.info !== undefined && !this.dead;
  }

  get sessionInfo(): PortSessionInfo | undefined {
    return this.info;
  }

  /** In basic mode only one local connection may be open at a time. */
  get canOpenConnection(): boolean {
    return (
      this.ready && (this.info!.mode === 'mux' || (this.basicConn === undefined && !this.gate.isDraining))
    );
  }

  /**
   * The consumer side of the data channel. Returns false when the data cannot be taken yet (not
   * acknowledged; the agent resends it).
   */
  deliver(msg: DecodedMessage): boolean {
    if (this.dead) return true;
    switch (msg.payloadType) {
      case PayloadType.HandshakeRequest:
        this.onHandshakeRequest(msg.payload);
        return true;
      case PayloadType.HandshakeComplete:
        this.onHandshakeComplete(msg.payload);
        return true;
      case PayloadType.Output:
        return this.onOutput(msg.payload);
      case PayloadType.Flag:
        if (decodeFlag(msg.payload) === PayloadFlag.ConnectToPortError) this.handlers.connectToPortError();
        return true;
      default:
        // EncChallengeRequest cannot happen after we refused KMS; anything else has no meaning here.
        return true;
    }
  }

  private onHandshakeRequest(payload: Buffer): void {
    const out = this.handshake.onRequest(payload);
    if (!out) return;
    this.handlers.sendStream(PayloadType.HandshakeResponse, buildHandshakeResponse(out.response));
    if (out.error) this.fail(out.error);
  }

  private onHandshakeComplete(payload: Buffer): void {
    if (!this.handshake.onComplete(payload)) return;
    const decision = clientModeFor(this.handshake.agentVersion);
    this.info = {
      mode: decision.mode,
      agentVersion: this.handshake.agentVersion,
      properties: this.handshake.properties,
      smuxKeepalive: decision.smuxKeepalive,
      terminateFlag: decision.terminateFlag,
      customerMessage: this.handshake.customerMessage,
    };
    if (decision.mode === 'mux') {
      this.smux = new SmuxSession(
        { role: 'client', keepalive: decision.smuxKeepalive },
        {
          output: (bytes) => this.queueOutput(bytes),
          // The agent never opens streams; refuse any it opens so nothing leaks.
          streamOpened: (sid) => this.smux?.closeStream(sid),
          data: (sid, data) => this.handlers.data(sid, data),
          streamClosed: (sid) => this.handlers.remoteClosed(sid),
          error: (err) => this.fail(err),
        },
        this.opts.now,
      );
    }
    this.handlers.ready(this.info);
  }

  private onOutput(payload: Buffer): boolean {
    if (!this.info) return false; // never before HandshakeComplete
    if (this.smux) {
      this.smux.receive(payload);
      this.flushOutput();
      return true;
    }
    if (this.basicConn !== undefined) {
      this.handlers.data(this.basicConn, payload);
      return true;
    }
    // A finished connection's output: acknowledged (so never resent) and dropped.
    if (this.basicEverAttached) {
      this.gate.discard(payload.length, this.now());
      return true;
    }
    // Before the first connection: the destination dialled at session start is the first
    // connection's, so hold its output for it (SPEC 10.5), within a bound.
    if (this.earlyBytes + payload.length > (this.opts.maxEarlyOutputBytes ?? DEFAULT_MAX_EARLY_OUTPUT))
      return false;
    this.early.push(Buffer.from(payload));
    this.earlyBytes += payload.length;
    return true;
  }

  /** The transport came back after a drop (basic mode's gate waits longer then). */
  reconnected(now: number): void {
    this.lastNow = now;
    this.gate.reconnected(this.now());
  }

  /** Opens a connection (an smux stream in mux mode) and returns its id. */
  openConnection(): number {
    if (!this.ready) throw new ProtocolError('CHANNEL_CLOSED', 'port session is not ready');
    if (this.smux) {
      const sid = this.smux.openStream();
      this.flushOutput();
      return sid;
    }
    if (this.basicConn !== undefined) {
      throw new ProtocolError('CHANNEL_CLOSED', 'basic mode carries one connection at a time');
    }
    if (this.gate.isDraining) {
      throw new ProtocolError('CHANNEL_CLOSED', "basic mode: the previous connection's output is draining");
    }
    const id = this.nextBasicConn++;
    this.basicConn = id;
    this.basicEverAttached = true;
    const early = this.early;
    this.early = [];
    this.earlyBytes = 0;
    // Delivered after the caller has registered the id.
    if (early.length > 0)
      queueMicrotask(() => {
        for (const b of early) if (this.basicConn === id && !this.dead) this.handlers.data(id, b);
      });
    return id;
  }

  write(connId: number, data: Buffer): void {
    if (this.dead || data.length === 0) return;
    if (this.smux) {
      if (!this.smux.hasStream(connId)) return;
      this.smux.write(connId, data);
      this.flushOutput();
      return;
    }
    if (connId !== this.basicConn) return;
    for (let off = 0; off < data.length; off += this.maxPayload) {
      this.handlers.sendStream(PayloadType.Output, data.subarray(off, off + this.maxPayload));
    }
  }

  /** The local side closed: smux FIN in mux mode, DisconnectToPort in basic mode (SPEC 10.7). */
  closeConnection(connId: number): void {
    if (this.dead) return;
    if (this.smux) {
      this.smux.closeStream(connId);
      this.flushOutput();
      return;
    }
    if (connId !== this.basicConn) return;
    this.basicConn = undefined;
    const seq = this.handlers.sendStream(PayloadType.Flag, encodeFlag(PayloadFlag.DisconnectToPort));
    this.gate.disconnected(seq ?? -1, this.now());
  }

  /** In-band TerminateSession flag (only when `sessionInfo.terminateFlag`). */
  terminate(): void {
    if (this.dead) return;
    this.flushOutput(true);
    this.handlers.sendStream(PayloadType.Flag, encodeFlag(PayloadFlag.TerminateSession));
    this.close();
  }

  /** Drives smux keepalive (only on for old agents). */
  tick(now: number): void {
    this.lastNow = now;
    if (this.dead) return;
    if (this.smux) {
      this.smux.tick(now);
      this.flushOutput();
      return;
    }
    this.pollGate();
  }

  /** Basic mode: opens the slot once the finished connection's output has drained (see basic-gate.ts). */
  pollGate(): void {
    if (this.dead || this.smux || !this.gate.isDraining) return;
    const opened = this.gate.poll(this.now(), {
      isAcknowledged: (seq) => seq < 0 || (this.handlers.isAcknowledged?.(seq) ?? true),
      inboundGap: () => this.handlers.inboundGap?.() ?? false,
    });
    if (opened) this.handlers.slotFree?.();
  }

  close(): void {
    this.dead = true;
    this.smux?.close();
    this.pending = [];
    this.pendingBytes = 0;
    this.early = [];
    this.earlyBytes = 0;
  }

  private queueOutput(bytes: Buffer): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
  }

  /** smux output is one byte stream; pack it into Output payloads of at most maxPayload bytes. */
  private flushOutput(now = false): void {
    if (this.pendingBytes === 0) return;
    // A full message's worth goes at once: waiting would only delay bulk data.
    if (!now && this.opts.coalesce && this.pendingBytes < this.maxPayload) {
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        this.opts.coalesce(this.scheduledFlush);
      }
      return;
    }
    const chunks = this.pending;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
    for (let off = 0; off < total; off += this.maxPayload) {
      this.handlers.sendStream(PayloadType.Output, all.subarray(off, off + this.maxPayload));
    }
  }

  private fail(err: ProtocolError): void {
    if (this.dead) return;
    this.close();
    this.handlers.failed(err);
  }
}
