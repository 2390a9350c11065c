/**
 * Issue 4 end to end: a daemon process and a simulator process, real PostgreSQL, real psql/pgbench,
 * real TCP. Nothing of ours is mocked.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closedPort,
  connect,
  freePort,
  pseudoRandomBytes,
  readExactly,
  startEchoServer,
  startSinkServer,
  startSourceServer,
} from '../helpers/net.js';
import { type PgCluster, pgTool, startPostgres } from '../helpers/postgres.js';
import {
  countCalls,
  type DaemonProcess,
  type SimProcess,
  startDaemonProcess,
  startSimProcess,
} from './harness.js';

const run = promisify(execFile);

interface TunnelStatusJson {
  name: string;
  state: string;
  sessionId?: string;
  mode?: string;
  connections: number;
  reconnects: number;
  lastError?: { code: string; message: string };
}

describe('daemon with the simulator and a real PostgreSQL', () => {
  let sim: SimProcess;
  let pg: PgCluster;
  let daemon: DaemonProcess;
  let pgPort: number;
  let echoPort: number;
  let refusedPort: number;
  let idlePort: number;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;

  beforeAll(async () => {
    [sim, pg, echo] = await Promise.all([
      startSimProcess(['--no-pacing']),
      startPostgres({ maxConnections: 40 }),
      startEchoServer(),
    ]);
    [pgPort, echoPort, refusedPort, idlePort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    daemon = await startDaemonProcess(sim, [
      { name: 'pg', localPort: pgPort, remotePort: pg.port },
      { name: 'echo', localPort: echoPort, remotePort: echo.port, targetTag: 'Name=bastion' },
      { name: 'refused', localPort: refusedPort, remotePort: await closedPort() },
      { name: 'idle', localPort: idlePort, remotePort: pg.port, idleTimeout: '2s' },
    ]);
  }, 60_000);

  afterAll(async () => {
    const code = await daemon?.stop();
    await Promise.all([sim?.stop(), pg?.stop(), echo?.close()]);
    expect(code).toBe(0);
  });

  const psql = (port: number, sql: string) => pg.psql(sql, { port, host: '127.0.0.1' });
  const status = (name: string) => daemon.api<TunnelStatusJson>(`/tunnels/${name}`);

  it('psql runs queries through the tunnel, lazily opening one session', async () => {
    expect((await status('pg')).state).toBe('listening');
    const before = countCalls(await sim.state(), 'StartSession');
    expect(await psql(pgPort, 'select 40 + 2')).toBe('42');
    expect(await psql(pgPort, "select current_setting('port')")).toBe(String(pg.port));
    const s = await status('pg');
    expect(s.state).toBe('open');
    expect(s.mode).toBe('mux');
    expect(countCalls(await sim.state(), 'StartSession')).toBe(before + 1);
  });

  it('pgbench -S -c 8 -j 2 -T 10 completes with 8 concurrent connections on one session', async () => {
    const env = { ...pg.env(), PGHOST: '127.0.0.1', PGPORT: String(pgPort) };
    await run(pgTool('pgbench'), ['-i', '-s', '1', '-q'], { env });
    const sessionId = (await status('pg')).sessionId;
    const before = countCalls(await sim.state(), 'StartSession');
    const { stdout } = await run(pgTool('pgbench'), ['-S', '-c', '8', '-j', '2', '-T', '10', '-n'], { env });
    expect(stdout).toMatch(/number of clients: 8/);
    expect(stdout).toMatch(/number of failed transactions: 0/);
    const tx = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
    expect(tx).toBeGreaterThan(100);
    expect(countCalls(await sim.state(), 'StartSession')).toBe(before);
    expect((await status('pg')).sessionId).toBe(sessionId);
  }, 60_000);

  it('a 50 MB upload and a 50 MB download survive the client WebSocket being killed mid-transfer, one ResumeSession each', async () => {
    const size = 50 * 1024 * 1024;
    const sink = await startSinkServer();
    const source = await startSourceServer(size, 11);
    const [sinkPort, sourcePort] = [await freePort(), await freePort()];
    // Tunnels of their own (a second daemon) so this test's sessions are the only ones killed.
    const d2 = await startDaemonProcess(sim, [
      { name: 'sink', localPort: sinkPort, remotePort: sink.port },
      { name: 'source', localPort: sourcePort, remotePort: source.port },
    ]);
    const killMid = async (tunnel: string) => {
      const sid = (await d2.api<TunnelStatusJson>(`/tunnels/${tunnel}`)).sessionId!;
      await sim.control('/_sim/kill', { sessionId: sid, side: 'client' });
    };
    try {
      const resumesBefore = countCalls(await sim.state(), 'ResumeSession');
      const up = await connect(sinkPort);
      const down = await connect(sourcePort);
      for (const s of [up, down]) s.on('error', () => {}); // 'close' is what the test watches
      const dropped: string[] = [];
      up.on('close', () => dropped.push('upload'));
      down.on('close', () => dropped.push('download'));

      // Download: read everything, killing the WebSocket once a third has arrived.
      const downHash = createHash('sha256');
      let downBytes = 0;
      let downKill: Promise<void> | undefined;
      const downloaded = new Promise<void>((resolve) => {
        down.on('data', (d: Buffer) => {
          downHash.update(d);
          downBytes += d.length;
          if (!downKill && downBytes >= size / 3) downKill = killMid('source');
          if (downBytes >= size) resolve();
        });
      });

      // Upload: write everything, killing the WebSocket once a third has reached the sink.
      const data = pseudoRandomBytes(size, 7);
      const upKill = sink.waitForBytes(size / 3).then(() => killMid('sink'));
      for (let off = 0; off < size; off += 256 * 1024) {
        if (!up.write(data.subarray(off, off + 256 * 1024))) await new Promise((r) => up.once('drain', r));
      }
      await Promise.all([sink.waitForBytes(size), downloaded, upKill]);
      await downKill;

      expect(sink.received()).toBe(size);
      expect(sink.digest()).toBe(createHash('sha256').update(data).digest('hex'));
      expect(downBytes).toBe(size);
      expect(downHash.digest('hex')).toBe(
        createHash('sha256').update(pseudoRandomBytes(size, 11)).digest('hex'),
      );
      expect(dropped.filter((d) => d === 'upload')).toEqual([]);
      for (const t of ['sink', 'source'])
        expect((await d2.api<TunnelStatusJson>(`/tunnels/${t}`)).reconnects).toBe(1);
      expect(countCalls(await sim.state(), 'ResumeSession')).toBe(resumesBefore + 2);
      up.destroy();
      down.destroy();
    } finally {
      expect(await d2.stop()).toBe(0);
      await Promise.all([sink.close(), source.close()]);
    }
  }, 120_000);

  it('pgbench keeps all 8 connections while the client WebSocket is killed under load', async () => {
    const env = { ...pg.env(), PGHOST: '127.0.0.1', PGPORT: String(pgPort) };
    expect(await psql(pgPort, 'select 1')).toBe('1'); // the session may have been idle-closed: reopen it
    const resumesBefore = countCalls(await sim.state(), 'ResumeSession');
    const bench = run(pgTool('pgbench'), ['-S', '-c', '8', '-j', '2', '-T', '6', '-n'], { env });
    // Kill only once all 8 clients are connected, so every one of them lives through it.
    await expect
      .poll(async () => (await status('pg')).connections, { timeout: 10_000, interval: 50 })
      .toBe(8);
    await sim.control('/_sim/kill', { sessionId: (await status('pg')).sessionId, side: 'client' });
    const { stdout } = await bench;
    expect(stdout).toMatch(/number of failed transactions: 0/);
    expect(countCalls(await sim.state(), 'ResumeSession')).toBe(resumesBefore + 1);
  }, 60_000);

  it('idle tunnel: TerminateSession after idle_timeout, and the next psql starts a new session', async () => {
    expect(await psql(idlePort, 'select 1')).toBe('1');
    const first = (await status('idle')).sessionId!;
    expect(first).toBeTruthy();
    await daemon.waitForLog((l) => l.tunnel === 'idle' && l.msg === 'idle: terminating session', 15_000);
    await expect
      .poll(async () => (await sim.state()).sessions.find((s) => s.sessionId === first)?.status, {
        timeout: 10_000,
      })
      .toBe('Terminated');
    expect((await status('idle')).state).toBe('listening');
    expect(await psql(idlePort, 'select 2')).toBe('2');
    const second = (await status('idle')).sessionId!;
    expect(second).not.toBe(first);
  }, 30_000);

  it('destination refused: the client connection closes, status shows the error, the next connection retries', async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const sock = await connect(refusedPort);
      sock.on('error', () => {}); // a reset is one of the expected ways for it to close
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      sock.write('hello');
      await closed;
    }
    const s = await status('refused');
    expect(s.lastError?.code).toBe('CONNECT_TO_PORT_ERROR');
    expect(s.state).toBe('open'); // the session itself is fine; only the destination refused
    const agent = (await sim.state()).sessions.find((x) => x.sessionId === s.sessionId)?.agent as {
      dialFailures: number;
    };
    expect(agent.dialFailures).toBe(2); // the second connection was dialled again, not refused from a cache
  });

  it('one tunnel failing does not affect another: echo still works after the refused tunnel failed', async () => {
    const sock = await connect(echoPort);
    const payload = pseudoRandomBytes(100_000, 3);
    sock.write(payload);
    const back = await readExactly(sock, payload.length);
    expect(back.equals(payload)).toBe(true);
    sock.destroy();
    expect((await status('echo')).state).toBe('open');
  });

  it('logs never contain session tokens', async () => {
    const st = await sim.state();
    expect(st.sessions.length).toBeGreaterThan(0);
    expect(daemon.rawLog()).not.toMatch(/TokenValue|"token"\s*:\s*"[^[]/);
  });
});
