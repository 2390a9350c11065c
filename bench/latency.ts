/**
 * 64-byte ping-pong on one connection through the echo mode: one message in flight, each round trip
 * timed with performance.now(); a few warm-up round trips are not counted.
 */
import type net from 'node:net';
import { connectTo, PING } from './net.js';
import { header } from './server.js';
import { median, percentile, withTimeout } from './util.js';

export interface PingPongResult {
  medianMs: number;
  p99Ms: number;
  samples: number;
}

/** Runs `count` round trips of PING on an echo-mode socket; returns each RTT in ms. */
export function pingLoop(
  sock: net.Socket,
  count: number,
  until = Number.POSITIVE_INFINITY,
): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const rtts: number[] = [];
    let got = 0;
    let t0 = 0;
    const send = () => {
      if (rtts.length >= count || performance.now() >= until) {
        sock.off('data', onData);
        sock.off('close', onClose);
        resolve(rtts);
        return;
      }
      got = 0;
      t0 = performance.now();
      sock.write(PING);
    };
    const onData = (c: Buffer) => {
      got += c.length;
      if (got < PING.length) return;
      rtts.push(performance.now() - t0);
      send();
    };
    const onClose = () => reject(new Error(`connection closed after ${rtts.length} round trips`));
    sock.on('data', onData);
    sock.once('close', onClose);
    send();
  });
}

export async function pingPong(port: number, iterations: number, timeoutMs: number): Promise<PingPongResult> {
  const sock = await connectTo(port);
  try {
    sock.write(header('E'));
    const rtts = await withTimeout(
      (async () => {
        await pingLoop(sock, Math.max(10, Math.floor(iterations / 20)));
        return pingLoop(sock, iterations);
      })(),
      timeoutMs,
      `${iterations} ping-pongs`,
    );
    return { medianMs: median(rtts), p99Ms: percentile(rtts, 99), samples: rtts.length };
  } finally {
    sock.destroy();
  }
}
