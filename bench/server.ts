/**
 * The destination every byte-level figure is measured against: one loopback TCP server whose first
 * byte on a connection picks what it does, so one tunnel (or one forwarded port) serves every test and
 * the direct baseline runs the very same server code.
 *
 *   'E'                echo every byte back
 *   'S'                sink: count what arrives (the upload figure is counted here, on the sink side)
 *   'D' + u64 BE n     source: send n bytes, then end
 *   'B' + u64 BE n     both: send n bytes while counting what arrives as a sink; end when the client does
 *   'W' + u32 BE rate  slow sink: read at most `rate` bytes per second (back-pressure test)
 */
import net from 'node:net';
import { withTimeout } from './util.js';

export const CHUNK = 64 * 1024;
/** One 64 KiB buffer of pseudo-random bytes reused for every bulk write (xorshift32, fixed seed). */
export const CHUNK_BUF: Buffer = (() => {
  const words = new Uint32Array(CHUNK / 4);
  let x = 0x6d2b79f5;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer);
})();

export type Mode = 'E' | 'S' | 'D' | 'B' | 'W';

export function header(mode: Mode, arg?: number): Buffer {
  if (mode === 'D' || mode === 'B') {
    const b = Buffer.alloc(9);
    b.write(mode, 0, 'latin1');
    b.writeBigUInt64BE(BigInt(arg ?? 0), 1);
    return b;
  }
  if (mode === 'W') {
    const b = Buffer.alloc(5);
    b.write(mode, 0, 'latin1');
    b.writeUInt32BE(arg ?? 0, 1);
    return b;
  }
  return Buffer.from(mode, 'latin1');
}

export interface BenchServer {
  port: number;
  /** Bytes received by sink-like modes (S, B, W) since start. */
  sunk(): number;
  /** Resolves once sunk() >= target. */
  waitSunk(target: number, timeoutMs: number): Promise<void>;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** Writes n bytes of CHUNK_BUF honouring back-pressure; resolves when all are queued. */
export function writeBytes(sock: net.Socket, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = n;
    const onError = (e: Error) => reject(e);
    sock.once('error', onError);
    const pump = () => {
      while (left > 0) {
        if (sock.destroyed) {
          sock.off('error', onError);
          reject(new Error(`socket closed with ${left} bytes unsent`));
          return;
        }
        const len = Math.min(left, CHUNK);
        left -= len;
        if (!sock.write(len === CHUNK ? CHUNK_BUF : CHUNK_BUF.subarray(0, len))) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.off('error', onError);
      resolve();
    };
    pump();
  });
}

export async function startBenchServer(port = 0): Promise<BenchServer> {
  const sockets = new Set<net.Socket>();
  let sunk = 0;
  let accepted = 0;
  const waiters = new Set<{ target: number; resolve: () => void }>();
  const addSunk = (n: number) => {
    sunk += n;
    for (const w of waiters) {
      if (sunk >= w.target) {
        waiters.delete(w);
        w.resolve();
      }
    }
  };

  const serve = (sock: net.Socket, mode: Mode, arg: number, rest: Buffer) => {
    switch (mode) {
      case 'E': {
        const echo = (chunk: Buffer) => {
          if (!sock.write(chunk)) {
            sock.pause();
            sock.once('drain', () => sock.resume());
          }
        };
        if (rest.length) echo(rest);
        sock.on('data', echo);
        sock.on('end', () => sock.end());
        return;
      }
      case 'S':
        if (rest.length) addSunk(rest.length);
        sock.on('data', (c: Buffer) => addSunk(c.length));
        sock.on('end', () => sock.end());
        return;
      case 'D':
      case 'B':
        if (mode === 'B') {
          // The agent closes a stream both ways at the first EOF from either side (like the real one),
          // so "both" must not end its side before the client's upload is in: it ends when the client does.
          if (rest.length) addSunk(rest.length);
          sock.on('data', (c: Buffer) => addSunk(c.length));
          sock.on('end', () => sock.end());
          writeBytes(sock, arg).catch(() => sock.destroy());
        } else {
          sock.resume();
          writeBytes(sock, arg).then(
            () => sock.end(),
            () => sock.destroy(),
          );
        }
        return;
      case 'W': {
        const rate = Math.max(1, arg);
        const start = performance.now();
        let got = 0;
        const take = (c: Buffer) => {
          got += c.length;
          addSunk(c.length);
          const due = start + (got / rate) * 1000;
          const wait = due - performance.now();
          if (wait > 1) {
            sock.pause();
            setTimeout(() => sock.resume(), wait);
          }
        };
        if (rest.length) take(rest);
        sock.on('data', take);
        sock.on('end', () => sock.end());
        return;
      }
    }
  };

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
    accepted++;
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let head: Buffer = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      const mode = String.fromCharCode(head[0]) as Mode;
      const need = mode === 'D' || mode === 'B' ? 9 : mode === 'W' ? 5 : 1;
      if (!'ESDBW'.includes(mode)) {
        sock.destroy();
        return;
      }
      if (head.length < need) return;
      sock.off('data', onHead);
      const arg = need === 9 ? Number(head.readBigUInt64BE(1)) : need === 5 ? head.readUInt32BE(1) : 0;
      serve(sock, mode, arg, head.subarray(need));
    };
    sock.on('data', onHead);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, backlog: 1024 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    sunk: () => sunk,
    accepted: () => accepted,
    waitSunk(target, timeoutMs) {
      if (sunk >= target) return Promise.resolve();
      const w = { target, resolve: () => {} };
      const p = new Promise<void>((resolve) => {
        w.resolve = resolve;
      });
      waiters.add(w);
      return withTimeout(p, timeoutMs, `sink waiting for ${target - sunk} more bytes`).finally(() =>
        waiters.delete(w),
      );
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
