/**
 * Per-connection measurement for the soak: SHA-256 of every byte both ways, what was lost or
 * corrupted, and the longest stall (time without progress while bytes were outstanding).
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { pseudoRandomBytes } from '../helpers/net.js';

export interface ConnResult {
  name: string;
  sent: number;
  received: number;
  expected: number;
  /** Bytes that never arrived (the connection ended or failed early). */
  lost: number;
  /** The bytes arrived but differ from what was sent. */
  corrupted: boolean;
  longestStallMs: number;
  durationMs: number;
  error?: string;
}

const CHUNK = 64 * 1024;

/** SOAK_TRACE=1 prints every stall of 300 ms or more with a timestamp, to line up with kills. */
export const TRACE = process.env.SOAK_TRACE === '1';
export function traceLine(what: string): void {
  console.log(`${new Date().toISOString().slice(11, 23)} ${what}`);
}

/** Tracks the longest gap between progress events while something is outstanding. */
export class StallMeter {
  private last = Date.now();
  longest = 0;
  constructor(private readonly name = '') {}
  progress(outstanding: boolean): void {
    const now = Date.now();
    if (outstanding) {
      this.longest = Math.max(this.longest, now - this.last);
      if (TRACE && now - this.last >= 300) traceLine(`stall ${this.name} ${now - this.last} ms ended`);
    }
    this.last = now;
  }
  /** Call when something becomes outstanding after an idle period, so idle time is not a stall. */
  restart(): void {
    this.last = Date.now();
  }
}

function chunkOf(seed: number, i: number, size: number): Buffer {
  return pseudoRandomBytes(size, (seed * 7919 + i) >>> 0);
}

/** Sends `bytes` to an echo destination through `port` and checks every byte that comes back. */
export function echoTransfer(name: string, port: number, bytes: number, seed: number): Promise<ConnResult> {
  const started = Date.now();
  const upHash = createHash('sha256');
  const downHash = createHash('sha256');
  const stall = new StallMeter(name);
  let sent = 0;
  let received = 0;
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.setNoDelay(true);
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      sock.destroy();
      const up = upHash.digest('hex');
      const down = downHash.digest('hex');
      resolve({
        name,
        sent,
        received,
        expected: bytes,
        lost: Math.max(0, bytes - received),
        corrupted: received === bytes && up !== down,
        longestStallMs: stall.longest,
        durationMs: Date.now() - started,
        ...(error && { error }),
      });
    };
    let i = 0;
    const pump = () => {
      while (sent < bytes) {
        const size = Math.min(CHUNK, bytes - sent);
        const c = chunkOf(seed, i++, size);
        upHash.update(c);
        sent += size;
        if (!sock.write(c)) {
          sock.once('drain', pump);
          return;
        }
      }
    };
    sock.once('connect', () => {
      stall.restart();
      pump();
    });
    sock.on('data', (d: Buffer) => {
      received += d.length;
      downHash.update(d);
      stall.progress(true);
      if (received >= bytes)
        finish(received > bytes ? `received ${received - bytes} extra bytes` : undefined);
    });
    sock.on('error', (e) => finish(e.message));
    sock.on('close', () => finish(received < bytes ? 'closed early' : undefined));
  });
}

/** Reads a download of `bytes` (pseudoRandomBytes(bytes, seed)) and checks it. */
export function downloadTransfer(
  name: string,
  port: number,
  bytes: number,
  seed: number,
  opts: { onSocket?: (s: net.Socket) => void } = {},
): Promise<ConnResult> {
  const started = Date.now();
  const expectedSha = createHash('sha256').update(pseudoRandomBytes(bytes, seed)).digest('hex');
  const hash = createHash('sha256');
  const stall = new StallMeter(name);
  let received = 0;
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    opts.onSocket?.(sock);
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      sock.destroy();
      resolve({
        name,
        sent: 0,
        received,
        expected: bytes,
        lost: Math.max(0, bytes - received),
        corrupted: received === bytes && hash.digest('hex') !== expectedSha,
        longestStallMs: stall.longest,
        durationMs: Date.now() - started,
        ...(error && { error }),
      });
    };
    sock.once('connect', () => stall.restart());
    sock.on('data', (d: Buffer) => {
      received += d.length;
      hash.update(d);
      stall.progress(true);
    });
    sock.on('end', () => finish(received < bytes ? 'ended early' : undefined));
    sock.on('error', (e) => finish(e.message));
    sock.on('close', () => finish(received < bytes ? 'closed early' : undefined));
  });
}
