/**
 * Issue 12: the simulator's WAN model. A protocol-core client (the daemon's ClientSession) over real
 * WebSockets through an in-process simulator with a WAN between them, to real TCP servers. Timed
 * assertions are lower bounds only: the model must add at least the delay it claims, less the half
 * millisecond by which it may deliver each frame early (it rounds arrivals to the nearest timer tick).
 */
import http from 'node:http';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createSsmGateway } from '../../src/daemon/aws.js';
import { DOCUMENT_REMOTE_HOST } from '../../src/daemon/config.js';
import { ClientSession } from '../../src/daemon/session.js';
import { EARLY_MS, validateWan, WanLink, WanSpecError } from '../../src/sim/gateway/wan.js';
import { type Simulator, type SimulatorOptions, startSimulator } from '../../src/sim/index.js';
import { mulberry32 } from '../../src/sim/random.js';
import { pseudoRandomBytes, startEchoServer, type TcpServerHandle } from '../helpers/net.js';

const BASTION = 'i-05e1a000000000001';
/** The least `n` round trips can take: each is two timed hops, each up to EARLY_MS early. */
const rtts = (n: number, rttMs: number) => n * rttMs - 2 * n * EARLY_MS;

interface Client {
  session: ClientSession;
  received: Map<number, Buffer[]>;
  onData(id: number, fn: () => void): void;
  onDrain(fn: () => void): void;
}

async function openClient(sim: Simulator, port: number): Promise<Client> {
  const received = new Map<number, Buffer[]>();
  const dataWaiters = new Map<number, () => void>();
  const drainWaiters: Array<() => void> = [];
  const session = await ClientSession.start({
    aws: createSsmGateway({
      region: sim.region,
      endpoint: sim.endpoint,
      credentials: { accessKeyId: sim.accessKeyId, secretAccessKey: sim.secretAccessKey },
    }),
    target: BASTION,
    documentName: DOCUMENT_REMOTE_HOST,
    parameters: { host: ['127.0.0.1'], portNumber: [String(port)], localPortNumber: ['0'] },
    logger: pino({ level: 'silent' }),
    handlers: {
      data: (id, data) => {
        const list = received.get(id) ?? [];
        list.push(Buffer.from(data));
        received.set(id, list);
        dataWaiters.get(id)?.();
      },
      remoteClosed: () => {},
      connectToPortError: () => {},
      drain: () => {
        for (const w of drainWaiters.splice(0)) w();
      },
      reconnecting: () => {},
      reconnected: () => {},
      closed: () => {},
    },
  });
  return {
    session,
    received,
    onData: (id, fn) => dataWaiters.set(id, fn),
    onDrain: (fn) => drainWaiters.push(fn),
  };
}

function receivedBytes(c: Client, id: number): number {
  return (c.received.get(id) ?? []).reduce((n, b) => n + b.length, 0);
}

/** Writes `data` respecting the window and resolves with what was echoed once all of it is back. */
async function echoThrough(c: Client, id: number, data: Buffer): Promise<Buffer> {
  const before = receivedBytes(c, id);
  for (let off = 0; off < data.length; off += 16 * 1024) {
    while (!c.session.writable) await new Promise<void>((r) => c.onDrain(r));
    c.session.write(id, data.subarray(off, off + 16 * 1024));
  }
  while (receivedBytes(c, id) - before < data.length) {
    await new Promise<void>((r) => c.onData(id, r));
  }
  return Buffer.concat(c.received.get(id)!).subarray(before);
}

describe('WAN model', () => {
  let sim: Simulator | undefined;
  let echo: TcpServerHandle | undefined;
  let client: Client | undefined;

  afterEach(async () => {
    await client?.session.terminate().catch(() => {});
    await sim?.close();
    await echo?.close();
    client = undefined;
    sim = undefined;
    echo = undefined;
  });

  async function start(wan: SimulatorOptions['wan']): Promise<void> {
    sim = await startSimulator({ agentDefaults: { pacing: false }, wan });
    echo = await startEchoServer();
  }

  it('a ping-pong round trip through the gateway takes at least the RTT; the open pays for every round trip', async () => {
    const rttMs = 40;
    await start({ rttMs });
    const t0 = performance.now();
    client = await openClient(sim!, echo!.port);
    // StartSession (1 RTT) on a fresh connection (1 RTT), the upgrade (1 RTT) on another (1 RTT: this
    // client never opened a session before, so nothing was connected ahead), OpenDataChannel up and
    // the agent's handshake down (1 RTT).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(rtts(5, rttMs));
    const id = client.session.openConnection();
    await echoThrough(client, id, Buffer.from('warm'));
    const pings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const back = await echoThrough(client, id, Buffer.alloc(64, i));
      pings.push(performance.now() - t);
      expect(back.equals(Buffer.alloc(64, i))).toBe(true);
    }
    expect(Math.min(...pings)).toBeGreaterThanOrEqual(rtts(1, rttMs));
    const wan = sim!.state().wan;
    expect(wan.settings.rttMs).toBe(rttMs);
    // Acks and handshake cross it too: more frames than the 7 data messages each way.
    expect(wan.up.frames).toBeGreaterThan(10);
    expect(wan.down.frames).toBeGreaterThan(10);
  });

  it('a fresh TCP connection pays the handshake round trip before its first request; a kept-alive one does not', async () => {
    const rttMs = 100;
    await start({ rttMs });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<number>((resolve, reject) => {
        const t = performance.now();
        http
          .get(`${sim!.endpoint}/_sim/state`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(performance.now() - t));
          })
          .on('error', reject);
      });
    try {
      const fresh = await get();
      const reused = await get();
      expect(fresh).toBeGreaterThanOrEqual(rtts(1, rttMs));
      // The control API adds no delay of its own: only the handshake separates the two.
      expect(reused).toBeLessThan(fresh - rttMs / 2);
    } finally {
      agent.destroy();
    }
  });

  it('a WebSocket upgrade answers two RTTs after its connection (handshake, request), and a ping one more', async () => {
    const rttMs = 40;
    await start({ rttMs });
    const t0 = performance.now();
    const ws = new WebSocket(`${sim!.endpoint.replace('http', 'ws')}/v1/data-channel/s-0123456789abcdef0`);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      expect(performance.now() - t0).toBeGreaterThanOrEqual(rtts(2, rttMs));
      const t1 = performance.now();
      const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
      ws.ping('p');
      expect((await pong).toString()).toBe('p');
      expect(performance.now() - t1).toBeGreaterThanOrEqual(rtts(1, rttMs));
    } finally {
      ws.terminate();
    }
  });

  it('a bandwidth-limited transfer takes at least size / bandwidth, byte-exact', async () => {
    await start({ bandwidthMbps: { up: 40, down: 4 } });
    client = await openClient(sim!, echo!.port);
    const id = client.session.openConnection();
    const data = pseudoRandomBytes(200_000, 7);
    const t0 = performance.now();
    const back = await echoThrough(client, id, data);
    const ms = performance.now() - t0;
    expect(back.equals(data)).toBe(true);
    // 4 Mbit/s down is 500 bytes per ms: 200 kB of payload alone needs 400 ms.
    expect(ms).toBeGreaterThanOrEqual((data.length * 8) / (4 * 1000) - EARLY_MS);
    expect(sim!.state().wan.down.bytes).toBeGreaterThan(data.length);
  });

  it('jitter delays frames but never reorders them, end to end', async () => {
    await start({ rttMs: 10, jitterMs: 20 });
    client = await openClient(sim!, echo!.port);
    const ids = Array.from({ length: 4 }, () => client!.session.openConnection());
    const payloads = ids.map((id, i) => pseudoRandomBytes(60_000 + i * 1_001, id));
    const results = await Promise.all(ids.map((id, i) => echoThrough(client!, id, payloads[i])));
    for (const [i, r] of results.entries()) expect(r.equals(payloads[i])).toBe(true);
    const sessionId = client.session.stats().sessionId;
    const agent = sim!.gateway.agentStats(sessionId) as { dataChannel: { reordered: number } };
    // Each side's data channel counts messages that arrived ahead of a missing one.
    expect(client.session.stats().channel.reordered).toBe(0);
    expect(agent.dataChannel.reordered).toBe(0);
  });

  it('changes at run time through POST /_sim/wan and refuses bad values', async () => {
    await start(undefined);
    const post = (body: unknown) =>
      fetch(`${sim!.endpoint}/_sim/wan`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const ok = await post({ rttMs: 30, bandwidthMbps: { up: 10 } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({
      wan: { rttMs: 30, jitterMs: 0, bandwidthMbps: { up: 10, down: 0 } },
    });
    expect(sim!.state().wan.settings.rttMs).toBe(30);
    for (const bad of [{ rttMs: -1 }, { rttMs: 'x' }, { latency: 3 }, { bandwidthMbps: { sideways: 1 } }]) {
      const res = await post(bad);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('BadRequest');
    }
    // The new settings apply from the next call and frame on.
    const t0 = performance.now();
    client = await openClient(sim!, echo!.port);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(rtts(3, 30));
    expect(sim!.state().wan.up.frames).toBeGreaterThan(0);
  });
});

describe('WanLink', () => {
  it('delivers in the order sent, never before the one-way delay (to the nearest ms), with jitter and a bandwidth limit', async () => {
    const oneWayMs = 5;
    const link = new WanLink({ oneWayMs, jitterMs: 15, mbps: 80 }, mulberry32(3));
    const sent: number[] = [];
    const order: number[] = [];
    const early: number[] = [];
    const n = 300;
    const done = new Promise<void>((resolve) => {
      for (let i = 0; i < n; i++) {
        sent.push(performance.now());
        link.send(1000, () => {
          order.push(i);
          if (performance.now() - sent[i] < oneWayMs - EARLY_MS) early.push(i);
          if (order.length === n) resolve();
        });
      }
    });
    await done;
    expect(order).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(early).toEqual([]);
    // The link's own account of its timing error agrees: never more than EARLY_MS early.
    expect(link.stats.lateMsMax).toBeGreaterThanOrEqual(-EARLY_MS);
    expect(link.stats.lateMsTotal / n).toBeGreaterThanOrEqual(-EARLY_MS);
    expect(link.stats.lateMsTotal / n).toBeLessThanOrEqual(link.stats.lateMsMax);
    // 300 kB at 80 Mbit/s (10 kB per ms) needs 30 ms of serialisation before the last one leaves.
    expect(performance.now() - sent[0]).toBeGreaterThanOrEqual(30 + oneWayMs - EARLY_MS);
    link.dispose();
  });

  it('without a WAN hands frames over at once', () => {
    const link = new WanLink({ oneWayMs: 0, jitterMs: 0, mbps: 0 }, mulberry32(1));
    let got = 0;
    link.send(100, () => got++);
    expect(got).toBe(1);
  });

  it('names the field a bad spec gets wrong', () => {
    expect(() => validateWan({ rttMs: -5 })).toThrow(WanSpecError);
    expect(() => validateWan({ rttMs: -5 })).toThrow(/wan\.rttMs/);
    expect(() => validateWan({ bandwidthMbps: { up: Number.NaN } })).toThrow(/bandwidthMbps\.up/);
    expect(validateWan({ rttMs: 30 })).toEqual({ rttMs: 30, jitterMs: 0, bandwidthMbps: { up: 0, down: 0 } });
  });
});
