/**
 * The daemon as the service manager runs it: the argv and environment are read from the unit that
 * `ssmtun service install` renders (compiled script, absolute node, PATH from the unit, no TTY, AWS
 * credentials from HOME), against the simulator process. It becomes ready (`ssmtun wait`, /health),
 * keeps its JSON log clean of the SDK's Node-version warning, refuses a second copy with exit 1
 * naming the first, retries a busy port, reloads on SIGHUP without touching an unchanged tunnel's
 * session or open connection, refuses a broken config on reload, and exits 0 on SIGTERM within 2 s
 * after terminating its sessions.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/service/runner.js';
import { linuxInstallPlan } from '../../src/service/systemd.js';
import { compiledCli } from '../helpers/compiled.js';
import { connect, freePort, pseudoRandomBytes, readExactly, startEchoServer } from '../helpers/net.js';
import { type SimProcess, startSimProcess, tunnelToml } from './harness.js';

interface Status {
  name: string;
  state: string;
  sessionId?: string;
  listening: string[];
  listenRetry?: { attempt: number; nextAt: string };
  lastError?: { code: string; message: string };
}

type Log = Record<string, unknown>;

/** The unit's ExecStart words and Environment=, parsed the way systemd reads them. */
function fromUnit(unit: string): { argv: string[]; env: Record<string, string> } {
  const words = (v: string) =>
    [...v.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
      (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]).replace(/%%/g, '%').replace(/\$\$/g, '$'),
    );
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1];
  const env: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment=(.*)$/gm)) {
    for (const w of words(m[1])) env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
  }
  return { argv: words(exec), env };
}

class Daemon {
  readonly logs: Log[] = [];
  raw = '';
  stderr = '';
  readonly exit: Promise<number | null>;
  private waiters: Array<{ pred: (l: Log) => boolean; resolve: (l: Log) => void }> = [];
  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      this.raw += `${line}\n`;
      const l = JSON.parse(line) as Log; // every stdout line must be JSON: a throw here fails the test
      this.logs.push(l);
      for (const w of this.waiters.filter((x) => x.pred(l))) w.resolve(l);
      this.waiters = this.waiters.filter((x) => !x.pred(l));
    });
    proc.stderr!.on('data', (d) => {
      this.stderr += String(d);
    });
    this.exit = new Promise((r) => proc.once('exit', (code) => r(code)));
  }
  waitFor(pred: (l: Log) => boolean): Promise<Log> {
    const found = this.logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`log line not seen in 20 s:\n${this.raw}${this.stderr}`)),
        20_000,
      );
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void this.exit.then((c) => reject(new Error(`daemon exited ${c}:\n${this.raw}${this.stderr}`)));
    });
  }
  kill(signal: NodeJS.Signals): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }
}

describe('the daemon as the service runs it', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-svcd-'));
  const home = path.join(tmp, 'home');
  const runtime = path.join(tmp, 'run');
  const configFile = path.join(home, '.config', 'ssmtun', 'config.toml');
  let sim: SimProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let unit: { argv: string[]; env: Record<string, string> };
  let env: NodeJS.ProcessEnv;
  let apiPort: number;
  const ports = { keep: 0, change: 0, gone: 0, added: 0, busy: 0 };
  let blocker: net.Server;
  const daemons: Daemon[] = [];

  const toml = (names: Array<keyof typeof ports>, extra: Partial<Record<string, string>> = {}) =>
    `[daemon]\napi_port = ${apiPort}\n\n${names
      .map((n) => tunnelToml(sim, { name: n, localPort: ports[n], remotePort: echo.port, extra: extra[n] }))
      .join('\n')}`;
  const start = (args: string[] = []) => {
    const d = new Daemon(
      spawn(unit.argv[0], [...unit.argv.slice(1), ...args], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: home,
      }),
    );
    daemons.push(d);
    return d;
  };
  const api = async <T>(p: string): Promise<T> =>
    (await fetch(`http://127.0.0.1:${apiPort}${p}`)).json() as Promise<T>;
  const status = (name: string) => api<Status>(`/tunnels/${name}`);
  const cli = (...args: string[]) => runCommand([unit.argv[0], unit.argv[1], ...args]);

  beforeAll(async () => {
    let script: string;
    [script, sim, echo] = await Promise.all([
      compiledCli(),
      startSimProcess(['--no-pacing']),
      startEchoServer(),
    ]);
    apiPort = await freePort();
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(ports.busy, '127.0.0.1', () => r()));
    mkdirSync(path.join(home, '.aws'), { recursive: true });
    mkdirSync(runtime, { mode: 0o700 });
    writeFileSync(
      path.join(home, '.aws', 'credentials'),
      `[default]\naws_access_key_id = ${sim.accessKeyId}\naws_secret_access_key = ${sim.secretAccessKey}\n`,
    );
    mkdirSync(path.dirname(configFile), { recursive: true });
    writeFileSync(configFile, toml(['keep', 'change', 'gone', 'busy']));
    const plan = linuxInstallPlan(
      {
        platform: 'linux',
        home,
        uid: process.getuid?.() ?? 0,
        env: { PATH: process.env.PATH },
        nodePath: process.execPath,
        scriptPath: script,
        configPath: configFile,
        apiPort,
        version: '0.1.0',
        run: runCommand,
        out: () => {},
      },
      { sandbox: true },
    );
    unit = fromUnit(plan.files[0].content);
    // What the systemd user manager gives a unit: HOME/USER/LOGNAME, XDG_RUNTIME_DIR, RUNTIME_DIRECTORY
    // (RuntimeDirectory=ssmtun) and the unit's Environment=. Nothing from this test process leaks in.
    env = {
      HOME: home,
      USER: 'ssmtun-test',
      LOGNAME: 'ssmtun-test',
      LANG: 'C.UTF-8',
      XDG_RUNTIME_DIR: runtime,
      RUNTIME_DIRECTORY: path.join(runtime, 'ssmtun'),
      ...unit.env,
    };
  }, 90_000);

  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await Promise.all(daemons.map((d) => d.exit));
    await Promise.all([sim?.stop(), echo?.close(), new Promise((r) => blocker?.close(r))]);
    rmSync(tmp, { recursive: true, force: true });
  });

  async function echoOn(sock: net.Socket, seed: number): Promise<boolean> {
    const data = pseudoRandomBytes(20_000, seed);
    sock.write(data);
    return (await readExactly(sock, data.length)).equals(data);
  }

  it('runs the unit ExecStart: ready, /health, wait, clean JSON log, a second copy refused, SIGHUP reload, SIGTERM', async () => {
    expect(unit.argv.slice(2)).toEqual(['daemon', '--config', configFile]);
    expect(path.isAbsolute(unit.argv[0]) && path.isAbsolute(unit.argv[1])).toBe(true);
    expect((await cli('wait', '--api-port', String(apiPort), '--timeout', '200ms')).code).toBe(1);

    const d = start();
    const waited = await cli('wait', '--api-port', String(apiPort), '--timeout', '30s');
    expect(waited.code, waited.stderr).toBe(0);
    const ready = await d.waitFor((l) => l.msg === 'ssmtun daemon ready');
    expect(ready.pid).toBe(d.proc.pid);
    expect(await api('/health')).toMatchObject({ ok: true, tunnels: 4 });

    // A busy port is retried with back-off and shown in the status, then taken once it is free.
    const busy = await status('busy');
    expect(busy.listening).toEqual([]);
    expect(busy.lastError?.code).toBe('LISTEN_FAILED');
    expect(busy.listenRetry?.attempt).toBeGreaterThanOrEqual(1);
    await new Promise((r) => blocker.close(r));
    await expect
      .poll(async () => (await status('busy')).listening, { timeout: 10_000 })
      .toEqual(['127.0.0.1']);
    expect((await status('busy')).listenRetry).toBeUndefined();

    // Sessions on three tunnels; the one on `keep` stays connected through everything below.
    const keepSock = await connect(ports.keep);
    expect(await echoOn(keepSock, 1)).toBe(true);
    const changeSock = await connect(ports.change);
    expect(await echoOn(changeSock, 2)).toBe(true);
    const goneSock = await connect(ports.gone);
    expect(await echoOn(goneSock, 3)).toBe(true);
    const before = { keep: (await status('keep')).sessionId!, change: (await status('change')).sessionId! };
    const goneSession = (await status('gone')).sessionId!;
    expect(before.keep && before.change && goneSession).toBeTruthy();

    // The SDK's Node-version notice (Node < 22) is one JSON record, never free text on stderr.
    if (Number(process.versions.node.split('.')[0]) < 22) {
      const w = await d.waitFor(
        (l) => typeof l.msg === 'string' && l.msg.includes('NodeVersionSupportWarning'),
      );
      expect(w.level).toBe(40);
    }
    expect(d.stderr).toBe('');

    // A second daemon for the same config exits 1 and names the first.
    const second = start();
    expect(await second.exit).toBe(1);
    expect(second.logs.find((l) => l.code === 'ALREADY_RUNNING')).toMatchObject({ pid: d.proc.pid });
    expect(second.raw).toContain(`pid ${d.proc.pid}`);

    // SIGHUP: `gone` removed, `change` changed, `added` new, `keep` and `busy` untouched (moved to other lines).
    writeFileSync(configFile, toml(['added', 'busy', 'change', 'keep'], { change: 'idle_timeout = "5m"' }));
    d.kill('SIGHUP');
    const reloaded = await d.waitFor((l) => l.msg === 'config reloaded');
    expect(reloaded).toMatchObject({ added: ['added'], removed: ['gone'], changed: ['change'] });
    expect([...(reloaded.unchanged as string[])].sort()).toEqual(['busy', 'keep']);
    expect(await echoOn(keepSock, 4)).toBe(true);
    expect((await status('keep')).sessionId).toBe(before.keep);
    const st = await sim.state();
    expect(st.sessions.find((s) => s.sessionId === before.change)?.status).toBe('Terminated');
    expect(st.sessions.find((s) => s.sessionId === goneSession)?.status).toBe('Terminated');
    expect(st.sessions.find((s) => s.sessionId === before.keep)?.status).not.toBe('Terminated');
    await expect(connect(ports.gone)).rejects.toThrow(/ECONNREFUSED/);
    const addedSock = await connect(ports.added);
    expect(await echoOn(addedSock, 5)).toBe(true);
    addedSock.destroy();
    const names = async () =>
      (await api<{ tunnels: Status[] }>('/tunnels')).tunnels.map((t) => t.name).sort();
    expect(await names()).toEqual(['added', 'busy', 'change', 'keep']);

    // A broken config is refused as a whole: the error names file:line, nothing changes.
    writeFileSync(configFile, `${toml(['keep'])}\nremote_prot = 1\n`);
    d.kill('SIGHUP');
    const refused = await d.waitFor(
      (l) => typeof l.msg === 'string' && l.msg.startsWith('config not reloaded'),
    );
    expect(refused.msg).toContain(`${configFile}:`);
    expect(refused.msg).toMatch(/remote_prot/);
    expect(await names()).toEqual(['added', 'busy', 'change', 'keep']);
    expect(await echoOn(keepSock, 6)).toBe(true);
    expect((await status('keep')).sessionId).toBe(before.keep);

    // SIGTERM: every session terminated, exit 0, within 2 s.
    const open = (await api<{ tunnels: Status[] }>('/tunnels')).tunnels.filter((t) => t.sessionId);
    const t0 = performance.now();
    d.kill('SIGTERM');
    expect(await d.exit).toBe(0);
    expect(performance.now() - t0).toBeLessThan(2000);
    const after = await sim.state();
    for (const t of open)
      expect(after.sessions.find((s) => s.sessionId === t.sessionId)?.status).toBe('Terminated');
    keepSock.destroy();
    changeSock.destroy();
    goneSock.destroy();
    expect(d.stderr).toBe('');
  });

  it('exits 1 after saying why when no tunnel can listen', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.listen(ports.keep, '127.0.0.1', () => resolve());
    });
    try {
      const only = path.join(tmp, 'only-busy.toml');
      writeFileSync(only, toml(['keep']));
      const d = start(['--config', only]);
      expect(await d.exit).toBe(1);
      const why = d.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('no tunnel could listen'));
      expect(JSON.stringify(why)).toMatch(/EADDRINUSE/);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});
