/**
 * Issue 14, defect 5: bounded waits with clear errors. A StartSession that never answers fails with a
 * typed error naming the step; an agent that stops acknowledging shows the tunnel `degraded` with
 * the reason; a session that fails mid-stream resets its local sockets (RST, not FIN); connections
 * over max_connections are refused and counted.
 */
import http from 'node:http';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSsmGateway } from '../../src/daemon/aws.js';
import type { TunnelError } from '../../src/daemon/errors.js';
import type { Tunnel } from '../../src/daemon/tunnel.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { connect, readExactly, startEchoServer, type TcpServerHandle } from '../helpers/net.js';
import { BASTION, howItEnds, startTunnel } from './tunnel-harness.js';

let sim: Simulator;
let echo: TcpServerHandle;
const tunnels: Tunnel[] = [];
const sockets: net.Socket[] = [];

/** An "SSM endpoint" that accepts requests and never answers. */
async function silentEndpoint(): Promise<{ url: string; close(): Promise<void> }> {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((_req, res) => held.push(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

beforeAll(async () => {
  sim = await startSimulator();
  echo = await startEchoServer();
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(tunnels.splice(0).map((t) => t.stop()));
  sim.setFaults([]);
});

afterAll(async () => {
  await echo?.close();
  await sim?.close();
});

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('bounded waits', () => {
  it('a StartSession that never answers fails with AWS_TIMEOUT naming the step, and waiting clients are reset', async () => {
    const silent = await silentEndpoint();
    try {
      const t = await startTunnel(sim, {
        target: BASTION,
        remotePort: echo.port,
        endpoint: silent.url,
        deps: { awsCallTimeoutMs: 300 },
      });
      tunnels.push(t.tunnel);
      const client = await connect(t.port, '127.0.0.1', { allowHalfOpen: true });
      sockets.push(client);
      const started = Date.now();
      expect(await howItEnds(client)).toBe('RST');
      expect(Date.now() - started).toBeLessThan(5_000);
      const err = t.tunnel.status().lastError;
      expect(err?.code).toBe('AWS_TIMEOUT');
      expect(err?.message).toMatch(/^StartSession did not answer within 0\.3 s/);
      expect(err?.fix).toBeTruthy();
      await expect(t.tunnel.open()).rejects.toMatchObject({ code: 'AWS_TIMEOUT' });
    } finally {
      await silent.close();
    }
  });

  it('ResumeSession and TerminateSession are bounded the same way', async () => {
    const silent = await silentEndpoint();
    try {
      const aws = createSsmGateway({
        region: 'us-east-1',
        endpoint: silent.url,
        credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' },
        callTimeoutMs: 200,
      });
      const resume = await aws.resumeSession('s-1').catch((e: TunnelError) => e);
      expect(resume).toMatchObject({
        code: 'AWS_TIMEOUT',
        message: expect.stringMatching(/^ResumeSession /),
      });
      const term = await aws.terminateSession('s-1').catch((e: TunnelError) => e);
      expect(term).toMatchObject({
        code: 'AWS_TIMEOUT',
        message: expect.stringMatching(/^TerminateSession /),
      });
      aws.destroy();
    } finally {
      await silent.close();
    }
  });

  it('shows the tunnel degraded, with the reason, when the agent stops acknowledging', async () => {
    const t = await startTunnel(sim, {
      target: BASTION,
      remotePort: echo.port,
      deps: { session: { degradedAfterMs: 400 } },
    });
    tunnels.push(t.tunnel);
    const client = await connect(t.port);
    sockets.push(client);
    client.write('ping');
    expect((await readExactly(client, 4)).toString()).toBe('ping');
    expect(t.tunnel.status().state).toBe('open');
    // Everything the client sends from now on is lost before the agent: nothing gets acknowledged.
    sim.setFaults([{ direction: 'client->agent', drop: 1, onlyStreamData: true }]);
    client.write('lost');
    await until(() => t.tunnel.status().state === 'degraded', 'degraded state');
    expect(t.tunnel.status().degradedReason).toMatch(/not acknowledged data for \d+ s/);
    sim.setFaults([]);
    expect((await readExactly(client, 4)).toString()).toBe('lost');
    await until(() => t.tunnel.status().state === 'open', 'open again');
  });

  it('a session that fails mid-stream resets its local connections (RST, not FIN)', async () => {
    const t = await startTunnel(sim, { target: BASTION, remotePort: echo.port });
    tunnels.push(t.tunnel);
    const client = await connect(t.port, '127.0.0.1', { allowHalfOpen: true });
    sockets.push(client);
    client.write('hello');
    expect((await readExactly(client, 5)).toString()).toBe('hello');
    const ending = howItEnds(client);
    const sessionId = t.tunnel.status().sessionId!;
    expect(sim.registry.terminate(sessionId, 'Session terminated by test')).toBe(true);
    expect(await ending).toBe('RST');
    expect(t.tunnel.status().lastError?.code).toBe('SESSION_CLOSED');
  });

  it('refuses connections over max_connections, clearly, and counts them', async () => {
    const t = await startTunnel(sim, { target: BASTION, remotePort: echo.port, deps: { maxConnections: 2 } });
    tunnels.push(t.tunnel);
    const a = await connect(t.port);
    const b = await connect(t.port);
    sockets.push(a, b);
    for (const s of [a, b]) {
      s.write('x');
      expect((await readExactly(s, 1)).toString()).toBe('x');
    }
    // The refusal can reach the client before its connect completes: watch the socket from the start.
    const c = netConnect({ port: t.port, host: '127.0.0.1', allowHalfOpen: true });
    sockets.push(c);
    expect(await howItEnds(c)).toBe('RST');
    const st = t.tunnel.status();
    expect(st.connectionsRefused).toBe(1);
    expect(st.lastError).toMatchObject({
      code: 'TOO_MANY_CONNECTIONS',
      fix: expect.stringMatching(/max_connections/),
    });
    expect(t.logs.some((l) => l.code === 'TOO_MANY_CONNECTIONS')).toBe(true);
    // Room again once one leaves.
    a.destroy();
    await until(() => t.tunnel.status().connections === 1, 'a gone');
    const d = await connect(t.port);
    sockets.push(d);
    d.write('y');
    expect((await readExactly(d, 1)).toString()).toBe('y');
  });
});
