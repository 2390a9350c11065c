import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateApiKey, readApiKey } from '../../src/api/auth.js';
import { buildApi } from '../../src/api/server.js';
import { listenUnix } from '../../src/api/unix-socket.js';
import { parseConfig } from '../../src/daemon/config.js';
import { TunnelManager } from '../../src/daemon/manager.js';
import { TokenService } from '../../src/daemon/tokens.js';
import { freePort } from '../helpers/net.js';

const creds = {
  accessKeyId: 'AKIASIMULATOR0000001',
  secretAccessKey: 'ssmtun-simulator-secret-access-key-0001',
};

function request(
  where: { port: number } | { socketPath: string },
  method: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...('port' in where ? { host: '127.0.0.1', port: where.port } : { socketPath: where.socketPath }),
        method,
        path: url,
        headers: { host: 'localhost', ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('API key and unix socket (real sockets)', () => {
  let dir: string;
  let keyFile: string;
  let key: string;
  let socketPath: string;
  let apiPort: number;
  let manager: TunnelManager;
  let tokens: TokenService;
  const apps: Array<ReturnType<typeof buildApi>> = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-auth-'));
    keyFile = path.join(dir, 'state', 'api-key');
    socketPath = path.join(dir, 'run', 'api.sock');
    key = loadOrCreateApiKey(keyFile);
    const local = await freePort();
    apiPort = await freePort();
    const cfg = parseConfig(
      `[tunnels.orders]\nregion = "eu-west-1"\ntarget = "i-0123456789abcdef0"\n` +
        `remote_host = "orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com"\nremote_port = 5432\n` +
        `local_port = ${local}\nbind = ["127.0.0.1"]\ndb_user = "app_readonly"\n`,
      path.join(dir, 'config.toml'),
    );
    manager = new TunnelManager({ logger: pino({ level: 'silent' }) });
    await manager.start(cfg.tunnels);
    tokens = new TokenService({ credentials: async () => creds });
    const deps = { manager, tokens, version: 'test', apiKey: key, keyFile, socketPath };
    const tcp = buildApi(deps);
    apps.push(tcp);
    await tcp.listen({ host: '127.0.0.1', port: apiPort });
    closeUnix = await listenUnix(tcp, socketPath);
  });
  let closeUnix: () => Promise<void> = async () => {};
  afterAll(async () => {
    await closeUnix();
    for (const a of apps) await a.close();
    tokens.stop();
    await manager.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes a key file of mode 0600 and reuses it', () => {
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(loadOrCreateApiKey(keyFile)).toBe(key);
  });

  it('refuses a key file that others can read, saying how to fix it', () => {
    const f = path.join(dir, 'loose-key');
    loadOrCreateApiKey(f);
    chmodSync(f, 0o644);
    expect(() => readApiKey(f)).toThrow(
      expect.objectContaining({ code: 'API_KEY_INSECURE', fix: expect.stringContaining('chmod 600') }),
    );
  });

  it('keeps reading the tunnel list open', async () => {
    const r = await request({ port: apiPort }, 'GET', '/tunnels');
    expect(r.status).toBe(200);
  });

  it('refuses the token route without a key, with a wrong key and with a key of the wrong length', async () => {
    for (const headers of [
      {} as Record<string, string>,
      { authorization: `Bearer ${key.slice(0, -1)}x` },
      { authorization: `Bearer ${key}${key}` },
      { authorization: 'Bearer a' },
      { authorization: key },
    ]) {
      const r = await request({ port: apiPort }, 'GET', '/tunnels/orders/token', headers);
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.body).toMatchObject({
        code: expect.stringMatching(/^API_KEY_/),
        fix: expect.stringContaining(keyFile),
      });
      expect(JSON.stringify(r.body)).not.toContain('X-Amz-Signature');
    }
  });

  it('refuses state changes without the key', async () => {
    const r = await request({ port: apiPort }, 'POST', '/tunnels/orders/close');
    expect(r.status).toBe(401);
  });

  it('refuses browser-like requests even with the key (Origin, Sec-Fetch-Site, foreign Host)', async () => {
    const auth = { authorization: `Bearer ${key}` };
    for (const headers of [
      { ...auth, origin: 'http://localhost:3000' },
      { ...auth, origin: 'null' },
      { ...auth, 'sec-fetch-site': 'cross-site' },
      { ...auth, host: 'evil.example:7711' },
    ]) {
      const r = await request({ port: apiPort }, 'GET', '/tunnels/orders/token', headers);
      expect(r.status, JSON.stringify(headers)).toBe(403);
    }
  });

  it('hands out a token with the right key, and over the unix socket without one', async () => {
    const tcp = await request({ port: apiPort }, 'GET', '/tunnels/orders/token', {
      authorization: `Bearer ${key}`,
    });
    expect(tcp.status).toBe(200);
    expect(tcp.body).toMatchObject({
      host: 'orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com',
      hostaddr: '127.0.0.1',
      user: 'app_readonly',
      sslmode: 'verify-full',
      token: expect.stringContaining(
        'orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com:5432/?Action=connect',
      ),
    });
    const unix = await request({ socketPath }, 'GET', '/tunnels/orders/token');
    expect(unix.status).toBe(200);
    expect(unix.body.token).toBe(tcp.body.token);
    expect(statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o700);
  });

  it('answers malformed HTTP and oversized headers in the same JSON shape', async () => {
    const rawHttp = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const sock = net.connect(apiPort, '127.0.0.1', () => sock.write(text));
        let out = '';
        sock.on('data', (d) => {
          out += d;
        });
        sock.on('end', () => resolve(out));
        sock.on('error', reject);
      });
    const garbage = await rawHttp('NOT HTTP AT ALL\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(garbage.split('\r\n\r\n')[1])).toMatchObject({ code: 'BAD_REQUEST' });
    const big = await rawHttp(
      `GET /tunnels HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(big.split('\r\n\r\n')[1])).toMatchObject({ code: 'HEADERS_TOO_LARGE' });
    const noHost = await rawHttp('GET /tunnels HTTP/1.0\r\n\r\n');
    expect(noHost).toMatch(/^HTTP\/1\.1 403 /);
    expect(noHost).toContain('FORBIDDEN_HOST');
  });

  it('says which key to add for a tunnel that cannot have a token', async () => {
    const r = await request({ socketPath }, 'GET', '/tunnels/nope/token');
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ code: 'TUNNEL_NOT_FOUND' });
  });
});
