/**
 * Issue 12, session pools end to end: a daemon process with `sessions = N` tunnels, the simulator in
 * its own process (mux and basic-mode agents), real TCP. The StartSession counts come from the
 * simulator, the per-session connection counts from the daemon's status.
 */
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, freePort, pseudoRandomBytes, readExactly, startEchoServer } from '../helpers/net.js';
import {
  countCalls,
  type DaemonProcess,
  type SimProcess,
  startDaemonProcess,
  startSimProcess,
} from './harness.js';

interface PoolStatus {
  name: string;
  state: string;
  connections: number;
  sessions?: Array<{ member: number; state: string; sessionId?: string; mode?: string; connections: number }>;
}

async function echoRoundTrip(sock: net.Socket, data: Buffer): Promise<boolean> {
  sock.write(data);
  return (await readExactly(sock, data.length)).equals(data);
}

/** Polls an observable condition (the simulator's or daemon's state), never a blind sleep. */
async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('session pools', () => {
  let sim: SimProcess;
  let daemon: DaemonProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  const ports = { pool: 0, basic: 0, idle: 0 };
  const open: net.Socket[] = [];

  beforeAll(async () => {
    [sim, echo] = await Promise.all([startSimProcess(['--no-pacing']), startEchoServer()]);
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    daemon = await startDaemonProcess(sim, [
      { name: 'pool', localPort: ports.pool, remotePort: echo.port, extra: 'sessions = 4' },
      {
        name: 'basic',
        localPort: ports.basic,
        remotePort: echo.port,
        targetTag: 'Name=legacy',
        extra: 'sessions = 3',
      },
      {
        name: 'idle',
        localPort: ports.idle,
        remotePort: echo.port,
        idleTimeout: '1s',
        extra: 'sessions = 2',
      },
    ]);
  }, 60_000);

  afterAll(async () => {
    for (const s of open) s.destroy();
    await daemon?.stop();
    await Promise.all([sim?.stop(), echo?.close()]);
  });

  const status = (name: string) => daemon.api<PoolStatus>(`/tunnels/${name}`);
  const connectKept = async (port: number) => {
    const s = await connect(port);
    s.on('error', () => {});
    open.push(s);
    return s;
  };

  it('spreads 16 concurrent connections over 4 sessions, byte-exact', async () => {
    const before = countCalls(await sim.state(), 'StartSession');
    const socks = await Promise.all(Array.from({ length: 16 }, () => connectKept(ports.pool)));
    const payloads = socks.map((_, i) => pseudoRandomBytes(200_000 + i * 1000, 1000 + i));
    const ok = await Promise.all(socks.map((s, i) => echoRoundTrip(s, payloads[i])));
    expect(ok).toEqual(socks.map(() => true));
    const st = await status('pool');
    expect(st.connections).toBe(16);
    expect(st.sessions).toHaveLength(4);
    expect(st.sessions!.map((m) => m.connections)).toEqual([4, 4, 4, 4]);
    expect(new Set(st.sessions!.map((m) => m.sessionId)).size).toBe(4);
    expect(countCalls(await sim.state(), 'StartSession') - before).toBe(4);
    for (const s of socks) s.destroy();
    await until('the pool to carry no connection', async () =>
      (await status('pool')).connections === 0 ? true : undefined,
    );
  });

  it('a lost pool member fails only its own connections; the next connection opens a replacement', async () => {
    const socks = await Promise.all(Array.from({ length: 4 }, () => connectKept(ports.pool)));
    for (const [i, s] of socks.entries())
      expect(await echoRoundTrip(s, pseudoRandomBytes(10_000, i))).toBe(true);
    const st = await status('pool');
    expect(st.sessions!.map((m) => m.connections)).toEqual([1, 1, 1, 1]);
    const victim = st.sessions![1].sessionId!;
    const before = countCalls(await sim.state(), 'StartSession');
    const victimClosed = new Promise<void>((r) => socks[1].once('close', () => r()));
    await sim.control('/_sim/terminate', { sessionId: victim, reason: 'lost' });
    await victimClosed;
    for (const i of [0, 2, 3])
      expect(await echoRoundTrip(socks[i], pseudoRandomBytes(50_000, 50 + i))).toBe(true);
    const next = await connectKept(ports.pool);
    expect(await echoRoundTrip(next, pseudoRandomBytes(10_000, 99))).toBe(true);
    expect(countCalls(await sim.state(), 'StartSession') - before).toBe(1);
    const after = await status('pool');
    expect(after.sessions!.map((m) => m.sessionId)).not.toContain(victim);
    expect(after.sessions!.filter((m) => m.sessionId).length).toBe(4);
    for (const s of [...socks, next]) s.destroy();
  });

  it('a basic-mode agent with sessions = 3 carries three connections at the same time', async () => {
    const socks = await Promise.all(Array.from({ length: 3 }, () => connectKept(ports.basic)));
    // Each echo comes back while all three stay open: with one basic session the second and third
    // would wait for the first to close.
    const ok = await Promise.all(socks.map((s, i) => echoRoundTrip(s, pseudoRandomBytes(20_000, 300 + i))));
    expect(ok).toEqual([true, true, true]);
    const st = await status('basic');
    expect(st.sessions!.map((m) => [m.mode, m.connections])).toEqual([
      ['basic', 1],
      ['basic', 1],
      ['basic', 1],
    ]);
    for (const s of socks) s.destroy();
  });

  it('idle: every session of the pool is terminated after idle_timeout and the listener stays', async () => {
    const socks = await Promise.all(Array.from({ length: 2 }, () => connectKept(ports.idle)));
    for (const [i, s] of socks.entries())
      expect(await echoRoundTrip(s, pseudoRandomBytes(5_000, 400 + i))).toBe(true);
    const ids = (await status('idle')).sessions!.map((m) => m.sessionId!);
    expect(ids).toHaveLength(2);
    for (const s of socks) s.destroy();
    await until('both idle sessions to be terminated', async () => {
      const st = await sim.state();
      const done = ids.every((id) => st.sessions.find((x) => x.sessionId === id)?.status === 'Terminated');
      return done ? true : undefined;
    });
    expect((await status('idle')).sessions!.every((m) => !m.sessionId)).toBe(true);
    const again = await connectKept(ports.idle);
    expect(await echoRoundTrip(again, pseudoRandomBytes(5_000, 500))).toBe(true);
    again.destroy();
  });
});
