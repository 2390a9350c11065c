// Client-side socket helpers: connect with noDelay, and "connect, send 64 bytes, time the first byte back".
import type net from 'node:net';
import { connect } from '../src/sim/net.js';
import { header } from './server.js';
import { withTimeout } from './util.js';

export const PING = Buffer.alloc(64, 0x61);

export async function connectTo(port: number, timeoutMs = 30_000): Promise<net.Socket> {
  // Half-open allowed: in "both" the download may end before our upload has been written.
  const sock = await withTimeout(
    connect(port, '127.0.0.1', { noDelay: true, allowHalfOpen: true }),
    timeoutMs,
    `connect to 127.0.0.1:${port}`,
  );
  sock.on('error', () => {}); // callers see failures as 'close' or timeouts
  return sock;
}

/** ms from before connect() until the first echoed byte of a 64-byte message (echo mode). */
export async function timeToFirstByte(port: number, timeoutMs = 30_000): Promise<number> {
  const t0 = performance.now();
  const sock = await connectTo(port, timeoutMs);
  try {
    const got = new Promise<number>((resolve, reject) => {
      sock.once('data', () => resolve(performance.now()));
      sock.once('close', () => reject(new Error('closed before the first byte')));
    });
    sock.write(Buffer.concat([header('E'), PING]));
    const t1 = await withTimeout(got, timeoutMs - (performance.now() - t0), 'first byte');
    return t1 - t0;
  } finally {
    sock.destroy();
  }
}
