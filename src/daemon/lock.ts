/**
 * One daemon per config file and per API port. A second one must say which process already serves
 * them and exit 1, instead of starting with nothing able to listen and reporting success. The locks
 * are pid files created with O_EXCL in $XDG_RUNTIME_DIR/ssmtun (cleared at logout/reboot) or the
 * state dir; a file whose process is gone (a crash, a kill -9) is stale and taken over.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function lockDir(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  // systemd sets RUNTIME_DIRECTORY for RuntimeDirectory=ssmtun: the one place the sandbox lets us write.
  if (env.RUNTIME_DIRECTORY && path.isAbsolute(env.RUNTIME_DIRECTORY)) return env.RUNTIME_DIRECTORY;
  if (env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR))
    return path.join(env.XDG_RUNTIME_DIR, 'ssmtun');
  const state =
    env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME)
      ? env.XDG_STATE_HOME
      : path.join(home, '.local', 'state');
  return path.join(state, 'ssmtun');
}

export class AlreadyRunningError extends Error {
  readonly code = 'ALREADY_RUNNING';
  readonly fix: string;
  constructor(
    readonly pid: number,
    what: string,
  ) {
    super(`another ssmtun daemon (pid ${pid}) already serves ${what}`);
    this.name = 'AlreadyRunningError';
    this.fix = `stop it first (kill ${pid}, or ssmtun service restart if it is the service), or use another config/api_port`;
  }
}

interface LockBody {
  pid: number;
  what: string;
  startedAt: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A recycled pid that is not a node process is not our daemon.
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('daemon');
  } catch {
    return true; // no /proc (macOS): trust kill(0)
  }
}

export class DaemonLock {
  private readonly held: string[] = [];

  constructor(private readonly dir: string = lockDir()) {}

  /** Takes one lock per key, or throws AlreadyRunningError naming the holder; takes none on failure. */
  acquire(keys: Array<{ key: string; what: string }>): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    try {
      for (const k of keys) this.take(k.key, k.what);
    } catch (e) {
      this.release();
      throw e;
    }
  }

  private take(key: string, what: string): void {
    const file = path.join(this.dir, `${key}.pid`);
    const body: LockBody = { pid: process.pid, what, startedAt: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(file, `${JSON.stringify(body)}\n`, { flag: 'wx', mode: 0o600 });
        this.held.push(file);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder: LockBody | undefined;
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as LockBody;
      } catch {
        holder = undefined; // half-written or garbage: stale
      }
      if (holder && holder.pid !== process.pid && alive(holder.pid))
        throw new AlreadyRunningError(holder.pid, what);
      try {
        unlinkSync(file);
      } catch {
        // someone else removed it first; the next exclusive create decides
      }
    }
    throw new Error(`could not take the lock ${file}`);
  }

  /** Removes only the files this process wrote. */
  release(): void {
    for (const file of this.held.splice(0)) {
      try {
        const holder = JSON.parse(readFileSync(file, 'utf8')) as LockBody;
        if (holder.pid === process.pid) unlinkSync(file);
      } catch {
        // already gone
      }
    }
  }
}

export function configLockKey(file: string): string {
  let real = path.resolve(file);
  try {
    real = realpathSync(real);
  } catch {
    // the config may be missing; the daemon fails on it later anyway
  }
  return `config-${createHash('sha256').update(real).digest('hex').slice(0, 16)}`;
}

export function apiLockKey(port: number): string {
  return `api-${port}`;
}
