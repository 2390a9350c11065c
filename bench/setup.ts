/**
 * The processes under test, each in its own process like a user runs them: the simulator
 * (`ssmtun sim --json`) and the daemon (`ssmtun daemon --config FILE`), plus the simulated instances
 * the two pacing sections use. By default both run from a compiled build in the temp dir (what
 * `npm run build` ships), because tsx's loader alone adds ~30 MB to a process's RSS; `--runtime tsx`
 * runs the sources instead.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { apiKeyFile } from '../src/daemon/paths.js';
import { freePort } from '../src/sim/net.js';
import { isListening } from './procfs.js';
import { log, pollUntil, sleep, withTimeout } from './util.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/**
 * Outside the project (so linters and git never see it), with node_modules linked back to ours; one per
 * checkout.
 */
const BUILD_ROOT = path.join(
  os.tmpdir(),
  `ssmtun-bench-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}`,
);
const BUILD_DIR = path.join(BUILD_ROOT, 'dist');

export type Runtime = 'build' | 'tsx';

export interface SimInfo {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface Proc {
  proc: ChildProcess;
  pid: number;
  /** Last few KB of stdout+stderr, for error messages. */
  tail(): string;
  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
}

/** Every child we started, so an abort can end them (by pid, never by name). */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

const tmpDirs: string[] = [];
process.on('exit', () => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});
export function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

export function exited(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((r) => proc.once('exit', (code) => r(code)));
}

/** Spawns a process with piped output kept as a bounded tail, and registers it for cleanup. */
export function spawnTracked(file: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Proc {
  const proc = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  proc.on('error', () => {});
  let tail = '';
  const keep = (d: Buffer) => {
    tail = (tail + d.toString('utf8')).slice(-4000);
  };
  proc.stderr?.on('data', keep);
  if (!proc.pid) throw new Error(`could not start ${file}`);
  return {
    proc,
    pid: proc.pid,
    tail: () => tail,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      try {
        return await withTimeout(exited(proc), graceMs, `${path.basename(file)} exit`);
      } catch {
        proc.kill('SIGKILL');
        return await exited(proc);
      }
    },
  };
}

function newestMtime(dir: string, depth = 0): number {
  if (depth > 6) return 0;
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(
      newest,
      e.isDirectory() ? newestMtime(p, depth + 1) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0,
    );
  }
  return newest;
}

/** Compiles src/ into BUILD_DIR unless that build is newer than every source file. */
export async function ensureBuild(): Promise<void> {
  const stamp = path.join(BUILD_ROOT, '.stamp');
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= newestMtime(path.join(ROOT, 'src'))) return;
  log(`compiling src/ into ${BUILD_DIR} (tsc)`);
  rmSync(BUILD_ROOT, { recursive: true, force: true });
  mkdirSync(BUILD_DIR, { recursive: true });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(BUILD_ROOT, 'node_modules'), 'dir');
  // The CLI reads its version from ../../package.json of the build (the daemon's /health needs it).
  const { name, version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  writeFileSync(
    path.join(BUILD_ROOT, 'package.json'),
    `${JSON.stringify({ name, version, type: 'module' })}\n`,
  );
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await new Promise<void>((resolve, reject) =>
    execFile(
      process.execPath,
      [tsc, '-p', 'tsconfig.build.json', '--outDir', BUILD_DIR, '--sourceMap', 'false'],
      { cwd: ROOT, timeout: 180_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`tsc failed: ${stdout}${stderr}${err.message}`)) : resolve(),
    ),
  );
  writeFileSync(stamp, new Date().toISOString());
}

/** node arguments that run `ssmtun <args>` with the chosen runtime. */
export function cliArgs(runtime: Runtime, nodeArgs: string[], args: string[]): string[] {
  return runtime === 'build'
    ? [...nodeArgs, path.join(BUILD_DIR, 'cli', 'index.js'), ...args]
    : [...nodeArgs, '--import', 'tsx', path.join(ROOT, 'src', 'cli', 'index.ts'), ...args];
}

export interface SimProcess extends Proc, SimInfo {
  control(pathname: string, body?: unknown): Promise<unknown>;
}

export async function startSim(runtime: Runtime, port = 0, nodeArgs: string[] = []): Promise<SimProcess> {
  const p = spawnTracked(
    process.execPath,
    cliArgs(runtime, nodeArgs, ['sim', '--json', '--port', String(port)]),
    {
      ...process.env,
      SSMTUN_LOG_LEVEL: 'warn',
    },
  );
  const first = await withTimeout(
    new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: p.proc.stdout! });
      rl.once('line', (l) => resolve(l));
      p.proc.once('exit', (code) => reject(new Error(`sim exited ${code}: ${p.tail()}`)));
    }),
    30_000,
    'simulator start',
  );
  p.proc.stdout!.resume();
  const info = JSON.parse(first) as SimInfo;
  const control = async (pathname: string, body?: unknown) => {
    const res = await fetch(`${info.endpoint}${pathname}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${pathname}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return { ...p, ...info, control };
}

/** The two simulated instances the sections run against: same agent version, pacing off / on. */
export const INSTANCES = {
  unpaced: 'i-0bec0000000000001',
  paced: 'i-0bec0000000000002',
} as const;
export type SectionName = keyof typeof INSTANCES;

export async function addInstances(sim: SimProcess): Promise<void> {
  for (const [name, id] of Object.entries(INSTANCES)) {
    await sim.control('/_sim/instances', {
      id,
      tags: { Name: `bench-${name}` },
      agentVersion: '3.3.987.0',
      agent: { pacing: name === 'paced' },
    });
  }
}

export interface TunnelDef {
  name: string;
  target: string;
  remotePort: number;
  localPort: number;
  /** Session pool size; written only when > 1, so a build without pools still takes the config. */
  sessions?: number;
  /** Default 127.0.0.1 (the bench's own servers); a simulated RDS name for the IAM tunnel. */
  remoteHost?: string;
  /** More config lines for the tunnel (auth = "iam" and its keys). */
  extra?: string[];
}

function tunnelToml(sim: SimInfo, t: TunnelDef): string {
  return [
    `[tunnels.${t.name}]`,
    `region = "${sim.region}"`,
    `target = "${t.target}"`,
    `remote_host = "${t.remoteHost ?? '127.0.0.1'}"`,
    `remote_port = ${t.remotePort}`,
    `local_port = ${t.localPort}`,
    'bind = ["127.0.0.1"]',
    `endpoint = "${sim.endpoint}"`,
    ...(t.sessions !== undefined && t.sessions > 1 ? [`sessions = ${t.sessions}`] : []),
    ...(t.extra ?? []),
    '',
  ].join('\n');
}

/** Environment that points the AWS SDK at the simulator and nowhere else. */
export function awsEnv(sim: SimInfo, dir: string): NodeJS.ProcessEnv {
  return {
    AWS_ACCESS_KEY_ID: sim.accessKeyId,
    AWS_SECRET_ACCESS_KEY: sim.secretAccessKey,
    AWS_REGION: sim.region,
    AWS_DEFAULT_REGION: sim.region,
    AWS_PROFILE: '',
    AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

export interface DaemonProcess extends Proc {
  apiPort: number;
  api<T = unknown>(pathname: string, method?: 'GET' | 'POST'): Promise<T>;
}

export async function startDaemon(
  sim: SimInfo,
  tunnels: TunnelDef[],
  opts: { runtime: Runtime; nodeArgs?: string[] },
): Promise<DaemonProcess> {
  const dir = tempDir('ssmtun-bench-');
  const apiPort = await freePort();
  const configFile = path.join(dir, 'config.toml');
  writeFileSync(
    configFile,
    `[daemon]\napi_port = ${apiPort}\nlog_level = "warn"\n\n${tunnels.map((t) => tunnelToml(sim, t)).join('\n')}`,
    { mode: 0o600 },
  );
  // Its own state and runtime dirs: the API key, the unix socket and the state file of each bench
  // daemon stay apart from each other's and from the user's own daemon.
  const dirs = { XDG_STATE_HOME: path.join(dir, 'state'), XDG_RUNTIME_DIR: path.join(dir, 'run') };
  mkdirSync(dirs.XDG_RUNTIME_DIR, { mode: 0o700 });
  const p = spawnTracked(
    process.execPath,
    cliArgs(opts.runtime, opts.nodeArgs ?? [], ['daemon', '--config', configFile]),
    { ...process.env, ...awsEnv(sim, dir), ...dirs, SSMTUN_LOG_LEVEL: 'warn' },
  );
  let key: string | undefined;
  const authorization = () => {
    // Written by the daemon as it starts; changing calls (POST) need it.
    key ??= readFileSync(apiKeyFile(dirs), 'utf8').trim();
    return `Bearer ${key}`;
  };
  p.proc.stdout!.on('data', () => {}); // JSON log lines (warnings only); not needed here
  const api = async <T>(pathname: string, method: 'GET' | 'POST' = 'GET') => {
    const res = await fetch(`http://127.0.0.1:${apiPort}${pathname}`, {
      method,
      headers: method === 'GET' ? {} : { authorization: authorization() },
      signal: AbortSignal.timeout(30_000),
    });
    return (await res.json()) as T;
  };
  await pollUntil(
    async () => {
      if (p.proc.exitCode !== null) throw new Error(`daemon exited ${p.proc.exitCode}: ${p.tail()}`);
      try {
        const h = await api<{ ok?: boolean }>('/health');
        return h.ok ? true : undefined;
      } catch {
        return undefined;
      }
    },
    30_000,
    'daemon API',
    50,
  );
  return { ...p, apiPort, api };
}

/** Closes a tunnel's sessions and waits until it has none (TerminateSession takes a round trip). */
export async function closeTunnel(daemon: DaemonProcess, name: string): Promise<void> {
  await daemon.api(`/tunnels/${name}/close`, 'POST');
  await pollUntil(
    async () => {
      // A pool's status may list its members; the tunnel is closed when neither shows a session.
      const st = await daemon.api<{ sessionId?: string; sessions?: Array<{ sessionId?: string }> }>(
        `/tunnels/${name}`,
      );
      const live = (st.sessions ?? []).filter((m) => m.sessionId).length;
      return st.sessionId || live > 0 ? undefined : true;
    },
    10_000,
    `tunnel ${name} without a session`,
    20,
  );
}

/** Waits until something listens on `port`, failing early if `proc` exits. */
export async function waitListening(port: number, timeoutMs: number, proc?: Proc): Promise<void> {
  await pollUntil(
    () => {
      if (proc && proc.proc.exitCode !== null) {
        throw new Error(`exited ${proc.proc.exitCode} before listening on ${port}: ${proc.tail()}`);
      }
      return isListening(port) ? true : undefined;
    },
    timeoutMs,
    `port ${port}`,
    5,
  );
}

export { freePort, sleep };
