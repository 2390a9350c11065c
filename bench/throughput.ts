/**
 * Bulk throughput over 1 or N connections (N share one session through a tunnel), with 64 KiB writes:
 *   upload    bytes into the sink, timed until the sink has counted all of them
 *   download  a source sends the bytes, timed until the client has read all of them
 *   both      upload and download at once on each connection; the figure is their sum
 */
import type net from 'node:net';
import { connectTo } from './net.js';
import { type BenchServer, header, writeBytes } from './server.js';
import { MB, withTimeout } from './util.js';

export type Direction = 'upload' | 'download' | 'both';

export interface TransferResult {
  ms: number;
  /** Bytes moved, both directions counted. */
  bytes: number;
  mbps: number;
}

function readN(sock: net.Socket, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    if (n === 0) {
      resolve();
      return;
    }
    sock.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= n) resolve();
    });
    sock.once('close', () => {
      if (got < n) reject(new Error(`connection closed after ${got} of ${n} bytes`));
    });
  });
}

export async function transfer(
  server: BenchServer,
  port: number,
  dir: Direction,
  totalBytes: number,
  conns: number,
  timeoutMs: number,
): Promise<TransferResult> {
  const per = Math.floor(totalBytes / conns);
  const total = per * conns;
  const socks = await Promise.all(Array.from({ length: conns }, () => connectTo(port)));
  try {
    const sunkBefore = server.sunk();
    const t0 = performance.now();
    const work: Promise<void>[] = [];
    for (const sock of socks) {
      if (dir === 'upload') {
        sock.write(header('S'));
        work.push(writeBytes(sock, per).then(() => void sock.end()));
        sock.resume();
      } else if (dir === 'download') {
        work.push(readN(sock, per));
        sock.write(header('D', per));
      } else {
        work.push(readN(sock, per));
        sock.write(header('B', per));
        work.push(writeBytes(sock, per));
      }
    }
    if (dir !== 'download') work.push(server.waitSunk(sunkBefore + total, timeoutMs));
    await withTimeout(
      Promise.all(work),
      timeoutMs,
      `${dir} of ${total} bytes over ${conns} connection(s)`,
    ).catch((e: Error) => {
      throw new Error(`${e.message} (sink got ${server.sunk() - sunkBefore})`);
    });
    const ms = performance.now() - t0;
    const bytes = dir === 'both' ? 2 * total : total;
    return { ms, bytes, mbps: bytes / MB / (ms / 1000) };
  } finally {
    for (const s of socks) s.destroy();
  }
}

/**
 * Upload into a sink that reads at most `rate` bytes/s: the tunnel must hold back (the agent refuses
 * Output while its destination buffers are full) rather than overrun it. Completes or times out.
 */
export async function slowSinkUpload(
  server: BenchServer,
  port: number,
  bytes: number,
  rate: number,
  timeoutMs: number,
): Promise<TransferResult> {
  const sock = await connectTo(port);
  try {
    const sunkBefore = server.sunk();
    const t0 = performance.now();
    sock.write(header('W', rate));
    sock.resume();
    await withTimeout(
      Promise.all([writeBytes(sock, bytes), server.waitSunk(sunkBefore + bytes, timeoutMs)]),
      timeoutMs,
      `upload of ${bytes} bytes into a ${rate / MB} MB/s sink`,
    );
    const ms = performance.now() - t0;
    return { ms, bytes, mbps: bytes / MB / (ms / 1000) };
  } finally {
    sock.destroy();
  }
}
