/**
 * One data-channel WebSocket: signed upgrade, the OpenDataChannel text frame, binary frames both ways,
 * pings and dead-connection detection (SPEC 3). It knows nothing of sequence numbers: a dropped socket
 * is simply reported, and the session decides whether to resume.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import { buildOpenDataChannel } from '../protocol/payloads.js';
import { sendBatched, zeroMask } from '../shared/batched-write.js';
import { TunnelError } from './errors.js';

export const PING_INTERVAL_MS = 30_000;
const OPEN = 1; // WebSocket.OPEN
export const DEAD_AFTER_MS = 60_000;
const OPEN_TIMEOUT_MS = 15_000;

export interface TransportOptions {
  streamUrl: string;
  token: string;
  clientId: string;
  clientVersion: string;
  /** Signed upgrade headers (SPEC 3.2). */
  headers: Record<string, string>;
  /** A socket already connected to the stream URL's host (preconnect.ts), used for the upgrade. */
  socket?: Socket;
  pingIntervalMs?: number;
  deadAfterMs?: number;
  onFrame: (frame: Buffer) => void;
  /** Called once when the socket is gone for any reason other than close(). */
  onDrop: (reason: string) => void;
}

let wsModule: Promise<typeof import('ws')> | undefined;
const loadWs = () => {
  wsModule ??= import('ws');
  return wsModule;
};

export class Transport {
  private ws: WebSocket;
  private pingTimer: NodeJS.Timeout | undefined;
  private lastSeen = Date.now();
  private closedByUs = false;
  private dropped = false;

  private constructor(
    ws: WebSocket,
    private readonly opts: TransportOptions,
  ) {
    this.ws = ws;
  }

  /**
   * Loads the WebSocket library ahead of use: called when a session starts opening, so loading it
   * overlaps StartSession's round trip instead of following it.
   */
  static preload(): Promise<unknown> {
    return loadWs();
  }

  /** Opens the socket and sends OpenDataChannel; resolves once frames may flow. */
  static async connect(opts: TransportOptions): Promise<Transport> {
    // Loaded on first use: an idle daemon whose tunnels nobody uses never needs it.
    const { default: WebSocketImpl } = await loadWs();
    return new Promise((resolve, reject) => {
      const ws = new WebSocketImpl(opts.streamUrl, {
        perMessageDeflate: false,
        generateMask: zeroMask,
        headers: opts.headers,
        handshakeTimeout: OPEN_TIMEOUT_MS,
        maxPayload: 16 * 1024 * 1024,
        ...(opts.socket && { createConnection: () => opts.socket as Socket }),
      });
      const t = new Transport(ws, opts);
      const onOpenError = (err: Error) => {
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.terminate();
        reject(
          new TunnelError('WEBSOCKET_FAILED', `data channel WebSocket failed: ${err.message}`, undefined, {
            cause: err,
          }),
        );
      };
      ws.once('error', onOpenError);
      ws.once('unexpected-response', (_req, res) => {
        onOpenError(new Error(`upgrade refused with HTTP ${res.statusCode}`));
      });
      ws.once('open', () => {
        ws.off('error', onOpenError);
        ws.send(
          buildOpenDataChannel({
            MessageSchemaVersion: '1.0',
            RequestId: randomUUID(),
            TokenValue: opts.token,
            ClientId: opts.clientId,
            ClientVersion: opts.clientVersion,
          }),
        );
        t.start();
        resolve(t);
      });
    });
  }

  private start(): void {
    const ws = this.ws;
    // Frames of either kind carry client messages (SPEC 3.4).
    ws.on('message', (data: Buffer) => {
      this.lastSeen = Date.now();
      this.opts.onFrame(data);
    });
    ws.on('pong', () => {
      this.lastSeen = Date.now();
    });
    ws.on('ping', () => {
      this.lastSeen = Date.now();
    });
    ws.on('error', () => {}); // 'close' follows and reports it
    ws.on('close', (code, reason) =>
      this.drop(`WebSocket closed (${code}${reason.length ? ` ${reason}` : ''})`),
    );
    const interval = this.opts.pingIntervalMs ?? PING_INTERVAL_MS;
    const deadAfter = this.opts.deadAfterMs ?? DEAD_AFTER_MS;
    ws.ping('keepalive');
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastSeen > deadAfter) {
        this.drop(`no frame or pong for ${Math.round((Date.now() - this.lastSeen) / 1000)} s`);
        return;
      }
      if (ws.readyState === OPEN) ws.ping('keepalive');
    }, interval);
    this.pingTimer.unref();
  }

  get isOpen(): boolean {
    return !this.dropped && !this.closedByUs && this.ws.readyState === OPEN;
  }

  /** Bytes queued in the socket; the session uses it to avoid buffering without bound. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(frame: Buffer): void {
    sendBatched(this.ws, frame);
  }

  /**
   * Pings and resolves true if a pong comes back within `timeoutMs`. TCP keeps order, so once the pong
   * is here everything the peer sent before it has been read and handed on.
   */
  probe(timeoutMs: number): Promise<boolean> {
    if (!this.isOpen) return Promise.resolve(false);
    return new Promise((resolve) => {
      const ws = this.ws;
      const done = (alive: boolean) => {
        clearTimeout(timer);
        ws.off('pong', onPong);
        ws.off('close', onClose);
        resolve(alive && this.isOpen);
      };
      const onPong = () => done(true);
      const onClose = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      ws.on('pong', onPong);
      ws.once('close', onClose);
      try {
        ws.ping('probe');
      } catch {
        done(false);
      }
    });
  }

  /** Declares the socket dead (e.g. after the laptop slept) without waiting for TCP to notice. */
  kill(reason: string): void {
    this.drop(reason);
  }

  private drop(reason: string): void {
    if (this.dropped || this.closedByUs) return;
    this.dropped = true;
    this.stopTimers();
    this.ws.terminate();
    this.opts.onDrop(reason);
  }

  private stopTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  close(): void {
    if (this.closedByUs) return;
    this.closedByUs = true;
    this.stopTimers();
    if (this.ws.readyState === OPEN) this.ws.close(1000);
    else this.ws.terminate();
    // Upstream just drops TCP; a close frame is harmless, but don't linger if the peer never answers.
    setTimeout(() => this.ws.terminate(), 1000).unref();
  }
}
