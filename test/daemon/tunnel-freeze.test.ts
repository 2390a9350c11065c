/**
 * Issue 14, defect 3: after a freeze (laptop sleep) the daemon used to replace its WebSocket at once,
 * throwing away what the agent had sent into it meanwhile; the paced agent then resent one message
 * per 100 ms. Now it probes the old socket first and keeps it when it answers. The simulator runs in
 * its own process so it keeps sending while this process is frozen (the event loop blocked).
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../src/daemon/tunnel.js';
import { type SimProcess, startSimProcess } from '../e2e/harness.js';
import { connect, pseudoRandomBytes, startSourceServer, type TcpServerHandle } from '../helpers/net.js';
import { startTunnel } from './tunnel-harness.js';

const SIZE = 3 * 1024 * 1024;
let sim: SimProcess;
let source: TcpServerHandle;
let tunnel: Tunnel | undefined;
let client: net.Socket | undefined;

beforeAll(async () => {
  sim = await startSimProcess(); // the faithful, paced agent
  source = await startSourceServer(SIZE, 3);
});

afterAll(async () => {
  client?.destroy();
  await tunnel?.stop();
  await source?.close();
  await sim?.stop();
});

/** Freezes this process the way SIGSTOP would: nothing runs, sockets keep receiving. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('freeze', () => {
  it('keeps a WebSocket that survived a freeze, and the paced download finishes byte-exact', {
    timeout: 60_000,
  }, async () => {
    const t = await startTunnel(sim, {
      target: sim.instances[0].id,
      remotePort: source.port,
      deps: { session: { freezeGapMs: 1_000 } },
    });
    tunnel = t.tunnel;
    client = await connect(t.port);
    const hash = createHash('sha256');
    let got = 0;
    let frozen = false;
    const done = new Promise<void>((resolve, reject) => {
      client!.on('data', (d: Buffer) => {
        hash.update(d);
        got += d.length;
        if (!frozen && got > 512 * 1024) {
          frozen = true;
          setImmediate(() => freeze(2_500));
        }
      });
      client!.once('end', () => resolve());
      client!.once('error', reject);
    });
    await done;
    expect(got).toBe(SIZE);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(pseudoRandomBytes(SIZE, 3)).digest('hex'));
    const st = t.tunnel.status();
    expect(st.reconnects).toBe(0);
    expect(t.logs.some((l) => l.msg === 'process was frozen; the WebSocket survived')).toBe(true);
  });
});
