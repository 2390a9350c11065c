import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closedPort,
  connect,
  freePort,
  pseudoRandomBytes,
  readAll,
  readExactly,
  roundTrip,
  startEchoServer,
  startSinkServer,
  startSourceServer,
  type TcpServerHandle,
} from './net.js';

const servers: TcpServerHandle[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('pseudoRandomBytes', () => {
  it('is deterministic per (n, seed) and prefix-stable', () => {
    const a = pseudoRandomBytes(10_001, 42);
    expect(a.length).toBe(10_001);
    expect(pseudoRandomBytes(10_001, 42).equals(a)).toBe(true);
    expect(pseudoRandomBytes(5_000, 42).equals(a.subarray(0, 5_000))).toBe(true);
    expect(pseudoRandomBytes(10_001, 43).equals(a)).toBe(false);
    expect(pseudoRandomBytes(0, 1).length).toBe(0);
    // not degenerate: every byte value shows up in 64 KiB
    expect(new Set(pseudoRandomBytes(65_536, 0)).size).toBe(256);
  });
});

describe('tcp servers', () => {
  it('echo round trip is byte-exact for 1 MB', async () => {
    const echo = await startEchoServer();
    servers.push(echo);
    const payload = pseudoRandomBytes(1024 * 1024, 7);
    const back = await roundTrip(echo.port, payload);
    expect(back.length).toBe(payload.length);
    expect(back.equals(payload)).toBe(true);
    expect(echo.connections).toBe(1);
  });

  it('echo supports readExactly in pieces on one connection', async () => {
    const echo = await startEchoServer();
    servers.push(echo);
    const sock = await connect(echo.port);
    const payload = pseudoRandomBytes(100_000, 3);
    sock.write(payload);
    const a = await readExactly(sock, 10);
    const b = await readExactly(sock, 99_990);
    expect(Buffer.concat([a, b]).equals(payload)).toBe(true);
    sock.end();
    expect((await readAll(sock)).length).toBe(0);
    sock.destroy();
  });

  it('sink digest equals sha256 of what was sent', async () => {
    const sink = await startSinkServer();
    servers.push(sink);
    const payload = pseudoRandomBytes(3 * 1024 * 1024 + 5, 11);
    const back = await roundTrip(sink.port, payload);
    expect(back.length).toBe(0);
    expect(sink.received()).toBe(payload.length);
    expect(sink.digest()).toBe(sha256(payload));
    expect(sink.digest()).toBe(sha256(payload)); // digest() is repeatable
  });

  it('source sends exactly N bytes equal to pseudoRandomBytes(N, seed), per connection', async () => {
    const n = 2 * 1024 * 1024 + 3;
    const source = await startSourceServer(n, 99);
    servers.push(source);
    const expected = pseudoRandomBytes(n, 99);
    for (let i = 0; i < 2; i++) {
      const sock = await connect(source.port);
      const got = await readAll(sock);
      sock.destroy();
      expect(got.length).toBe(n);
      expect(got.equals(expected)).toBe(true);
    }
    expect(source.connections).toBe(2);
  });

  it('close() destroys open connections so nothing hangs', async () => {
    const echo = await startEchoServer();
    const sock = await connect(echo.port);
    sock.on('error', () => {});
    const reading = readAll(sock).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 20));
    await echo.close();
    await reading; // either a clean end or an error, but it settles
    await expect(connect(echo.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('closedPort refuses connections', async () => {
    const port = await closedPort();
    await expect(connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('freePort returns a bindable port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    await expect(connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
