/** Pid locks: a live holder is named, a stale file (dead pid, garbage) is taken over, release is exact. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AlreadyRunningError, configLockKey, DaemonLock, lockDir } from '../../src/daemon/lock.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-lock-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A pid that certainly belongs to no process any more: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

/** A live process whose command line looks like a daemon's (or not), killed after the test. */
const children: Array<ReturnType<typeof spawn>> = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});
async function liveProcess(args: string[]): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', ...args], { stdio: 'ignore' });
  children.push(child);
  await new Promise((r) => child.once('spawn', r));
  return child.pid!;
}

describe('DaemonLock', () => {
  it('names a live holder with its pid, and takes none of the locks then', async () => {
    const dir = path.join(tmp, 'a');
    const holder = await liveProcess(['daemon', '--config', '/x']);
    new DaemonLock(dir).acquire([{ key: 'config-x', what: 'the config /x' }]);
    writeFileSync(
      path.join(dir, 'config-x.pid'),
      JSON.stringify({ pid: holder, what: 'the config /x', startedAt: '' }),
    );
    const lock = new DaemonLock(dir);
    let err: unknown;
    try {
      lock.acquire([
        { key: 'api-1', what: 'API port 1' },
        { key: 'config-x', what: 'the config /x' },
      ]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AlreadyRunningError);
    expect((err as AlreadyRunningError).message).toBe(
      `another ssmtun daemon (pid ${holder}) already serves the config /x`,
    );
    expect((err as AlreadyRunningError).fix).toContain(`kill ${holder}`);
    expect(existsSync(path.join(dir, 'api-1.pid'))).toBe(false);
  });

  it('a live pid that is not a daemon (the pid was reused) does not hold the lock', async () => {
    const dir = path.join(tmp, 'b');
    const other = await liveProcess([]);
    new DaemonLock(dir).acquire([]);
    writeFileSync(path.join(dir, 'k.pid'), JSON.stringify({ pid: other, what: 'x', startedAt: '' }));
    const lock = new DaemonLock(dir);
    lock.acquire([{ key: 'k', what: 'x' }]);
    expect(JSON.parse(readFileSync(path.join(dir, 'k.pid'), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('takes over a stale lock (dead pid or garbage) and takes none when one of several is held', async () => {
    const dir = path.join(tmp, 'c');
    const lock = new DaemonLock(dir);
    lock.acquire([{ key: 'k1', what: 'one' }]);
    lock.release();
    writeFileSync(
      path.join(dir, 'k1.pid'),
      JSON.stringify({ pid: await deadPid(), what: 'one', startedAt: '' }),
    );
    writeFileSync(path.join(dir, 'k2.pid'), 'garbage');
    lock.acquire([
      { key: 'k1', what: 'one' },
      { key: 'k2', what: 'two' },
    ]);
    expect(JSON.parse(readFileSync(path.join(dir, 'k2.pid'), 'utf8')).pid).toBe(process.pid);
    lock.release();
    expect(existsSync(path.join(dir, 'k1.pid'))).toBe(false);
    expect(existsSync(path.join(dir, 'k2.pid'))).toBe(false);
  });

  it('lives in RUNTIME_DIRECTORY, then $XDG_RUNTIME_DIR/ssmtun, then the state dir; keys are stable', () => {
    expect(lockDir({ RUNTIME_DIRECTORY: '/run/user/1/ssmtun', XDG_RUNTIME_DIR: '/x' }, '/h')).toBe(
      '/run/user/1/ssmtun',
    );
    expect(lockDir({ XDG_RUNTIME_DIR: '/run/user/1' }, '/h')).toBe('/run/user/1/ssmtun');
    expect(lockDir({ XDG_RUNTIME_DIR: 'relative' }, '/h')).toBe('/h/.local/state/ssmtun');
    expect(lockDir({ XDG_STATE_HOME: '/s' }, '/h')).toBe('/s/ssmtun');
    expect(configLockKey('/a/b.toml')).toBe(configLockKey('/a/../a/b.toml'));
    expect(configLockKey('/a/b.toml')).not.toBe(configLockKey('/a/c.toml'));
  });
});
