/** `ssmtun sim --rtt-ms N --jitter-ms N --bandwidth-mbps UP[:DOWN]`: usage errors, and the WAN it sets. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { simCommand } from '../../../src/cli/commands/sim.js';

async function usageError(args: string[]): Promise<string> {
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (c: Buffer) => {
    text += c.toString();
  });
  expect(await simCommand(args, { stderr, stdout: new PassThrough() })).toBe(2);
  return text;
}

describe('ssmtun sim WAN flags', () => {
  it('refuses bad values with a usage error that says what is expected', async () => {
    expect(await usageError(['--rtt-ms', '1.5'])).toContain('--rtt-ms needs a whole number');
    expect(await usageError(['--rtt-ms', '70000'])).toContain('--rtt-ms must be between 0 and 60000');
    expect(await usageError(['--jitter-ms', 'lots'])).toContain('--jitter-ms needs a whole number');
    const bw = await usageError(['--bandwidth-mbps', '10/20']);
    expect(bw).toContain('--bandwidth-mbps needs UP or UP:DOWN in Mbit/s, got "10/20"');
    expect(bw).toContain('usage: ssmtun sim');
    expect(await usageError(['--bandwidth-mbps', '10:200000'])).toContain('DOWN must be at most 100000');
  });

  it('starts a simulator with that WAN (DOWN defaults to UP), visible in /_sim/state', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stderr.resume();
    const ac = new AbortController();
    const done = simCommand(['--json', '--rtt-ms', '40', '--jitter-ms', '5', '--bandwidth-mbps', '25'], {
      stdout,
      stderr,
      signal: ac.signal,
    });
    try {
      const line = await new Promise<string>((resolve) =>
        stdout.once('data', (c: Buffer) => resolve(c.toString())),
      );
      const { endpoint } = JSON.parse(line) as { endpoint: string };
      const state = (await (await fetch(`${endpoint}/_sim/state`)).json()) as { wan: { settings: unknown } };
      expect(state.wan.settings).toEqual({ rttMs: 40, jitterMs: 5, bandwidthMbps: { up: 25, down: 25 } });
    } finally {
      ac.abort();
      expect(await done).toBe(0);
    }
  });
});
