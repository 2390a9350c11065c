import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { freePort } from '../helpers/net.js';

describe('POST /_sim/databases', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator();
  });
  afterAll(async () => {
    await sim.close();
  });

  const post = async (body: unknown) => {
    const res = await fetch(`${sim.endpoint}/_sim/databases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('adds a simulated RDS endpoint at run time, as --rds does at start', async () => {
    const r = await post({ name: 'late', upstream: { host: '127.0.0.1', port: await freePort() } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      name: 'late',
      host: `late.cluster-c0ffee.${sim.region}.rds.amazonaws.com`,
      port: 5432,
    });
    expect(existsSync(String(r.body.caFile))).toBe(true);
    expect(sim.databases.map((d) => d.name)).toContain('late');
  });

  it('refuses a body without name and upstream, and an upstream off loopback, with the fix', async () => {
    expect((await post({ name: 'x' })).status).toBe(400);
    const far = await post({ name: 'far', upstream: { host: '10.0.0.5', port: 5432 } });
    expect(far.status).toBe(400);
    expect(String(far.body.message)).toContain('loopback');
  });
});
