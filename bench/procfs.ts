// Linux /proc readers: a process tree's RSS (VmRSS) and CPU time (utime + stime), and listening ports.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The pid and all its descendants (bounded depth and count). */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  for (let i = 0; i < queue.length && out.length < 256; i++) {
    const p = queue[i];
    if (read(`/proc/${p}/stat`) === undefined) continue;
    out.push(p);
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      // gone
    }
    for (const t of tasks) {
      const kids = read(`/proc/${p}/task/${t}/children`);
      if (kids) for (const k of kids.trim().split(/\s+/)) if (k) queue.push(Number(k));
    }
  }
  return out;
}

/** VmRSS of one process in bytes (0 when gone). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s*kB/.exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) * 1024 : 0;
}

/** utime + stime of one process in seconds (0 when gone). */
export function cpuOf(pid: number): number {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return 0;
  // Fields after "(comm) ": state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

/** Summed over each pid's whole process tree. */
export function treeRss(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) for (const p of processTree(pid)) n += rssOf(p);
  return n;
}

export function treeCpu(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) for (const p of processTree(pid)) n += cpuOf(p);
  return n;
}

/** True when something listens on 127.0.0.1/0.0.0.0/::1/:: at `port` (from /proc/net/tcp{,6}). */
export function isListening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = read(file);
    if (!text) continue;
    for (const line of text.split('\n')) {
      const cols = line.trim().split(/\s+/);
      // local_address is column 1, state column 3; 0A is LISTEN.
      if (cols.length > 3 && cols[3] === '0A' && cols[1].endsWith(hex)) return true;
    }
  }
  return false;
}

export function loadAverage(): string {
  return (read('/proc/loadavg') ?? '').split(' ').slice(0, 3).join(' ');
}
