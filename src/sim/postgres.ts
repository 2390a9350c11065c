// Throw-away PostgreSQL clusters (for the demo, the benchmarks and the end-to-end tests): initdb into a temp dir, listen on 127.0.0.1 only,
// no durability (fsync off), torn down by stop(), on process exit, or by a watchdog if the process dies.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './net.js';
import { type StopCommand, ThrowawayGuard } from './throwaway.js';

export interface PgCluster {
  host: '127.0.0.1';
  port: number;
  user: string;
  database: string;
  /** Data directory (a fresh temp dir); also holds `sock/` and `log`. Removed by stop(). */
  dir: string;
  socketDir: string;
  binDir: string;
  /**
   * process.env without inherited PG* variables, plus PGHOST/PGPORT/PGUSER/PGDATABASE for this cluster,
   * PGCONNECT_TIMEOUT=5, and binDir prepended to PATH (so `psql`/`pgbench` resolve to the server's version).
   */
  env(): NodeJS.ProcessEnv;
  /** Runs real `psql -X -A -t -v ON_ERROR_STOP=1 -c sql`; resolves trimmed stdout, rejects with stderr. */
  psql(
    sql: string,
    opts?: { port?: number; host?: string; hostaddr?: string; extraEnv?: NodeJS.ProcessEnv },
  ): Promise<string>;
  /** pg_ctl stop -m immediate, then remove dir. Idempotent. */
  stop(): Promise<void>;
}

const INSTALL_HINT =
  'PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: looked at $PG_BIN, ' +
  '/usr/lib/postgresql/*/bin and `pg_config --bindir`. Install them with `sudo .ci/install-postgres.sh` ' +
  '(Debian: apt-get install postgresql postgresql-client) or set PG_BIN.';

const SERVER_TOOLS = ['initdb', 'pg_ctl', 'postgres'];

function hasServerTools(dir: string): boolean {
  return SERVER_TOOLS.every((t) => existsSync(path.join(dir, t)));
}

/** Server bin dir: $PG_BIN, else the highest /usr/lib/postgresql/<v>/bin, else `pg_config --bindir`. */
function findBinDir(): string | undefined {
  if (process.env.PG_BIN) return hasServerTools(process.env.PG_BIN) ? process.env.PG_BIN : undefined;
  const base = '/usr/lib/postgresql';
  try {
    const versions = readdirSync(base)
      .filter((v) => /^\d+(\.\d+)*$/.test(v))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
    for (const v of versions) {
      const dir = path.join(base, v, 'bin');
      if (hasServerTools(dir)) return dir;
    }
  } catch {
    // no Debian-style layout
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dir && hasServerTools(dir)) return dir;
  } catch {
    // no pg_config on PATH
  }
  return undefined;
}

/** True when PostgreSQL server binaries are installed. */
export function pgAvailable(): boolean {
  return findBinDir() !== undefined;
}

/** Absolute path of a PostgreSQL client tool (psql, pgbench, ...): from the server bin dir if there, else PATH. */
export function pgTool(name: string): string {
  const dir = findBinDir();
  const p = dir ? path.join(dir, name) : '';
  return p && existsSync(p) ? p : name;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

let postgresIds: { uid: number; gid: number } | undefined;
function postgresUser(): { uid: number; gid: number } {
  if (!postgresIds) {
    try {
      const id = (flag: string) =>
        Number(
          execFileSync('id', [flag, 'postgres'], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          }).trim(),
        );
      postgresIds = { uid: id('-u'), gid: id('-g') };
    } catch (err) {
      throw new Error(
        `running as root, but there is no 'postgres' system user to run the server as (${String(err)}). ${INSTALL_HINT}`,
      );
    }
  }
  return postgresIds;
}

/** Command line for a server tool: as the `postgres` user when we are root (the server refuses root). */
function serverCommand(bin: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

/** Environment without inherited libpq settings, so a developer's PG* variables don't leak into tests. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return env;
}

function run(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: opts.env ?? cleanEnv(), cwd: opts.cwd, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as { code?: unknown }).code;
          const detail = (stderr || stdout || err.message).trim();
          const e = new Error(`${path.basename(file)} ${args.join(' ')} failed (${String(code)}): ${detail}`);
          Object.assign(e, { stdout, stderr, exitCode: code });
          reject(e);
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/** pg_ctl stop -m immediate for this cluster (run as postgres when we are root). */
function stopCommand(binDir: string, dir: string): StopCommand {
  return serverCommand(path.join(binDir, 'pg_ctl'), ['stop', '-D', dir, '-m', 'immediate', '-w']);
}

async function fileSize(p: string): Promise<number> {
  try {
    return (await stat(p)).size;
  } catch {
    return 0;
  }
}

async function readFrom(p: string, offset: number): Promise<string> {
  try {
    return (await readFile(p)).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

/** Start a fresh cluster on 127.0.0.1:<free port>, trust auth, user/database `postgres`. */
export async function startPostgres(opts: { maxConnections?: number } = {}): Promise<PgCluster> {
  const binDir = findBinDir();
  if (!binDir) throw new Error(INSTALL_HINT);
  const root = isRoot();
  const owner = root ? postgresUser() : undefined;
  const maxConnections = opts.maxConnections ?? 50;

  const dir = await mkdtemp(path.join(os.tmpdir(), 'ssmtun-pg-'));
  const socketDir = path.join(dir, 'sock');
  const logFile = path.join(dir, 'log');
  const guard = new ThrowawayGuard('ssmtun-pg-watchdog', dir, cleanEnv());
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      guard.release();
      const [file, args] = stopCommand(binDir, dir);
      await run(file, args, { cwd: os.tmpdir() }).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    if (owner) chownSync(dir, owner.uid, owner.gid);
    guard.watch(stopCommand(binDir, dir));

    const [initFile, initArgs] = serverCommand(path.join(binDir, 'initdb'), [
      '-D',
      dir,
      '--auth=trust',
      '-U',
      'postgres',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C',
    ]);
    await run(initFile, initArgs, { cwd: os.tmpdir() });
    await mkdir(socketDir, { mode: 0o700 });
    if (owner) await chown(socketDir, owner.uid, owner.gid);

    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort('127.0.0.1');
      const settings = [
        'listen_addresses=127.0.0.1',
        `port=${port}`,
        `unix_socket_directories='${socketDir}'`,
        'fsync=off',
        'synchronous_commit=off',
        'full_page_writes=off',
        `max_connections=${maxConnections}`,
      ];
      const logOffset = await fileSize(logFile);
      const [file, args] = serverCommand(path.join(binDir, 'pg_ctl'), [
        '-w',
        '-D',
        dir,
        '-o',
        settings.map((s) => `-c ${s}`).join(' '),
        '-l',
        logFile,
        'start',
      ]);
      try {
        await run(file, args, { cwd: os.tmpdir() });
        break;
      } catch (err) {
        const log = await readFrom(logFile, logOffset);
        const inUse = /Address already in use|could not bind|could not create any TCP\/IP sockets/i.test(log);
        if (inUse && attempt < 3) continue;
        throw new Error(`${(err as Error).message}\n--- server log ---\n${log.trim()}`);
      }
    }

    const cluster: PgCluster = {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      database: 'postgres',
      dir,
      socketDir,
      binDir,
      env() {
        const env = cleanEnv();
        env.PATH = env.PATH ? `${binDir}${path.delimiter}${env.PATH}` : binDir;
        env.PGHOST = '127.0.0.1';
        env.PGPORT = String(port);
        env.PGUSER = 'postgres';
        env.PGDATABASE = 'postgres';
        env.PGCONNECT_TIMEOUT = '5';
        return env;
      },
      async psql(sql, o = {}) {
        const env = cluster.env();
        if (o.port !== undefined) env.PGPORT = String(o.port);
        if (o.host !== undefined) env.PGHOST = o.host;
        if (o.hostaddr !== undefined) env.PGHOSTADDR = o.hostaddr;
        Object.assign(env, o.extraEnv);
        const { stdout } = await run(pgTool('psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
          env,
        });
        return stdout.trim();
      },
      stop,
    };
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}
