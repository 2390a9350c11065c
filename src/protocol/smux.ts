/**
 * xtaci/smux protocol version 1, as the SSM agent and session-manager-plugin speak it inside the
 * Output payloads of a mux port session (SPEC 10.3). Pure and I/O-free: bytes come in through
 * `receive()`, leave through `handlers.output`, and time is whatever the caller passes to `tick()`.
 *
 * Frame: 8-byte little-endian header (version, cmd, data length uint16, stream id uint32), then data.
 */
import { ProtocolError } from './errors.js';

export const SMUX_VERSION = 1;
export const SMUX_HEADER_SIZE = 8;
export const SMUX_MAX_FRAME_SIZE = 32768;
export const SmuxCmd = { SYN: 0, FIN: 1, PSH: 2, NOP: 3 } as const;

const MAX_DATA_LENGTH = 0xffff;
const MAX_STREAM_ID = 0xffffffff;
const DEFAULT_KEEPALIVE_INTERVAL_MS = 10_000;
const DEFAULT_KEEPALIVE_TIMEOUT_MS = 30_000;
/**
 * A PSH frame this small goes out as one buffer: copying under 1 KiB is cheaper than a second
 * output() call, which downstream may turn into a second 1024-byte-max data-channel message.
 */
const COALESCE_MAX_DATA = 1024 - SMUX_HEADER_SIZE;
/** Body bytes of the current frame that belong to no stream (control frames, unknown streams). */
const DISCARD = -1;

export interface SmuxOptions {
  /** client opens odd ids 3,5,7,...; server would open even ids 2,4,... (the agent never does) */
  role: 'client' | 'server';
  /** NOP every keepaliveIntervalMs; dead if no frame at all received within a keepaliveTimeoutMs check window */
  keepalive: boolean;
  /** data bytes per PSH frame when sending (default 32768, at most 65535) */
  maxFrameSize?: number;
  keepaliveIntervalMs?: number;
  keepaliveTimeoutMs?: number;
}

export interface SmuxHandlers {
  /**
   * Bytes for the underlying byte stream, in order. A large PSH frame comes as its header and then
   * its data, a subarray of the buffer given to write() (no copy): neither may be mutated later.
   */
  output(bytes: Buffer): void;
  /** Peer opened a stream (SYN for an unknown id). Duplicate SYN for a known id is ignored. */
  streamOpened(sid: number): void;
  /**
   * Data for an open stream, in order. A frame body may arrive in several calls when it spans
   * several receive() chunks; each call gets a subarray of the chunk passed to receive() (no copy).
   * PSH for an unknown stream id is read and discarded.
   */
  data(sid: number, data: Buffer): void;
  /** Peer sent FIN for an open stream; the stream is forgotten. FIN for an unknown id is ignored. */
  streamClosed(sid: number): void;
  /** The session failed (protocol error or keepalive timeout). Called once; the session is then closed. */
  error(err: ProtocolError): void;
}

/** Encodes one frame header (for tests and for the simulator). */
export function encodeSmuxHeader(cmd: number, length: number, sid: number): Buffer {
  const header = Buffer.allocUnsafe(SMUX_HEADER_SIZE);
  header[0] = SMUX_VERSION;
  header[1] = cmd;
  header.writeUInt16LE(length, 2);
  header.writeUInt32LE(sid, 4);
  return header;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The first deadline on the `deadline + k * period` grid strictly after `now` (missed ticks are dropped, like Go tickers). */
function nextDeadline(deadline: number, period: number, now: number): number {
  return deadline + period * (Math.floor((now - deadline) / period) + 1);
}

export class SmuxSession {
  /** The id last handed out; protected so tests can start near the end of the id space. */
  protected lastStreamId: number;

  private readonly handlers: SmuxHandlers;
  private readonly maxFrameSize: number;
  private readonly keepalive: boolean;
  private readonly keepaliveIntervalMs: number;
  private readonly keepaliveTimeoutMs: number;
  private readonly streams = new Set<number>();
  private closed = false;

  // Receive state machine: a header is being assembled while bodyRemaining is 0; otherwise the
  // next bodyRemaining bytes are the body of the current frame, owned by bodySid (or DISCARD).
  private readonly header = Buffer.alloc(SMUX_HEADER_SIZE);
  private headerFilled = 0;
  private bodyRemaining = 0;
  private bodySid = DISCARD;

  private frameSinceCheck = false;
  private nextPingAt: number;
  private nextCheckAt: number;

  constructor(opts: SmuxOptions, handlers: SmuxHandlers, now: number) {
    const maxFrameSize = opts.maxFrameSize ?? SMUX_MAX_FRAME_SIZE;
    if (!Number.isInteger(maxFrameSize) || maxFrameSize < 1 || maxFrameSize > MAX_DATA_LENGTH) {
      throw new RangeError(`smux maxFrameSize must be an integer in 1..${MAX_DATA_LENGTH}`);
    }
    this.handlers = handlers;
    this.maxFrameSize = maxFrameSize;
    // smux: the client's counter starts at 1 and the server's at 0, each advanced by 2 before use.
    this.lastStreamId = opts.role === 'client' ? 1 : 0;
    this.keepalive = opts.keepalive;
    this.keepaliveIntervalMs = opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS;
    this.keepaliveTimeoutMs = opts.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS;
    if (!(this.keepaliveIntervalMs > 0 && this.keepaliveTimeoutMs > 0)) {
      throw new RangeError('smux keepalive interval and timeout must be positive');
    }
    this.nextPingAt = now + this.keepaliveIntervalMs;
    this.nextCheckAt = now + this.keepaliveTimeoutMs;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  hasStream(sid: number): boolean {
    return this.streams.has(sid);
  }

  openStream(): number {
    if (this.closed) throw new ProtocolError('CHANNEL_CLOSED', 'smux session is closed');
    const sid = this.lastStreamId + 2;
    // Ids are never reused: past the end of the id space the session refuses new streams for good
    // (smux ErrGoAway) but existing streams carry on.
    if (sid > MAX_STREAM_ID) {
      throw new ProtocolError('SMUX_STREAM_IDS_EXHAUSTED', 'smux stream ids exhausted; start a new session');
    }
    this.lastStreamId = sid;
    this.streams.add(sid);
    this.handlers.output(encodeSmuxHeader(SmuxCmd.SYN, 0, sid));
    return sid;
  }

  /** Sends data on an open stream; a no-op for unknown or closed streams (the peer would discard it). */
  write(sid: number, data: Uint8Array): void {
    if (this.closed || !this.streams.has(sid)) return;
    const bytes = asBuffer(data);
    for (let offset = 0; offset < bytes.length; offset += this.maxFrameSize) {
      const piece = bytes.subarray(offset, offset + this.maxFrameSize);
      const header = encodeSmuxHeader(SmuxCmd.PSH, piece.length, sid);
      if (piece.length <= COALESCE_MAX_DATA) {
        this.handlers.output(Buffer.concat([header, piece], SMUX_HEADER_SIZE + piece.length));
      } else {
        this.handlers.output(header);
        this.handlers.output(piece);
      }
    }
  }

  closeStream(sid: number): void {
    if (this.closed || !this.streams.delete(sid)) return;
    this.handlers.output(encodeSmuxHeader(SmuxCmd.FIN, 0, sid));
  }

  receive(chunk: Uint8Array): void {
    const buf = asBuffer(chunk);
    let offset = 0;
    // Handlers may close the session or streams re-entrantly, so state is re-read every round.
    while (offset < buf.length && !this.closed) {
      if (this.bodyRemaining > 0) {
        const n = Math.min(this.bodyRemaining, buf.length - offset);
        const sid = this.bodySid;
        const piece = buf.subarray(offset, offset + n);
        offset += n;
        this.bodyRemaining -= n;
        if (sid !== DISCARD && this.streams.has(sid)) this.handlers.data(sid, piece);
      } else if (this.headerFilled === 0 && buf.length - offset >= SMUX_HEADER_SIZE) {
        // Fast path: the whole header lies in this chunk.
        const start = offset;
        offset += SMUX_HEADER_SIZE;
        this.onHeader(buf, start);
      } else {
        const n = Math.min(SMUX_HEADER_SIZE - this.headerFilled, buf.length - offset);
        buf.copy(this.header, this.headerFilled, offset, offset + n);
        offset += n;
        this.headerFilled += n;
        if (this.headerFilled === SMUX_HEADER_SIZE) {
          this.headerFilled = 0;
          this.onHeader(this.header, 0);
        }
      }
    }
  }

  tick(now: number): void {
    if (!this.keepalive || this.closed) return;
    if (now >= this.nextCheckAt) {
      this.nextCheckAt = nextDeadline(this.nextCheckAt, this.keepaliveTimeoutMs, now);
      if (!this.frameSinceCheck) {
        this.fail(
          new ProtocolError(
            'SMUX_KEEPALIVE_TIMEOUT',
            `no smux frame received for ${this.keepaliveTimeoutMs} ms; peer presumed dead`,
          ),
        );
        return;
      }
      this.frameSinceCheck = false;
    }
    if (now >= this.nextPingAt) {
      this.nextPingAt = nextDeadline(this.nextPingAt, this.keepaliveIntervalMs, now);
      this.handlers.output(encodeSmuxHeader(SmuxCmd.NOP, 0, 0));
    }
  }

  /** Local close. smux sends nothing on session close: the caller just drops the connection. */
  close(): void {
    this.closed = true;
    this.streams.clear();
  }

  private onHeader(b: Buffer, at: number): void {
    this.frameSinceCheck = true;
    const version = b[at];
    const cmd = b[at + 1];
    const length = b.readUInt16LE(at + 2);
    const sid = b.readUInt32LE(at + 4);
    if (version !== SMUX_VERSION) {
      this.fail(
        new ProtocolError('SMUX_PROTOCOL', `smux frame with version ${version}, expected ${SMUX_VERSION}`),
      );
      return;
    }
    // The body is skipped by its length whatever the command, so a stray body on a control frame
    // cannot desynchronise the stream. State is set before handlers run so a throwing handler
    // leaves the parser consistent.
    this.bodyRemaining = length;
    this.bodySid = DISCARD;
    switch (cmd) {
      case SmuxCmd.PSH:
        this.bodySid = sid;
        return;
      case SmuxCmd.NOP:
        return;
      case SmuxCmd.SYN:
        if (!this.streams.has(sid)) {
          this.streams.add(sid);
          this.handlers.streamOpened(sid);
        }
        return;
      case SmuxCmd.FIN:
        if (this.streams.delete(sid)) this.handlers.streamClosed(sid);
        return;
      default:
        // Includes UPD (4): a protocol-2 window update never belongs in a version-1 session.
        this.fail(new ProtocolError('SMUX_PROTOCOL', `unknown smux command ${cmd} (stream ${sid})`));
    }
  }

  /** Only reachable while open (receive() and tick() stop once closed), so error() fires once. */
  private fail(err: ProtocolError): void {
    this.close();
    this.handlers.error(err);
  }
}
