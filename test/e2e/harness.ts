/**
 * Whole-system harness: the simulator and the daemon each in their own process, talking over real
 * sockets on loopback, exactly as a user runs them. Tests observe the simulator through its /_sim/
 * control endpoints and the daemon through its API and its JSON log.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/net.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'src', 'cli', 'index.ts');

export interface SimInfo {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  instances: Array<{ id: string; tags: Record<string, string> }>;
  /** Simulated RDS endpoints (`ssmtun sim --rds NAME=HOST:PORT`). */
  databases?: Array<{ name: string; host: string; port: number; caFile: string }>;
}

export interface SimProcess extends SimInfo {
  proc: ChildProcess;
  state(): Promise<SimState>;
  control(pathname: string, body: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

export interface SimState {
  sessions: Array<{
    sessionId: string;
    status: string;
    target: string;
    terminateReason?: string;
    agent: unknown;
  }>;
  calls: Array<{ op: string; target?: string; sessionId?: string; error?: string }>;
  databases?: Array<{ name: string; host: string; port: number; stats: { logins: number } }>;
  [k: string]: unknown;
}

function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, SSMTUN_LOG_LEVEL: env.SSMTUN_LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function exited(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((r) => proc.once('exit', (code) => r(code)));
}

export async function startSimProcess(flags: string[] = []): Promise<SimProcess> {
  const proc = spawnCli(['sim', '--json', ...flags]);
  const stderr: string[] = [];
  proc.stderr!.on('data', (d) => stderr.push(String(d)));
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.once('line', (l) => resolve(l));
    proc.once('exit', (code) => reject(new Error(`sim exited ${code}: ${stderr.join('').slice(-2000)}`)));
  });
  const info = JSON.parse(first) as SimInfo;
  const control = async (pathname: string, body?: unknown) => {
    const res = await fetch(`${info.endpoint}${pathname}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${pathname}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return {
    ...info,
    proc,
    state: () => control('/_sim/state') as Promise<SimState>,
    control,
    async stop() {
      proc.kill('SIGTERM');
      await exited(proc);
    },
  };
}

export interface DaemonProcess {
  proc: ChildProcess;
  apiPort: number;
  configFile: string;
  /** The daemon's own XDG dirs (state: API key; runtime: unix socket; cache: CA bundle) live here. */
  dir: string;
  /** Environment for CLI commands that should find this daemon (same XDG dirs and AWS identity). */
  env: NodeJS.ProcessEnv;
  /** The API key the daemon made at start. */
  apiKey(): string;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  rawLog(): string;
  /** Over TCP with the API key (as the CLI does). */
  api<T = unknown>(pathname: string, method?: 'GET' | 'POST'): Promise<T>;
  waitForLog(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface TunnelSpec {
  name: string;
  localPort: number;
  remotePort: number;
  remoteHost?: string;
  target?: string;
  targetTag?: string;
  idleTimeout?: string;
  extra?: string;
}

export function tunnelToml(sim: SimInfo, t: TunnelSpec): string {
  const target = t.targetTag
    ? `target_tag = "${t.targetTag}"`
    : `target = "${t.target ?? sim.instances[0].id}"`;
  return [
    `[tunnels.${t.name}]`,
    `region = "${sim.region}"`,
    target,
    `remote_host = "${t.remoteHost ?? '127.0.0.1'}"`,
    `remote_port = ${t.remotePort}`,
    `local_port = ${t.localPort}`,
    `bind = ["127.0.0.1"]`,
    `endpoint = "${sim.endpoint}"`,
    t.idleTimeout ? `idle_timeout = "${t.idleTimeout}"` : '',
    t.extra ?? '',
    '',
  ].join('\n');
}

const tmpDirs: string[] = [];
process.on('exit', () => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `ssmtun ARGS` to completion (stdin closed); never left running after the test. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => {
    stdout += String(d);
  });
  proc.stderr!.on('data', (d) => {
    stderr += String(d);
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return exited(proc).then((code) => {
    clearTimeout(timer);
    return { code, stdout, stderr };
  });
}

export async function startDaemonProcess(
  sim: SimInfo,
  tunnels: TunnelSpec[],
  extraEnv: NodeJS.ProcessEnv = {},
  daemonToml = '',
): Promise<DaemonProcess> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-e2e-'));
  tmpDirs.push(dir);
  const apiPort = await freePort();
  const configFile = path.join(dir, 'config.toml');
  writeFileSync(
    configFile,
    `[daemon]\napi_port = ${apiPort}\n${daemonToml}\n\n${tunnels.map((t) => tunnelToml(sim, t)).join('\n')}`,
    {
      mode: 0o600,
    },
  );
  const env: NodeJS.ProcessEnv = {
    AWS_ACCESS_KEY_ID: sim.accessKeyId,
    AWS_SECRET_ACCESS_KEY: sim.secretAccessKey,
    AWS_REGION: sim.region,
    AWS_PROFILE: '',
    AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
    // Never the real user's key, socket or caches; and each daemon its own, so tests run in parallel.
    XDG_STATE_HOME: path.join(dir, 'state'),
    XDG_RUNTIME_DIR: path.join(dir, 'run'),
    XDG_CACHE_HOME: path.join(dir, 'cache'),
    SSMTUN_CONFIG: configFile,
    ...extraEnv,
  };
  return spawnDaemon(dir, configFile, apiPort, env);
}

/** A new daemon process on the same config, state dir and port (as after a reboot or a service restart). */
export async function restartDaemon(d: DaemonProcess): Promise<DaemonProcess> {
  await d.stop();
  return spawnDaemon(d.dir, d.configFile, d.apiPort, d.env);
}

async function spawnDaemon(
  dir: string,
  configFile: string,
  apiPort: number,
  env: NodeJS.ProcessEnv,
): Promise<DaemonProcess> {
  const proc = spawnCli(['daemon', '--config', configFile], env);
  const logs: Array<Record<string, unknown>> = [];
  let raw = '';
  const waiters = new Set<{
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }>();
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (line) => {
    raw += `${line}\n`;
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(line);
    } catch {
      return;
    }
    logs.push(l);
    for (const w of waiters) {
      if (w.pred(l)) {
        waiters.delete(w);
        w.resolve(l);
      }
    }
  });
  proc.stderr!.on('data', (d) => {
    raw += String(d);
  });
  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 20_000) => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const w = { pred, resolve };
      waiters.add(w);
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`daemon log line not seen within ${timeoutMs} ms; log:\n${raw.slice(-3000)}`));
      }, timeoutMs);
      timer.unref();
      proc.once('exit', () => reject(new Error(`daemon exited ${proc.exitCode}; log:\n${raw.slice(-3000)}`)));
    });
  };
  await waitForLog((l) => l.msg === 'ssmtun daemon ready');
  const apiKey = () => readFileSync(path.join(dir, 'state', 'ssmtun', 'api-key'), 'utf8').trim();
  return {
    proc,
    apiPort,
    configFile,
    dir,
    env,
    apiKey,
    logs,
    rawLog: () => raw,
    async api<T>(pathname: string, method: 'GET' | 'POST' = 'GET') {
      const res = await fetch(`http://127.0.0.1:${apiPort}${pathname}`, {
        method,
        headers: { authorization: `Bearer ${apiKey()}` },
      });
      return (await res.json()) as T;
    },
    waitForLog,
    async stop() {
      proc.kill('SIGTERM');
      return exited(proc);
    },
  };
}

export function countCalls(state: SimState, op: string): number {
  return state.calls.filter((c) => c.op === op && !c.error).length;
}
