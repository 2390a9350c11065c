// Throw-away MariaDB servers (for the MySQL end-to-end tests): mariadb-install-db into a temp dir, one mariadbd
// listening on 127.0.0.1 only, no durability, torn down by stop(), on process exit, or by a watchdog if the process dies.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './net.js';
import { type StopCommand, ThrowawayGuard } from './throwaway.js';

export interface MariaDb {
  host: '127.0.0.1';
  port: number;
  /** Temp dir holding data/, the socket and the error log. Removed by stop(). */
  dir: string;
  socket: string;
  /** Absolute path of the client (`mariadb`, else `mysql`). */
  client: string;
  /** Runs the real client over the unix socket (`-N -B -e query`); resolves trimmed stdout, rejects with stderr. */
  sql(query: string, opts?: { user?: string }): Promise<string>;
  /** SIGKILL the server (nothing here needs durability), then remove dir. Idempotent. */
  stop(): Promise<void>;
}

const INSTALL_HINT =
  'MariaDB not found (mariadbd, mariadb-install-db and the mariadb client, looked at PATH, /usr/sbin and ' +
  '/usr/bin). Install it with `sudo .ci/install-mariadb.sh` (Debian: apt-get install mariadb-server mariadb-client).';

function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/bin'];
  for (const d of dirs) {
    const p = path.join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function tools(): { server: string; installDb: string; client: string } | undefined {
  const server = findTool('mariadbd');
  const installDb = findTool('mariadb-install-db');
  const client = findTool('mariadb') ?? findTool('mysql');
  return server && installDb && client ? { server, installDb, client } : undefined;
}

/** True when the MariaDB server, its installer and a client are installed. */
export function mariadbAvailable(): boolean {
  return tools() !== undefined;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** Environment without the client's MYSQL_* settings, so a developer's variables don't leak into tests. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('MYSQL') && !k.startsWith('MARIADB')) env[k] = v;
  return env;
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: cleanEnv(), cwd: os.tmpdir(), encoding: 'utf8', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as { code?: unknown }).code;
          reject(
            new Error(
              `${path.basename(file)} failed (${String(code)}): ${(stderr || stdout || err.message).trim()}`,
            ),
          );
        } else resolve(stdout);
      },
    );
  });
}

function killPid(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** SIGKILL from outside (the exit hook, the watchdog): nothing here needs durability. */
const killCommand = (pid: number): StopCommand => ['sh', ['-c', 'kill -9 "$1"', 'sh', String(pid)]];

/** Resolves once mariadbd says it is ready; rejects with its output if it exits first. */
function waitReady(server: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/ready for connections/.test(out)) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(
        Object.assign(
          new Error(`mariadbd exited (${code}) before it was ready:\n${out.trim().slice(-3000)}`),
          { out },
        ),
      );
    };
    const cleanup = () => {
      server.stderr?.off('data', onData);
      server.off('exit', onExit);
    };
    server.stderr?.on('data', onData);
    server.once('exit', onExit);
  });
}

/** Start a fresh server on 127.0.0.1:<free port>; `root` logs in over the socket with no password. */
export async function startMariaDb(): Promise<MariaDb> {
  const t = tools();
  if (!t) throw new Error(INSTALL_HINT);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ssmtun-mdb-'));
  const dataDir = path.join(dir, 'data');
  const socket = path.join(dir, 'sock');
  const guard = new ThrowawayGuard('ssmtun-mariadb-watchdog', dir);
  let current: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const server = current;
      if (server && server.exitCode === null && server.signalCode === null) {
        // The server is unref'd once ready: hold the event loop until it has really gone.
        server.ref();
        const gone = new Promise((r) => server.once('exit', r));
        killPid(server.pid);
        await gone;
      }
      await rm(dir, { recursive: true, force: true });
      // Only now: until here the exit hook and the watchdog still clean up if this process dies.
      guard.release();
    })();
    return stopping;
  };
  // mariadbd refuses to run as root unless told to; the data dir is ours either way.
  const asUser = isRoot() ? ['--user=root'] : [];
  try {
    await run(t.installDb, [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      ...asUser,
    ]);
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort('127.0.0.1');
      const server = spawn(
        t.server,
        [
          '--no-defaults',
          `--datadir=${dataDir}`,
          `--socket=${socket}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--pid-file=${path.join(dir, 'pid')}`,
          '--skip-name-resolve',
          '--skip-log-bin',
          '--innodb-buffer-pool-size=16M',
          '--innodb-flush-log-at-trx-commit=0',
          '--innodb-doublewrite=0',
          '--max-connections=100',
          ...asUser,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], cwd: os.tmpdir(), env: cleanEnv() },
      );
      current = server;
      if (server.pid) guard.watch(killCommand(server.pid));
      try {
        await waitReady(server);
        // Keep draining its log so it never blocks on a full pipe, without keeping this process alive.
        server.stderr?.resume();
        (server.stderr as unknown as { unref?: () => void }).unref?.();
        server.unref();
        break;
      } catch (err) {
        guard.unwatch();
        const inUse = /Address already in use|Bind on TCP\/IP port/i.test(
          String((err as { out?: string }).out),
        );
        if (inUse && attempt < 3) continue;
        throw err;
      }
    }
    return {
      host: '127.0.0.1',
      port,
      dir,
      socket,
      client: t.client,
      async sql(query, o = {}) {
        const out = await run(t.client, [
          '--no-defaults',
          '--protocol=socket',
          `--socket=${socket}`,
          `--user=${o.user ?? 'root'}`,
          '-N',
          '-B',
          '-e',
          query,
        ]);
        return out.trim();
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `mariadbd --version`, for reports; undefined when not installed. */
export function mariadbVersion(): string | undefined {
  const t = tools();
  if (!t) return undefined;
  try {
    return execFileSync(t.server, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}
