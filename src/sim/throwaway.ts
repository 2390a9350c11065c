// What the throw-away servers (postgres.ts, mariadb.ts) share: a server and its temp dir must go with
// this process however it ends. A normal exit runs the stop command synchronously from an 'exit' hook;
// a SIGKILL leaves no hook, so a detached watchdog shell waits for this process to die and then runs
// the same stop command and removes the dir.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';

/** How to stop a server from outside: a command, as [file, args]. */
export type StopCommand = [string, string[]];

const guarded = new Set<ThrowawayGuard>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const g of guarded) g.stopNow();
    guarded.clear();
  });
}

/** Guards one server's dir from the moment it exists until release(). */
export class ThrowawayGuard {
  private watchdog: ChildProcess | undefined;
  private stopCommand: StopCommand | undefined;

  constructor(
    /** Shows in `ps` as the watchdog's name, e.g. ssmtun-pg-watchdog. */
    private readonly name: string,
    private readonly dir: string,
    private readonly env?: NodeJS.ProcessEnv,
  ) {
    installExitHook();
    guarded.add(this);
  }

  /** (Re)arms the watchdog with the command that stops the server now being started. */
  watch(stop: StopCommand): void {
    this.unwatch();
    this.stopCommand = stop;
    const script =
      'pid=$1; dir=$2; shift 2; ' +
      'while kill -0 "$pid" 2>/dev/null; do sleep 1; done; ' +
      '"$@" >/dev/null 2>&1; rm -rf "$dir"';
    const child = spawn('sh', ['-c', script, this.name, String(process.pid), this.dir, stop[0], ...stop[1]], {
      detached: true,
      stdio: 'ignore',
      cwd: os.tmpdir(),
      env: this.env,
    });
    child.on('error', () => {}); // best effort
    child.unref();
    this.watchdog = child;
  }

  /** Ends the watchdog (its own process group: the shell and its `sleep`). */
  unwatch(): void {
    const pid = this.watchdog?.pid;
    this.watchdog = undefined;
    if (!pid) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** The server and the dir are gone (stop() did it): nothing left to guard. */
  release(): void {
    guarded.delete(this);
    this.unwatch();
  }

  /** From the exit hook: synchronous, best effort. */
  stopNow(): void {
    this.unwatch();
    if (this.stopCommand) {
      try {
        const [file, args] = this.stopCommand;
        execFileSync(file, args, { stdio: 'ignore', cwd: os.tmpdir(), timeout: 15_000, env: this.env });
      } catch {
        // not running
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
}
