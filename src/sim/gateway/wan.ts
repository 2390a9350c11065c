/**
 * A model of the client's wide-area link to AWS: the network between a client (daemon, plugin) and
 * the service's public endpoint, which the gateway and the SSM API are behind. The agent reaches the
 * gateway inside AWS, so its side is never shaped.
 *
 * One link per direction, shared by every client socket (all clients of a simulator run on one
 * machine and so share its uplink and downlink): a frame first waits for the link to be free, is
 * serialised at the link's bandwidth, then travels rtt/2 plus a random jitter in [0, jitterMs). The
 * link is a FIFO: a frame never arrives before one sent ahead of it, so jitter alone never reorders
 * (ask the fault injector for reordering). Its queue is unbounded on purpose: the real path is TCP,
 * which holds data back rather than dropping it. HTTP calls (the SSM API) and WebSocket upgrades pay
 * one rtt each (delayRtt), and a fresh TCP connection one more before its first bytes are read (the
 * handshake, see wanFront), so a client that reuses or opens connections ahead of time gains what it
 * would on a real link. TLS is not modelled (the simulator speaks plain HTTP): a real endpoint's fresh
 * connection costs one or two round trips more than here.
 */

import type http from 'node:http';
import net from 'node:net';
import { mulberry32 } from '../random.js';

/**
 * Node's timers fire on whole milliseconds of the event loop's clock, 0.5-1 ms after what they were
 * asked for on average; a link that waits for them adds that to every hop (a lazy open crosses eight),
 * which is the simulator's cost, not the network's. Running what is due within half a millisecond
 * rounds each arrival to the nearest tick instead: on time on average, never more than 0.5 ms early.
 */
export const EARLY_MS = 0.5;

/** Runs `fn` at `due` (a performance.now() time), to the nearest millisecond; at once if it is due. */
export function runAt(due: number, fn: () => void, unref = false): void {
  const left = due - performance.now();
  if (left <= EARLY_MS) {
    fn();
    return;
  }
  const timer = setTimeout(() => runAt(due, fn, unref), left);
  if (unref) timer.unref();
}

/** What SimulatorOptions.wan and POST /_sim/wan take; absent fields are 0 (0 bandwidth: unlimited). */
export interface WanOptions {
  rttMs?: number;
  jitterMs?: number;
  /** Megabits per second; up = client to AWS, down = AWS to client. */
  bandwidthMbps?: { up?: number; down?: number };
}

export interface WanSettings {
  rttMs: number;
  jitterMs: number;
  bandwidthMbps: { up: number; down: number };
}

export interface WanLinkStats {
  frames: number;
  bytes: number;
  /** Frames in flight or waiting for the link right now. */
  inFlight: number;
  /** Largest number ever in flight at once. */
  maxInFlight: number;
  /** Sum and largest of (delivered - due) in ms over delivered frames: the model's own timing error. */
  lateMsTotal: number;
  lateMsMax: number;
}

export class WanSpecError extends Error {
  readonly code = 'BAD_WAN_SPEC';
  readonly fix = 'use { rttMs, jitterMs, bandwidthMbps: { up, down } } with numbers >= 0 (0 = none)';
  constructor(message: string) {
    super(message);
    this.name = 'WanSpecError';
  }
}

const MAX_DELAY_MS = 60_000;
const MAX_MBPS = 100_000;
const NO_WAN: WanSettings = Object.freeze({
  rttMs: 0,
  jitterMs: 0,
  bandwidthMbps: Object.freeze({ up: 0, down: 0 }),
}) as WanSettings;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown, where: string, max: number): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max) {
    throw new WanSpecError(`${where} must be a number from 0 to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Checks a WAN spec from a user (options, control API); throws WanSpecError with the field's name. */
export function validateWan(v: unknown): WanSettings {
  if (v === undefined || v === null) return NO_WAN;
  if (!isObject(v)) throw new WanSpecError('wan must be an object');
  for (const k of Object.keys(v)) {
    if (!['rttMs', 'jitterMs', 'bandwidthMbps'].includes(k))
      throw new WanSpecError(`wan.${k} is not a WAN option`);
  }
  const bw = v.bandwidthMbps;
  if (bw !== undefined && !isObject(bw)) throw new WanSpecError('wan.bandwidthMbps must be { up, down }');
  for (const k of Object.keys(bw ?? {})) {
    if (k !== 'up' && k !== 'down') throw new WanSpecError(`wan.bandwidthMbps.${k} is not up or down`);
  }
  return {
    rttMs: num(v.rttMs, 'wan.rttMs', MAX_DELAY_MS),
    jitterMs: num(v.jitterMs, 'wan.jitterMs', MAX_DELAY_MS),
    bandwidthMbps: {
      up: num(bw?.up, 'wan.bandwidthMbps.up', MAX_MBPS),
      down: num(bw?.down, 'wan.bandwidthMbps.down', MAX_MBPS),
    },
  };
}

/** What one direction reads per frame; Wan.set updates it in place (no allocation on the hot path). */
export interface LinkParams {
  oneWayMs: number;
  jitterMs: number;
  mbps: number;
}

interface InFlight {
  at: number;
  deliver: () => void;
}

/** One direction of the link. */
export class WanLink {
  private readonly queue: InFlight[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When the link has finished serialising everything handed to it so far. */
  private busyUntil = 0;
  /** When the last frame handed to it arrives; no later frame may arrive sooner. */
  private lastAt = 0;
  private disposed = false;
  readonly stats: WanLinkStats = {
    frames: 0,
    bytes: 0,
    inFlight: 0,
    maxInFlight: 0,
    lateMsTotal: 0,
    lateMsMax: 0,
  };

  constructor(
    private readonly params: LinkParams,
    private readonly rng: () => number,
  ) {}

  /** Carries `bytes` across the link; `deliver` runs when they arrive (synchronously if there is no WAN). */
  send(bytes: number, deliver: () => void): void {
    if (this.disposed) return;
    this.stats.frames++;
    this.stats.bytes += bytes;
    const { oneWayMs, jitterMs, mbps } = this.params;
    const idle = this.length === 0;
    if (idle && oneWayMs === 0 && jitterMs === 0 && mbps === 0) {
      deliver();
      return;
    }
    const now = performance.now();
    const start = Math.max(now, this.busyUntil);
    const done = mbps > 0 ? start + (bytes * 8) / (mbps * 1000) : start;
    this.busyUntil = done;
    const at = Math.max(done + oneWayMs + (jitterMs > 0 ? this.rng() * jitterMs : 0), this.lastAt);
    this.lastAt = at;
    this.queue.push({ at, deliver });
    this.stats.inFlight = this.length;
    if (this.stats.inFlight > this.stats.maxInFlight) this.stats.maxInFlight = this.stats.inFlight;
    if (idle) this.arm(at - now);
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.due(), Math.max(0, ms));
  }

  private due(): void {
    this.timer = undefined;
    const now = performance.now() + EARLY_MS;
    while (this.head < this.queue.length && this.queue[this.head].at <= now) {
      const item = this.queue[this.head];
      this.queue[this.head++] = undefined as unknown as InFlight;
      const late = now - EARLY_MS - item.at;
      this.stats.lateMsTotal += late;
      if (late > this.stats.lateMsMax) this.stats.lateMsMax = late;
      try {
        item.deliver();
      } catch {
        // A delivery is a socket send; one that throws must not stall the frames behind it.
      }
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.stats.inFlight = this.length;
    if (this.length > 0 && !this.disposed) this.arm(this.queue[this.head].at - performance.now());
  }

  /** Drops everything in flight (the simulator is closing). */
  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.head = 0;
    this.stats.inFlight = 0;
  }
}

/** Both directions and the settings they read; `set` changes them for every frame sent from then on. */
export class Wan {
  private current: WanSettings = NO_WAN;
  /** Client to AWS. */
  readonly up: WanLink;
  /** AWS to client. */
  readonly down: WanLink;

  private readonly upParams: LinkParams = { oneWayMs: 0, jitterMs: 0, mbps: 0 };
  private readonly downParams: LinkParams = { oneWayMs: 0, jitterMs: 0, mbps: 0 };

  constructor(settings: unknown, seed = 1) {
    this.up = new WanLink(this.upParams, mulberry32(seed ^ 0x5a17));
    this.down = new WanLink(this.downParams, mulberry32(seed ^ 0xd0e1));
    this.set(settings);
  }

  get settings(): WanSettings {
    return structuredClone(this.current);
  }

  /** Takes unchecked input (the control API's body): validated here. */
  set(settings: unknown): WanSettings {
    const s = validateWan(settings);
    this.current = s;
    Object.assign(this.upParams, { oneWayMs: s.rttMs / 2, jitterMs: s.jitterMs, mbps: s.bandwidthMbps.up });
    Object.assign(this.downParams, {
      oneWayMs: s.rttMs / 2,
      jitterMs: s.jitterMs,
      mbps: s.bandwidthMbps.down,
    });
    return this.settings;
  }

  get rttMs(): number {
    return this.current.rttMs;
  }

  /** One round trip (a request and its answer), for HTTP calls and upgrades; immediate without a WAN. */
  delayRtt(): Promise<void> {
    const ms = this.current.rttMs;
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => runAt(performance.now() + ms, resolve));
  }

  stats(): { settings: WanSettings; up: WanLinkStats; down: WanLinkStats } {
    return { settings: this.settings, up: { ...this.up.stats }, down: { ...this.down.stats } };
  }

  dispose(): void {
    this.up.dispose();
    this.down.dispose();
  }
}

/**
 * The public listener in front of `server` (which itself never listens): each accepted connection
 * is handed to it only after the WAN's round trip (the TCP handshake a real client waits for before
 * its request can leave), at once without a WAN. `closeAll` destroys every connection, handed over
 * or not, as http.Server.closeAllConnections would.
 */
export function wanFront(server: http.Server, wan: Wan): { front: net.Server; closeAll(): void } {
  const sockets = new Set<net.Socket>();
  const handOver = (sock: net.Socket) => {
    if (sock.destroyed) return;
    server.emit('connection', sock);
    sock.resume();
  };
  const front = net.createServer({ pauseOnConnect: true }, (sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    const ms = wan.rttMs;
    if (ms <= 0) handOver(sock);
    else runAt(performance.now() + ms, () => handOver(sock), true);
  });
  return {
    front,
    closeAll() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
}
