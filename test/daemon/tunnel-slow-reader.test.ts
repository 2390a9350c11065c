/**
 * Issue 14, defect 2: one local client that stops reading must not wedge the other connections of
 * its session. Every message is acknowledged; the slow connection's own buffer grows to its cap and
 * then that connection alone is reset (RST to it, FIN of its stream to the agent).
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../src/daemon/tunnel.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { connect, pseudoRandomBytes, startSourceServer, type TcpServerHandle } from '../helpers/net.js';
import { BASTION, howItEnds, startTunnel } from './tunnel-harness.js';

const SIZE = 24 * 1024 * 1024;
const SEED = 7;
// Far above what a reading client falls behind, even with the agent flat out on a loaded machine.
const CAP = 16 * 1024 * 1024;

let sim: Simulator;
let source: TcpServerHandle;
let tunnel: Tunnel | undefined;
const sockets: net.Socket[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  // Flat out: the agent sends as fast as the client acknowledges, so any stall is the client's.
  sim = await startSimulator({ agentDefaults: { pacing: false } });
  source = await startSourceServer(SIZE, SEED);
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const c of cleanups) await c().catch(() => {});
  await tunnel?.stop();
  await source?.close();
  await sim?.close();
});

const expected = createHash('sha256').update(pseudoRandomBytes(SIZE, SEED)).digest('hex');

/** Reads to the end; resolves with the byte count and SHA-256, or rejects on a reset. */
function download(sock: net.Socket): Promise<{ bytes: number; sha: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    sock.once('end', () => resolve({ bytes, sha: hash.digest('hex') }));
    sock.once('error', reject);
  });
}

describe('a slow local reader', () => {
  it('is reset at its cap while three others download at full speed; the tunnel stays usable', {
    timeout: 90_000,
  }, async () => {
    const t = await startTunnel(sim, {
      target: BASTION,
      remotePort: source.port,
      deps: { maxBufferBytes: CAP },
    });
    tunnel = t.tunnel;
    const slow = await connect(t.port, '127.0.0.1', { allowHalfOpen: true });
    sockets.push(slow);
    slow.pause(); // never reads
    const slowEnd = howItEnds(slow);
    const fast = await Promise.all([0, 1, 2].map(() => connect(t.port)));
    sockets.push(...fast);
    const results = await Promise.all(fast.map(download));
    for (const r of results) expect(r).toEqual({ bytes: SIZE, sha: expected });

    // The slow connection was reset at its cap, on its own; its client sees a reset, not an end.
    await new Promise<void>((resolve) => {
      const poll = () => (t.tunnel.status().connectionsReset >= 1 ? resolve() : setTimeout(poll, 20));
      poll();
    });
    slow.resume();
    expect(await slowEnd).toBe('RST');
    expect(slow.bytesRead).toBeLessThan(SIZE);
    const st = t.tunnel.status();
    expect(st.connectionsReset).toBe(1);
    expect(st.state).toBe('open');
    expect(t.logs.some((l) => String(l.msg).includes('max_buffer') && l.maxBufferBytes === CAP)).toBe(true);

    // Usable right after: a fresh download is byte-exact.
    const again = await connect(t.port);
    sockets.push(again);
    expect(await download(again)).toEqual({ bytes: SIZE, sha: expected });
    expect(t.tunnel.status().sessionsStarted).toBe(1);
  });

  it('resets the reader furthest behind when all slow readers together pass the tunnel-wide cap', {
    timeout: 90_000,
  }, async () => {
    const small = await startSourceServer(8 * 1024 * 1024, SEED);
    cleanups.push(() => small.close());
    const t = await startTunnel(sim, {
      target: BASTION,
      remotePort: small.port,
      name: 'total',
      deps: { maxBufferBytes: 64 * 1024 * 1024, maxTotalBufferBytes: 3 * 1024 * 1024 },
    });
    cleanups.push(() => t.tunnel.stop());
    const slowOnes = await Promise.all(
      [0, 1].map(() => connect(t.port, '127.0.0.1', { allowHalfOpen: true })),
    );
    sockets.push(...slowOnes);
    for (const s of slowOnes) s.pause();
    const ends = slowOnes.map((s) => howItEnds(s));
    await new Promise<void>((resolve) => {
      const poll = () => (t.tunnel.status().connectionsReset >= 1 ? resolve() : setTimeout(poll, 20));
      poll();
    });
    // Together they passed 3 MiB, each far below its own cap: the one furthest behind was reset.
    expect(t.tunnel.status().connectionsReset).toBe(1);
    expect(t.tunnel.status().connections).toBe(1);
    for (const s of slowOnes) s.resume();
    // (Alone, the other one may pass the tunnel-wide cap later and be reset too.)
    expect(await Promise.all(ends)).toContain('RST');
    expect(t.logs.some((l) => String(l.msg).includes('max_buffer'))).toBe(true);
  });
});
