/**
 * The agent's destinations (SPEC 10.3.3 agent steps 2 and 4, 10.4, 10.5): dialling `host:portNumber`
 * the way the agent does (each resolved address in order, first success wins, first failure reported),
 * name resolution, and the TCP sockets it then holds, with the back-pressure that stops it taking
 * Output while they are backed up (SPEC 7.7).
 *
 * Resolution stands in for the VPC's DNS: a simulated endpoint's name (e.g. an RDS host) goes through
 * the simulator's own table (`resolveDestination`); any other name must be loopback, since the
 * simulator never dials anything else. A name that is neither fails like a refused connection.
 */

import net from 'node:net';
import { writeBatched } from '../../shared/batched-write.js';
import { connect } from '../net.js';
import type { AgentContext, DestinationResolver } from './options.js';

/** Only loopback destinations are ever dialled; anything else fails like a refused connection. */
function loopbackCandidates(host: string | undefined): string[] {
  const h = (host ?? '').trim().replace(/^\[(.*)\]$/, '$1');
  if (h === '' || h.toLowerCase() === 'localhost') return ['127.0.0.1', '::1'];
  if (net.isIPv4(h)) return h.startsWith('127.') ? [h] : [];
  if (net.isIPv6(h)) {
    const lower = h.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return [h];
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped && net.isIPv4(mapped[1]) && mapped[1].startsWith('127.') ? [h] : [];
  }
  return [];
}

function refused(host: string | undefined, port: number): Error {
  const err = new Error(`dial tcp ${host || 'localhost'}:${port}: connect: connection refused`);
  (err as NodeJS.ErrnoException).code = 'ECONNREFUSED';
  return err;
}

/** Each resolved address in order, first success wins, first failure reported (SPEC 10.3.3). */
export async function dialDestination(
  host: string | undefined,
  portText: string,
  resolve?: DestinationResolver,
): Promise<net.Socket> {
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port number ${portText}`);
  // A simulated endpoint (e.g. an RDS name) resolves through the simulator's table, as if by VPC DNS.
  const mapped = host ? resolve?.(host.trim(), port) : undefined;
  if (mapped) return await connect(mapped.port, mapped.host);
  const candidates = loopbackCandidates(host);
  if (candidates.length === 0) throw refused(host, port);
  let first: unknown;
  for (const addr of candidates) {
    try {
      return await connect(port, addr);
    } catch (err) {
      first ??= err;
    }
  }
  throw first;
}

/**
 * Every destination socket of one agent, mux streams and the basic connection alike. Reading is
 * switched for all of them at once (the data channel decides, see OutputPump), and Output is refused
 * while more than `maxBuffer` bytes wait for them.
 */
export class Destinations {
  private readonly sockets = new Set<net.Socket>();
  /** Sockets whose own stream is backed up (its reader blocked in Write), whatever `reading` says. */
  private readonly held = new WeakSet<net.Socket>();
  private reading = true;
  /** Output refused for back-pressure; the destinations' 'drain' lifts it. */
  private inputBlocked = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly maxBuffer: number,
    /** Bytes held for destinations that are still being dialled. */
    private readonly pendingBytes: () => number,
    /** Called once the back-pressure lifts: the data channel retries what it refused. */
    private readonly onUnblock: () => void,
  ) {}

  /** Dials the session's destination (the document's host and portNumber). */
  dial(): Promise<net.Socket> {
    const { properties, resolveDestination } = this.ctx.opts;
    return dialDestination(properties.host, properties.portNumber, resolveDestination);
  }

  track(sock: net.Socket, onData: (chunk: Buffer) => void, onGone: () => void): void {
    this.sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => {
      if (this.ctx.isEnding()) return;
      this.ctx.counters.bytesFromDestination += chunk.length;
      onData(chunk);
    });
    let gone = false;
    const goneOnce = () => {
      if (gone) return;
      gone = true;
      onGone();
    };
    sock.on('end', goneOnce);
    sock.on('error', (err) => {
      this.ctx.log.debug({ err: err.message }, 'destination socket error');
      goneOnce();
    });
    sock.on('close', () => {
      this.sockets.delete(sock);
      goneOnce();
      this.checkUnblock();
    });
    sock.on('drain', () => this.checkUnblock());
    if (!this.reading) sock.pause();
  }

  /** Full close, like Go's Conn.Close, but only after what was written has been flushed. */
  close(sock: net.Socket): void {
    if (sock.destroyed) return;
    sock.pause();
    sock.end(() => sock.destroy());
  }

  write(sock: net.Socket, data: Buffer): void {
    this.ctx.counters.bytesToDestination += data.length;
    writeBatched(sock, data);
  }

  private buffered(): number {
    let n = this.pendingBytes();
    for (const s of this.sockets) n += s.writableLength;
    return n;
  }

  /** Back-pressure: refuse Output (unacked, the client resends) while destinations are backed up. */
  inputRefused(): boolean {
    if (this.buffered() > this.maxBuffer) {
      this.inputBlocked = true;
      return true;
    }
    return false;
  }

  checkUnblock(): void {
    if (!this.inputBlocked || this.buffered() > this.maxBuffer) return;
    this.inputBlocked = false;
    this.onUnblock();
  }

  /** Destinations are read only while the channel can take more (SPEC 7.7, 10.3.3). */
  setReading(read: boolean): void {
    if (read === this.reading) return;
    this.reading = read;
    for (const s of this.sockets) {
      if (read && !this.held.has(s)) s.resume();
      else s.pause();
    }
  }

  /** One socket's reader waits for its stream (an smux Write that has not returned yet). */
  hold(sock: net.Socket, held: boolean): void {
    if (held === this.held.has(sock)) return;
    if (held) {
      this.held.add(sock);
      sock.pause();
    } else {
      this.held.delete(sock);
      if (this.reading && !sock.destroyed) sock.resume();
    }
  }

  /** The session's end: every socket dropped at once. */
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
