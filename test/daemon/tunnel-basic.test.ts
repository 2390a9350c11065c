/**
 * Issue 14, defect 1: in basic mode one connection's output must never reach the next connection.
 * Connection A sends a request and closes before all of the echo is back; B connects 0-200 ms later and
 * must see only its own bytes. 200 trials, over four tunnels in parallel (basic mode carries one
 * connection at a time per tunnel).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../src/daemon/tunnel.js';
import { mulberry32 } from '../../src/sim/faults.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { connect, readExactly, startEchoServer, type TcpServerHandle } from '../helpers/net.js';
import { LEGACY, startTunnel } from './tunnel-harness.js';

let sim: Simulator;
let echo: TcpServerHandle;
const tunnels: Tunnel[] = [];

beforeAll(async () => {
  sim = await startSimulator();
  echo = await startEchoServer();
});

afterAll(async () => {
  await Promise.all(tunnels.map((t) => t.stop()));
  await echo?.close();
  await sim?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function trials(port: number, n: number, seed: number): Promise<number> {
  const rand = mulberry32(seed);
  let leaks = 0;
  for (let i = 0; i < n; i++) {
    const a = await connect(port);
    a.on('error', () => {});
    // 64 KiB of 'A'; A leaves as soon as its echo starts: the paced agent has read the rest of the
    // echo already, and keeps sending it after A has gone.
    a.write(Buffer.alloc(64 * 1024, 0x41));
    await readExactly(a, 1);
    a.destroy();
    await sleep(Math.floor(rand() * 200));
    const b = await connect(port);
    const mine = Buffer.alloc(512, 0x42);
    b.write(mine);
    const got = await readExactly(b, mine.length);
    if (!got.equals(mine)) leaks++;
    b.destroy();
  }
  return leaks;
}

describe('basic mode: no output of a finished connection reaches the next one', () => {
  it('A-then-B race, 200 times: B never sees a byte of A', { timeout: 120_000 }, async () => {
    const started = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        startTunnel(sim, {
          target: LEGACY,
          remotePort: echo.port,
          name: `basic${i}`,
          deps: { session: { basicQuietMs: 100 } },
        }),
      ),
    );
    tunnels.push(...started.map((s) => s.tunnel));
    const leaks = await Promise.all(started.map((s, i) => trials(s.port, 50, 1000 + i)));
    expect(leaks).toEqual([0, 0, 0, 0]);
    const legacy = sim.state().sessions.filter((x) => x.target === LEGACY);
    expect(legacy.length).toBe(400);
    expect(legacy.every((x) => (x.agent as { mode?: string } | null)?.mode === 'basic')).toBe(true);
    for (const s of started) {
      const st = s.tunnel.status();
      expect(st.totalConnections).toBe(100);
      // One session per connection: a basic-mode session is retired when its connection ends.
      expect(st.sessionsStarted).toBe(100);
    }
  });
});
