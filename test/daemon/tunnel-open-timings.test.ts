/**
 * The status's `lastOpen`: each step of a lazy open measured where it happens. Over the simulator's
 * WAN model every step costs at least its round trips (StartSession one, the WebSocket upgrade one,
 * the handshake two: OpenDataChannel to HandshakeRequest, HandshakeResponse to HandshakeComplete),
 * so zeros or swapped steps would fail here; only lower bounds are checked, never speed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../src/daemon/tunnel.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { connect, readExactly, startEchoServer, type TcpServerHandle } from '../helpers/net.js';
import { BASTION, startTunnel } from './tunnel-harness.js';

const RTT = 40;
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

describe('lastOpen in the status', () => {
  it('reports StartSession, the WebSocket and the handshake, each at least its round trips', async () => {
    const started = await startTunnel(sim, { target: BASTION, remotePort: echo.port });
    tunnel = started.tunnel;
    expect(tunnel.status().lastOpen).toBeUndefined();
    const sock = await connect(started.port);
    try {
      sock.write('ping');
      expect((await readExactly(sock, 4)).toString()).toBe('ping');
    } finally {
      sock.destroy();
    }
    const o = tunnel.status().lastOpen;
    expect(o).toBeDefined();
    if (!o) return;
    expect(o.targetMs).toBeLessThan(RTT); // an instance id: no lookup
    expect(o.startSessionMs).toBeGreaterThanOrEqual(RTT);
    expect(o.connectMs).toBeGreaterThanOrEqual(RTT);
    expect(o.handshakeMs).toBeGreaterThanOrEqual(2 * RTT);
    expect(o.totalMs + 0.5).toBeGreaterThanOrEqual(
      o.targetMs + o.startSessionMs + o.connectMs + o.handshakeMs,
    );
    expect(Date.parse(o.at)).toBeGreaterThan(0);
  });
});
