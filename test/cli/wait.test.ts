/** `ssmtun wait` against a real HTTP server standing in for the daemon's /health, and its timeout. */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDuration, waitCommand } from '../../src/cli/commands/wait.js';
import { freePort } from '../helpers/net.js';

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function health(port: number, body: unknown): Promise<void> {
  const s = http.createServer((_req, res) => res.end(JSON.stringify(body)));
  servers.push(s);
  return new Promise((r) => s.listen(port, '127.0.0.1', () => r()));
}

describe('ssmtun wait', () => {
  it('returns 0 once /health answers ok, even if the daemon comes up after it started waiting', async () => {
    const port = await freePort();
    const waiting = waitCommand(['--api-port', String(port), '--timeout', '10s']);
    await new Promise((r) => setTimeout(r, 150)); // the daemon starts later than the waiter
    await health(port, { ok: true });
    expect(await waiting).toBe(0);
  });

  it('returns 1 when nothing answers ready within the timeout', async () => {
    const port = await freePort();
    await health(port, { ok: false });
    const t0 = Date.now();
    expect(await waitCommand(['--api-port', String(port), '--timeout', '300ms'])).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
  });

  it('parses durations and refuses nonsense with a fix', () => {
    expect([parseDuration('30s'), parseDuration('500ms'), parseDuration('2m'), parseDuration('5')]).toEqual([
      30_000, 500, 120_000, 5000,
    ]);
    expect(() => parseDuration('soon')).toThrow(/invalid --timeout/);
  });
});
