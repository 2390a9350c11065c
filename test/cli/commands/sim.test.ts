/**
 * `ssmtun sim --rds NAME=HOST:PORT`: usage errors, and the databases of the announcement line; and
 * `--rtt-ms N --jitter-ms N --bandwidth-mbps UP[:DOWN]`: usage errors, and the WAN it sets.
 */
import { existsSync, readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simCommand } from '../../../src/cli/commands/sim.js';
import { type PgCluster, startPostgres } from '../../helpers/postgres.js';

async function usageError(args: string[]): Promise<string> {
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (c: Buffer) => {
    text += c.toString();
  });
  expect(await simCommand(args, { stderr, stdout: new PassThrough() })).toBe(2);
  return text;
}

describe('ssmtun sim --rds', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('refuses malformed or unsafe --rds values with a clear usage error', async () => {
    expect(await usageError(['--rds', 'orders'])).toContain('--rds needs NAME=HOST:PORT, got "orders"');
    expect(await usageError(['--rds', 'orders=127.0.0.1'])).toContain('--rds needs NAME=HOST:PORT');
    expect(await usageError(['--rds', 'Orders_1=127.0.0.1:5432'])).toContain('is not an RDS identifier');
    expect(await usageError(['--rds', 'orders=10.0.0.5:5432'])).toContain('must be a loopback address');
    expect(await usageError(['--rds', 'orders=127.0.0.1:70000'])).toContain('must be 1 to 65535');
    const twice = await usageError(['--rds', 'orders=127.0.0.1:5432', '--rds', 'orders=127.0.0.1:5433']);
    expect(twice).toContain('--rds orders is given twice');
    expect(twice).toContain('usage: ssmtun sim');
  });

  it('--help documents --rds', async () => {
    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (c: Buffer) => {
      text += c.toString();
    });
    expect(await simCommand(['--help'], { stdout })).toBe(0);
    expect(text).toContain('--rds NAME=HOST:PORT');
  });

  it('announces each database with its RDS name, port 5432 and the CA file; removes the CA on stop', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stderr.resume();
    const ac = new AbortController();
    const done = simCommand(
      ['--json', '--rds', `orders=127.0.0.1:${pg.port}`, '--rds', `billing=localhost:${pg.port}`],
      {
        stdout,
        stderr,
        signal: ac.signal,
      },
    );
    const line = await new Promise<string>((resolve) => {
      let buf = '';
      stdout.on('data', (c: Buffer) => {
        buf += c.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) resolve(buf.slice(0, nl));
      });
    });
    const info = JSON.parse(line) as {
      region: string;
      databases: Array<{ name: string; host: string; port: number; caFile: string }>;
    };
    try {
      expect(info.databases.map(({ caFile: _c, ...d }) => d)).toEqual([
        { name: 'orders', host: `orders.cluster-c0ffee.${info.region}.rds.amazonaws.com`, port: 5432 },
        { name: 'billing', host: `billing.cluster-c0ffee.${info.region}.rds.amazonaws.com`, port: 5432 },
      ]);
      // One CA per simulator.
      expect(new Set(info.databases.map((d) => d.caFile)).size).toBe(1);
      expect(readFileSync(info.databases[0].caFile, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    } finally {
      ac.abort();
      expect(await done).toBe(0);
    }
    expect(existsSync(info.databases[0].caFile)).toBe(false);
  });
});

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
