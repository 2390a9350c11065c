/**
 * Issue 3: a protocol-core client (the daemon's ClientSession) over real WebSockets on loopback,
 * through the simulator (SSM API, gateway, agent), to a real TCP server. The simulator is driven only
 * through its network interfaces; faults are injected on its relay.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSsmGateway } from '../../src/daemon/aws.js';
import { DOCUMENT_REMOTE_HOST } from '../../src/daemon/config.js';
import { ClientSession, type SessionHandlers } from '../../src/daemon/session.js';
import type { FaultSpec } from '../../src/sim/faults.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { pseudoRandomBytes, startEchoServer, type TcpServerHandle } from '../helpers/net.js';

const BASTION = 'i-05e1a000000000001';
const LEGACY = 'i-05e1a000000000002';
const KEEPALIVE = 'i-05e1a000000000003';

interface Client {
  session: ClientSession;
  received: Map<number, Buffer[]>;
  closed: Set<number>;
  waitClosed(id: number): Promise<void>;
  errors: string[];
  reconnects: number;
}

async function openClient(sim: Simulator, target: string, port: number): Promise<Client> {
  const received = new Map<number, Buffer[]>();
  const closed = new Set<number>();
  const closeWaiters = new Map<number, () => void>();
  const errors: string[] = [];
  const client = { received, closed, errors, reconnects: 0 } as Client;
  const handlers: SessionHandlers = {
    data: (id, data) => {
      const list = received.get(id) ?? [];
      list.push(Buffer.from(data));
      received.set(id, list);
      waiters.get(id)?.();
    },
    remoteClosed: (id) => {
      closed.add(id);
      closeWaiters.get(id)?.();
    },
    connectToPortError: () => errors.push('CONNECT_TO_PORT_ERROR'),
    drain: () => {
      for (const w of drainWaiters.splice(0)) w();
    },
    reconnecting: () => {},
    reconnected: () => {
      client.reconnects++;
    },
    closed: (err) => {
      if (err) errors.push(err.code);
    },
  };
  const aws = createSsmGateway({
    region: sim.region,
    endpoint: sim.endpoint,
    credentials: { accessKeyId: sim.accessKeyId, secretAccessKey: sim.secretAccessKey },
  });
  client.session = await ClientSession.start({
    aws,
    target,
    documentName: DOCUMENT_REMOTE_HOST,
    parameters: { host: ['127.0.0.1'], portNumber: [String(port)], localPortNumber: ['0'] },
    logger: pino({ level: 'silent' }),
    handlers,
  });
  client.waitClosed = (id) =>
    closed.has(id) ? Promise.resolve() : new Promise<void>((r) => closeWaiters.set(id, r));
  return client;
}

const waiters = new Map<number, () => void>();
const drainWaiters: Array<() => void> = [];

/** Writes `data` on a connection respecting the session's window, and waits until it is echoed back. */
async function echoThrough(c: Client, id: number, data: Buffer): Promise<Buffer> {
  for (let off = 0; off < data.length; off += 16 * 1024) {
    while (!c.session.writable) {
      await new Promise<void>((r) => {
        drainWaiters.push(r);
      });
    }
    c.session.write(id, data.subarray(off, off + 16 * 1024));
  }
  for (;;) {
    const got = (c.received.get(id) ?? []).reduce((n, b) => n + b.length, 0);
    if (got >= data.length) break;
    await new Promise<void>((r) => waiters.set(id, r));
  }
  return Buffer.concat(c.received.get(id)!);
}

describe('protocol-core client through the simulator', () => {
  let sim: Simulator;
  let echo: TcpServerHandle;

  beforeAll(async () => {
    sim = await startSimulator({
      agentDefaults: { pacing: false },
      instances: [
        { id: BASTION, tags: { Name: 'bastion' }, agentVersion: '3.3.987.0' },
        { id: LEGACY, tags: { Name: 'legacy' }, agentVersion: '3.0.161.0' },
        { id: KEEPALIVE, tags: { Name: 'mid' }, agentVersion: '3.1.1000.0' },
      ],
    });
    echo = await startEchoServer();
  });
  afterAll(async () => {
    await sim?.close();
    await echo?.close();
  });

  const faultCases: Array<[string, FaultSpec[]]> = [
    ['no fault', []],
    ['drop 3%', [{ direction: 'both', drop: 0.03 }]],
    ['duplicate 10%', [{ direction: 'both', duplicate: 0.1 }]],
    ['reorder 10%', [{ direction: 'both', reorder: 0.1 }]],
    ['delay 5 ms + jitter', [{ direction: 'both', delayMs: 5, jitterMs: 5 }]],
    [
      'client socket killed',
      [{ direction: 'agent->client', killAfterFrames: { side: 'client', frames: 300 } }],
    ],
    [
      'agent socket killed',
      [{ direction: 'client->agent', killAfterFrames: { side: 'agent', frames: 300 } }],
    ],
  ];

  for (const [name, faults] of faultCases) {
    it(`mux: 16 concurrent streams echo byte-exact (${name})`, async () => {
      sim.setFaults(faults);
      try {
        const c = await openClient(sim, BASTION, echo.port);
        expect(c.session.info.mode).toBe('mux');
        const ids = Array.from({ length: 16 }, () => c.session.openConnection());
        const payloads = ids.map((id, i) => pseudoRandomBytes(40_000 + i * 3_001, id));
        const results = await Promise.all(ids.map((id, i) => echoThrough(c, id, payloads[i])));
        for (const [i, r] of results.entries()) expect(r.equals(payloads[i])).toBe(true);
        for (const id of ids) c.session.closeConnection(id);
        expect(c.errors).toEqual([]);
        const agent = sim.state().sessions.find((s) => s.sessionId === c.session.sessionId)?.agent as {
          reconnects: number;
          streamsAccepted: number;
        };
        expect(agent.streamsAccepted).toBe(16);
        if (name === 'client socket killed') expect(c.reconnects).toBe(1);
        if (name === 'agent socket killed') expect(agent.reconnects).toBe(1);
        await c.session.terminate();
      } finally {
        sim.setFaults([]);
      }
    }, 60_000);
  }

  it('basic mode for an agent at or below 3.0.196.0: one connection at a time, DisconnectToPort between', async () => {
    const c = await openClient(sim, LEGACY, echo.port);
    expect(c.session.info.mode).toBe('basic');
    expect(c.session.info.terminateFlag).toBe(true);
    for (let round = 0; round < 3; round++) {
      const id = c.session.openConnection();
      expect(c.session.canOpenConnection).toBe(false);
      const data = pseudoRandomBytes(100_000, round);
      expect((await echoThrough(c, id, data)).equals(data)).toBe(true);
      c.session.closeConnection(id);
      // Shut until the agent acked DisconnectToPort and the old connection's output went quiet.
      expect(c.session.canOpenConnection).toBe(false);
      const until = Date.now() + 5_000;
      while (!c.session.canOpenConnection && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(c.session.canOpenConnection).toBe(true);
    }
    expect(c.errors).toEqual([]);
    await c.session.terminate();
  });

  it('agent version thresholds select the mode and smux keepalive on both sides', async () => {
    const mid = await openClient(sim, KEEPALIVE, echo.port);
    expect(mid.session.info).toMatchObject({ mode: 'mux', smuxKeepalive: true, agentVersion: '3.1.1000.0' });
    const now = await openClient(sim, BASTION, echo.port);
    expect(now.session.info).toMatchObject({ mode: 'mux', smuxKeepalive: false });
    const st = sim.state();
    const agentModes = st.sessions
      .filter((s) => s.sessionId === mid.session.sessionId || s.sessionId === now.session.sessionId)
      .map((s) => (s.agent as { mode?: string }).mode);
    expect(agentModes).toEqual(['mux', 'mux']);
    await mid.session.terminate();
    await now.session.terminate();
  });

  it('ConnectToPortError is surfaced and the session survives it', async () => {
    const c = await openClient(sim, BASTION, 1); // nothing listens on port 1
    const id = c.session.openConnection();
    c.session.write(id, Buffer.from('hello'));
    await c.waitClosed(id);
    expect(c.errors).toEqual(['CONNECT_TO_PORT_ERROR']);
    expect(c.session.isEnded).toBe(false);
    await c.session.terminate();
  });
});
