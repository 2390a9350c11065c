/**
 * The status's `lastOpen`: each step of a lazy open measured where it happens. Over the simulator's
 * WAN model every step costs at least its round trips (StartSession one, the WebSocket upgrade one,
 * the handshake two: OpenDataChannel to HandshakeRequest, HandshakeResponse to HandshakeComplete),
 * so zeros or swapped steps would fail here; only lower bounds are checked, never speed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../src/daemon/tunnel.js';
import { EARLY_MS } from '../../src/sim/gateway/wan.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { connect, readExactly, startEchoServer, type TcpServerHandle } from '../helpers/net.js';
import { BASTION, startTunnel } from './tunnel-harness.js';

const RTT = 80;
/** The least n round trips can measure: two hops each, each up to EARLY_MS early; steps are in 0.1 ms. */
const least = (n: number) => n * RTT - 2 * n * EARLY_MS - 0.1;
let sim: Simulator;
let echo: TcpServerHandle;
let tunnel: Tunnel | undefined;

beforeAll(async () => {
  sim = await startSimulator({ wan: { rttMs: RTT } });
  echo = await startEchoServer();
});

afterAll(async () => {
  await tunnel?.stop();
  await echo?.close();
  await sim?.close();
});

async function pingThrough(port: number): Promise<void> {
  const sock = await connect(port);
  try {
    sock.write('ping');
    expect((await readExactly(sock, 4)).toString()).toBe('ping');
  } finally {
    sock.destroy();
  }
}

describe('lastOpen in the status', () => {
  it('reports StartSession, the WebSocket and the handshake, each at least its round trips; the next open connects ahead', async () => {
    const started = await startTunnel(sim, { target: BASTION, remotePort: echo.port });
    tunnel = started.tunnel;
    expect(tunnel.status().lastOpen).toBeUndefined();
    await pingThrough(started.port);
    const first = tunnel.status().lastOpen;
    expect(first).toBeDefined();
    if (!first) return;
    expect(first.targetMs).toBeLessThan(RTT); // an instance id: no lookup
    expect(first.startSessionMs).toBeGreaterThanOrEqual(least(1));
    // A simulator endpoint promises no stream host: the first upgrade dials (handshake) then asks.
    expect(first.preconnected).toBe(false);
    expect(first.connectMs).toBeGreaterThanOrEqual(least(2));
    expect(first.handshakeMs).toBeGreaterThanOrEqual(least(2));
    expect(first.totalMs + 0.5).toBeGreaterThanOrEqual(
      first.targetMs + first.startSessionMs + first.connectMs + first.handshakeMs,
    );
    expect(Date.parse(first.at)).toBeGreaterThan(0);

    // The next session's stream host is known: its TCP handshake overlaps StartSession.
    await tunnel.closeSession();
    await pingThrough(started.port);
    const second = tunnel.status().lastOpen;
    expect(second?.at).not.toBe(first.at);
    expect(second?.preconnected).toBe(true);
    expect(second?.connectMs).toBeGreaterThanOrEqual(least(1));
    expect(second?.connectMs).toBeLessThan(first.connectMs - RTT / 2);
  });
});
