// Real TCP helpers for tests: loopback echo/sink/source servers and small socket utilities.
import { createHash } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';

export interface TcpServerHandle {
  port: number;
  close(): Promise<void>;
  /** Connections accepted so far. */
  connections: number;
}

/** A port that was free on `host` a moment ago (bind :0, read the port, release it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  return await freePort('127.0.0.1');
}

async function startServer(
  host: string,
  onSocket: (sock: net.Socket) => void,
): Promise<{ server: net.Server; handle: TcpServerHandle }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    accepted++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    // Peers resetting the connection is normal in tests; never crash the worker over it.
    sock.on('error', () => {});
    onSocket(sock);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  let closing: Promise<void> | undefined;
  const handle: TcpServerHandle = {
    port,
    get connections() {
      return accepted;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        sockets.clear();
      });
      return closing;
    },
  };
  return { server, handle };
}

/** Echoes every byte back; ends its side once the client has ended (half-close aware). */
export async function startEchoServer(host = '127.0.0.1'): Promise<TcpServerHandle> {
  const { handle } = await startServer(host, (sock) => {
    sock.pipe(sock);
  });
  return handle;
}

/** Swallows everything; counts and sha256-hashes the bytes received over all connections. */
export async function startSinkServer(
  host = '127.0.0.1',
): Promise<
  TcpServerHandle & { received: () => number; digest(): string; waitForBytes(n: number): Promise<void> }
> {
  const hash = createHash('sha256');
  let received = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const { handle } = await startServer(host, (sock) => {
    sock.on('data', (chunk: Buffer) => {
      received += chunk.length;
      hash.update(chunk);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (received >= waiters[i].n) waiters.splice(i, 1)[0].resolve();
      }
    });
    sock.on('end', () => sock.end());
  });
  return Object.assign(handle, {
    received: () => received,
    digest: () => hash.copy().digest('hex'),
    /** Resolves once at least n bytes have arrived in total. */
    waitForBytes: (n: number) =>
      received >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  });
}

/** Sends each connection `bytes` deterministic pseudo-random bytes (see pseudoRandomBytes), then ends. */
export async function startSourceServer(
  bytes: number,
  seed: number,
  host = '127.0.0.1',
): Promise<TcpServerHandle> {
  const payload = pseudoRandomBytes(bytes, seed);
  const { handle } = await startServer(host, (sock) => {
    sock.resume(); // ignore anything the client sends
    sock.end(payload);
  });
  return handle;
}

/** Deterministic pseudo-random bytes (xorshift32, little-endian words); same output for the same (n, seed). */
export function pseudoRandomBytes(n: number, seed: number): Buffer {
  const words = Math.ceil(n / 4);
  const arr = new Uint32Array(words);
  // Mix the seed so that nearby seeds diverge quickly; xorshift needs a non-zero state.
  let x = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0 || 0x6d2b79f5;
  for (let i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    arr[i] = x;
  }
  const buf = Buffer.from(arr.buffer, 0, words * 4);
  if (os.endianness() === 'BE') buf.swap32();
  return buf.subarray(0, n);
}

/** Connects to host:port; resolves once connected, rejects on connection error. */
export function connect(
  port: number,
  host = '127.0.0.1',
  options: { noDelay?: boolean; allowHalfOpen?: boolean } = {},
): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const sock = net.connect({ port, host, ...options });
    const onError = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

/** Reads exactly n bytes; surplus data is pushed back onto the socket. Rejects if the stream ends first. */
export function readExactly(sock: net.Socket, n: number): Promise<Buffer> {
  if (n === 0) return Promise.resolve(Buffer.alloc(0));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const cleanup = () => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got < n) return;
      cleanup();
      sock.pause();
      const all = Buffer.concat(chunks, got);
      if (got > n) sock.unshift(all.subarray(n));
      resolve(all.subarray(0, n));
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`stream ended after ${got} of ${n} bytes`));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
    sock.once('error', onError);
    sock.resume();
  });
}

/** Reads until 'end'. Rejects on error, or if the socket closes without a clean end. */
export function readAll(sock: net.Socket): Promise<Buffer> {
  if (sock.readableEnded) return Promise.resolve(Buffer.alloc(0));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const cleanup = () => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onClose);
      sock.off('error', onError);
    };
    const onData = (chunk: Buffer) => chunks.push(chunk);
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`socket closed before end (${Buffer.concat(chunks).length} bytes read)`));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onClose);
    sock.once('error', onError);
    sock.resume();
  });
}

/** Connects, writes payload, half-closes, and returns everything read until the peer ends. */
export async function roundTrip(port: number, payload: Buffer, host = '127.0.0.1'): Promise<Buffer> {
  const sock = await connect(port, host);
  try {
    const reading = readAll(sock);
    sock.end(payload);
    return await reading;
  } finally {
    sock.destroy();
  }
}
