import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/server.js';
import { parseConfig } from '../../src/daemon/config.js';
import { TunnelManager } from '../../src/daemon/manager.js';
import { freePort } from '../helpers/net.js';

describe('local API', () => {
  let manager: TunnelManager;
  let app: ReturnType<typeof buildApi>;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const cfg = parseConfig(
      `[tunnels.db]\nregion = "us-east-1"\ntarget = "i-0123456789abcdef0"\nremote_port = 5432\nlocal_port = ${port}\nbind = ["127.0.0.1"]\n`,
      'test.toml',
    );
    manager = new TunnelManager({ logger: pino({ level: 'silent' }) });
    await manager.start(cfg.tunnels);
    // As on the unix socket: this suite is about routes and errors; auth has its own (test/api/auth.test.ts).
    app = buildApi({ manager, version: 'test', trusted: true });
  });
  afterAll(async () => {
    await app.close();
    await manager.stop();
  });

  it('lists tunnels with their status', async () => {
    const res = await app.inject({ method: 'GET', url: '/tunnels', headers: { host: 'localhost:7711' } });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { tunnels: Array<{ name: string; state: string; localPort: number }> };
    expect(body.tunnels).toEqual([
      expect.objectContaining({ name: 'db', state: 'listening', localPort: port }),
    ]);
  });

  it('answers unknown tunnels and routes with JSON errors carrying a code', async () => {
    const a = await app.inject({ method: 'GET', url: '/tunnels/nope', headers: { host: '127.0.0.1:7711' } });
    expect(a.statusCode).toBe(404);
    expect(a.json()).toMatchObject({ code: 'TUNNEL_NOT_FOUND', message: expect.stringContaining('nope') });
    const b = await app.inject({ method: 'GET', url: '/nothing', headers: { host: '127.0.0.1:7711' } });
    expect(b.statusCode).toBe(404);
    expect(b.json()).toMatchObject({ code: 'NOT_FOUND' });
    const c = await app.inject({
      method: 'POST',
      url: '/tunnels/bad%20name!/open',
      headers: { host: '127.0.0.1' },
    });
    expect(c.statusCode).toBe(400);
    expect(c.json()).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('refuses DNS-rebinding hosts and cross-site browser requests', async () => {
    const evilHost = await app.inject({
      method: 'GET',
      url: '/tunnels',
      headers: { host: 'evil.example:7711' },
    });
    expect(evilHost.statusCode).toBe(403);
    expect(evilHost.json()).toMatchObject({ code: 'FORBIDDEN_HOST' });
    const origin = await app.inject({
      method: 'POST',
      url: '/tunnels/db/close',
      headers: { host: 'localhost:7711', origin: 'https://evil.example' },
    });
    expect(origin.statusCode).toBe(403);
    expect(origin.json()).toMatchObject({ code: 'FORBIDDEN_ORIGIN' });
    const fetchSite = await app.inject({
      method: 'GET',
      url: '/tunnels',
      headers: { host: 'localhost:7711', 'sec-fetch-site': 'cross-site' },
    });
    expect(fetchSite.statusCode).toBe(403);
  });
});
