/**
 * What a client costs: RSS (VmRSS from /proc/<pid>/status) while idle with 10 tunnels and while 200
 * connections through one tunnel do small ping-pongs at once, and CPU time (utime + stime from
 * /proc/<pid>/stat) per GB moved.
 */
import { pingLoop } from './latency.js';
import { connectTo } from './net.js';
import { treeCpu, treeRss } from './procfs.js';
import { header } from './server.js';
import { withTimeout } from './util.js';

export interface ManyResult {
  /** Highest RSS sampled (bytes) while the connections ran; NaN when there is no pid to watch. */
  peakRss: number;
  roundTripsPerSec: number;
  connections: number;
}

/**
 * Opens `conns` connections to `port` (echo mode), lets every one do 64-byte ping-pongs for
 * `durationMs`, and samples the RSS of `pids` every 100 ms meanwhile.
 */
export async function manyConnections(
  port: number,
  conns: number,
  durationMs: number,
  pids: readonly number[],
): Promise<ManyResult> {
  let peak = pids.length ? treeRss(pids) : Number.NaN;
  const sampler = setInterval(() => {
    if (pids.length) peak = Math.max(peak, treeRss(pids));
  }, 100);
  const socks = await Promise.all(Array.from({ length: conns }, () => connectTo(port)));
  try {
    for (const s of socks) s.write(header('E'));
    const t0 = performance.now();
    const until = t0 + durationMs;
    const counts = await withTimeout(
      Promise.all(socks.map((s) => pingLoop(s, Number.POSITIVE_INFINITY, until).then((r) => r.length))),
      durationMs + 30_000,
      `${conns} concurrent ping-pong connections`,
    );
    const ms = performance.now() - t0;
    if (pids.length) peak = Math.max(peak, treeRss(pids));
    const total = counts.reduce((a, b) => a + b, 0);
    const idle = counts.filter((c) => c === 0).length;
    if (idle > 0) throw new Error(`${idle} of ${conns} connections got no echo within ${durationMs} ms`);
    return { peakRss: peak, roundTripsPerSec: total / (ms / 1000), connections: conns };
  } finally {
    clearInterval(sampler);
    for (const s of socks) s.destroy();
  }
}

/** Runs fn and returns its result with the CPU seconds `pids` spent meanwhile (NaN without pids). */
export async function withCpu<T>(
  pids: readonly number[],
  fn: () => Promise<T>,
): Promise<{ result: T; cpuSeconds: number }> {
  const before = pids.length ? treeCpu(pids) : Number.NaN;
  const result = await fn();
  const cpuSeconds = pids.length ? treeCpu(pids) - before : Number.NaN;
  return { result, cpuSeconds };
}
