/**
 * Issue 14, defect 5: the API bounds what one local client can hold. Real sockets: a client that
 * trickles its request is cut off by the header/request deadlines, and past maxConnections new
 * sockets are closed at once instead of piling up file descriptors.
 */
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/server.js';
import { TunnelManager } from '../../src/daemon/manager.js';

let manager: TunnelManager;
let app: ReturnType<typeof buildApi>;
let port: number;
const sockets: net.Socket[] = [];

beforeAll(async () => {
  manager = new TunnelManager({ logger: pino({ level: 'silent' }) });
  await manager.start([]);
  app = buildApi({
    manager,
    version: 'test',
    limits: {
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
      idleTimeoutMs: 2_000,
      maxConnections: 4,
      checkIntervalMs: 100,
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await app.close();
  await manager.stop();
});

function open(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
    sockets.push(s);
  });
}

/** Resolves when the server ends the socket, with how long that took and what it answered. */
function closedBy(s: net.Socket): Promise<{ ms: number; reply: string }> {
  const start = Date.now();
  let reply = '';
  s.on('data', (d) => {
    reply += d.toString();
  });
  s.on('error', () => {});
  return new Promise((resolve) => s.once('close', () => resolve({ ms: Date.now() - start, reply })));
}

describe('API limits', () => {
  it('cuts off a client that trickles its headers', async () => {
    const s = await open();
    s.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const timer = setInterval(() => s.writable && s.write('X-Slow: 1\r\n'), 50);
    const { ms, reply } = await closedBy(s);
    clearInterval(timer);
    expect(ms).toBeLessThan(3_000);
    expect(reply).toMatch(/^HTTP\/1\.1 408/);
  });

  it('cuts off a client that trickles its body', async () => {
    const s = await open();
    s.write(
      'POST /tunnels/x/open HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
    );
    const timer = setInterval(() => s.writable && s.write(' '), 50);
    const { ms } = await closedBy(s);
    clearInterval(timer);
    expect(ms).toBeLessThan(3_000);
  });

  it('closes sockets past maxConnections at once, and serves again when they are gone', async () => {
    // Each held socket gets an answer first, so the server has surely accepted all four.
    const held: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const h = await open();
      const answered = new Promise((r) => h.once('data', r));
      h.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await answered;
      held.push(h);
    }
    const extra = await open();
    const { ms, reply } = await closedBy(extra);
    expect(ms).toBeLessThan(1_000);
    expect(reply).toBe('');
    for (const h of held) h.destroy();
    // The server notices the closes asynchronously: retry until a request is served.
    const deadline = Date.now() + 5_000;
    let ok = false;
    while (!ok && Date.now() < deadline) {
      const s = await open();
      const ended = closedBy(s);
      s.end('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      ok = (await ended).reply.startsWith('HTTP/1.1 200');
    }
    expect(ok).toBe(true);
  });
});
