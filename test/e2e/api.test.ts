/**
 * Issue 9 end to end: the local API of a real daemon process over real sockets: tunnels added over the
 * API survive a restart and work with psql, config tunnels cannot be deleted, the security checks,
 * /openapi.json, /metrics, /events, and every CLI command's --help.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/net.js';
import { type PgCluster, startPostgres } from '../helpers/postgres.js';
import {
  type DaemonProcess,
  restartDaemon,
  runCli,
  type SimProcess,
  startDaemonProcess,
  startSimProcess,
} from './harness.js';

function raw(
  port: number,
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: url,
        headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}') }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('the daemon API and CLI over real sockets', () => {
  let sim: SimProcess;
  let pg: PgCluster;
  let daemon: DaemonProcess;
  let configPort: number;
  const auth = () => ({ host: `127.0.0.1:${daemon.apiPort}`, authorization: `Bearer ${daemon.apiKey()}` });
  const api = (method: string, url: string, body?: unknown, headers = auth()) =>
    raw(daemon.apiPort, method, url, headers, body);

  beforeAll(async () => {
    [sim, pg] = await Promise.all([startSimProcess(['--no-pacing']), startPostgres()]);
    configPort = await freePort();
    daemon = await startDaemonProcess(sim, [
      { name: 'fromfile', localPort: configPort, remotePort: pg.port },
    ]);
  }, 120_000);
  afterAll(async () => {
    await daemon?.stop();
    await sim?.stop();
    await pg?.stop();
  });

  it('adds a tunnel over the API, uses it, keeps it across a restart, then deletes it', async () => {
    const localPort = await freePort();
    const body = {
      name: 'added',
      region: sim.region,
      target: sim.instances[0].id,
      remote_host: '127.0.0.1',
      remote_port: pg.port,
      local_port: localPort,
      bind: ['127.0.0.1'],
      endpoint: sim.endpoint,
    };
    const created = await api('POST', '/tunnels', body);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'added', state: 'listening', origin: 'api', localPort });
    expect(await pg.psql('select 7 * 6', { port: localPort })).toBe('42');

    daemon = await restartDaemon(daemon);
    const listed = await api('GET', '/tunnels/added');
    expect(listed.body).toMatchObject({ name: 'added', origin: 'api' });
    expect(await pg.psql('select 1 + 1', { port: localPort })).toBe('2');

    const patched = await api('PATCH', '/tunnels/added', { idle_timeout: '5m' });
    expect(patched.status).toBe(200);
    const removed = await api('DELETE', '/tunnels/added');
    expect(removed).toEqual({ status: 200, body: { removed: 'added' } });
    await expect(pg.psql('select 1', { port: localPort })).rejects.toThrow();
    expect((await api('GET', '/tunnels/added')).body).toMatchObject({ code: 'TUNNEL_NOT_FOUND' });
  });

  it('answers mistakes in an added tunnel with the config file’s messages, field named', async () => {
    const r = await api('POST', '/tunnels', {
      name: 'bad',
      region: 'eu-west-1a',
      target: sim.instances[0].id,
      remote_port: 5432,
      local_port: '15432',
    });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('CONFIG_INVALID');
    const issues = r.body.issues as Array<{ key: string; message: string; fix: string }>;
    expect(issues.map((i) => i.key)).toEqual(['tunnels.bad.region', 'tunnels.bad.local_port']);
    expect(issues[0].fix).toContain('"region": "eu-west-1"');
  });

  it('refuses to delete or change a config-file tunnel, naming the file and line', async () => {
    for (const [method, body] of [
      ['DELETE', undefined],
      ['PATCH', { lazy: false }],
    ] as const) {
      const r = await api(method, '/tunnels/fromfile', body);
      expect(r.status).toBe(409);
      expect(r.body).toMatchObject({ code: 'TUNNEL_FROM_CONFIG' });
      expect(String(r.body.message)).toMatch(
        new RegExp(`${daemon.configFile.replace(/[/.]/g, '\\$&')}:\\d+`),
      );
    }
  });

  it('refuses without a key, with a wrong or wrong-length key, from browsers and for foreign Hosts', async () => {
    const key = daemon.apiKey();
    const host = `127.0.0.1:${daemon.apiPort}`;
    const cases: Array<[Record<string, string>, number]> = [
      [{ host }, 401],
      [{ host, authorization: `Bearer ${key.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a'))}` }, 401],
      [{ host, authorization: `Bearer ${key}x` }, 401],
      [{ host, authorization: `Bearer ${key}`, origin: 'http://localhost:3000' }, 403],
      [{ host: 'evil.example', authorization: `Bearer ${key}` }, 403],
      [{ host: '127.0.0.1:9999', authorization: `Bearer ${key}` }, 403],
    ];
    for (const [headers, status] of cases) {
      const r = await raw(daemon.apiPort, 'POST', '/tunnels/fromfile/close', headers);
      expect(r.status, JSON.stringify(headers)).toBe(status);
      expect(r.body).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    const viaSocket = await runCli(['close', 'fromfile'], daemon.env);
    expect(viaSocket.code).toBe(0);
    // Answers on ::1 as well, with the same checks.
    const v6 = await new Promise<number>((resolve, reject) =>
      http
        .get(
          {
            host: '::1',
            port: daemon.apiPort,
            path: '/health',
            headers: { host: `[::1]:${daemon.apiPort}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .on('error', reject),
    );
    expect(v6).toBe(200);
  });

  it('/openapi.json is a valid OpenAPI 3 document listing every route', async () => {
    const doc = (await (await fetch(`http://127.0.0.1:${daemon.apiPort}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    expect(doc.openapi).toMatch(/^3\./);
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, JSON.stringify(result)).toBe(true);
    const routes = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    for (const r of [
      'GET /health',
      'GET /startup',
      'GET /readiness',
      'GET /liveness',
      'GET /metrics',
      'GET /events',
      'GET /tunnels',
      'POST /tunnels',
      'GET /tunnels/{name}',
      'PATCH /tunnels/{name}',
      'DELETE /tunnels/{name}',
      'POST /tunnels/{name}/open',
      'POST /tunnels/{name}/close',
      'GET /tunnels/{name}/token',
      'GET /tunnels/{name}/connection',
      'POST /reload',
    ]) {
      expect(routes).toContain(r);
    }
  });

  it('/metrics is Prometheus text and its byte counters move with traffic', async () => {
    const scrape = async () => (await fetch(`http://127.0.0.1:${daemon.apiPort}/metrics`)).text();
    const value = (text: string, direction: string) =>
      Number(
        new RegExp(
          `^ssmtun_tunnel_bytes_total\\{tunnel="fromfile",direction="${direction}"\\} (\\d+)$`,
          'm',
        ).exec(text)?.[1] ?? Number.NaN,
      );
    const before = await scrape();
    for (const line of before.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      expect(line).toMatch(
        // name{label="value",...} value; the value a float, NaN or +/-Inf in any case (Prometheus parses
        // it with Go's ParseFloat; prom-client writes the event-loop mean before any sample as "Nan").
        /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? (-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?|nan|[+-]inf)$/i,
      );
    }
    expect(before).toContain('ssmtun_process_resident_memory_bytes');
    await pg.psql("select repeat('x', 100000)", { port: configPort });
    const after = await scrape();
    expect(value(after, 'from_remote')).toBeGreaterThan(value(before, 'from_remote') + 100_000);
    expect(value(after, 'to_remote')).toBeGreaterThan(value(before, 'to_remote'));
    expect(after).toMatch(/^ssmtun_tunnel_state\{tunnel="fromfile",state="open"\} 1$/m);
  });

  it('/events delivers a state change within 1 s', async () => {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${daemon.apiPort}/events`, { signal: controller.signal });
    const reader = res.body!.getReader();
    let text = '';
    const seen = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        text += Buffer.from(value).toString('utf8');
        if (
          /event: state\ndata: \{[^\n]*"tunnel":"fromfile","state":"listening","previous":"open"/.test(text)
        )
          return true;
      }
    })();
    await api('POST', '/tunnels/fromfile/open');
    const t0 = Date.now();
    await api('POST', '/tunnels/fromfile/close');
    const ok = await Promise.race([seen, new Promise<false>((r) => setTimeout(() => r(false), 1000))]);
    const elapsed = Date.now() - t0;
    controller.abort();
    expect(ok, text).toBe(true);
    expect(elapsed).toBeLessThan(1000);
  });

  it('health: /startup, /readiness and /liveness answer; readiness names a tunnel that cannot listen', async () => {
    for (const p of ['/startup', '/readiness', '/liveness', '/health']) {
      expect((await fetch(`http://127.0.0.1:${daemon.apiPort}${p}`)).status, p).toBe(200);
    }
  });

  it('POST /reload and ssmtun reload refuse a broken config as a whole and apply a good one', async () => {
    const good = readFileSync(daemon.configFile, 'utf8');
    try {
      writeFileSync(daemon.configFile, good.replace('remote_port =', 'remote_prot ='));
      const r = await api('POST', '/reload');
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ code: 'CONFIG_INVALID' });
      expect(String(r.body.message)).toContain(`${daemon.configFile}:`);
      expect(String(r.body.message)).toContain('Did you mean remote_port?');
      const cli = await runCli(['reload'], daemon.env);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain('nothing was changed');
      expect((await api('GET', '/tunnels/fromfile')).status).toBe(200);
    } finally {
      writeFileSync(daemon.configFile, good);
    }
    const ok = await runCli(['reload', '--json'], daemon.env);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      unchanged: ['fromfile'],
      added: [],
      removed: [],
      changed: [],
    });
  });

  it('ssmtun doctor passes for a healthy setup and names the failing check with its fix', async () => {
    const healthy = await runCli(['doctor'], daemon.env);
    expect(healthy.stdout).toMatch(/^ok {3}config: /m);
    expect(healthy.stdout).toMatch(/^ok {3}daemon: ssmtun .* \(pid \d+\)/m);
    expect(healthy.stdout).toMatch(/^ok {3}credentials: .*access key AKIA…/m);
    expect(healthy.stdout).toMatch(
      new RegExp(`^ok {3}target of fromfile: ${sim.instances[0].id} online`, 'm'),
    );
    expect(healthy.code, healthy.stdout).toBe(0);
    const other = path.join(daemon.dir, 'doctor.toml');
    writeFileSync(
      other,
      readFileSync(daemon.configFile, 'utf8').replace(
        `target = "${sim.instances[0].id}"`,
        'target = "i-00000000000000dea"',
      ),
    );
    const sick = await runCli(['doctor', '--config', other, '--json'], daemon.env);
    expect(sick.code).toBe(1);
    const checks = JSON.parse(sick.stdout) as Array<{ check: string; ok: boolean; fix?: string }>;
    expect(checks.find((c) => c.check === 'target of fromfile')).toMatchObject({
      ok: false,
      fix: expect.stringContaining('instance id'),
    });
  });

  it('every CLI command answers --help with exit 0, and the text status shows every field', async () => {
    const commands = [
      'daemon',
      'demo',
      'service',
      'wait',
      'logs',
      'doctor',
      'status',
      'ls',
      'open',
      'close',
      'add',
      'rm',
      'reload',
      'psql',
      'exec',
      'mysql',
      'env',
      'url',
      'token',
      'pgpass',
      'pgservice',
      'sim',
    ];
    const results = await Promise.all(commands.map((c) => runCli([c, '--help'], daemon.env)));
    results.forEach((r, i) => {
      expect(r.code, commands[i]).toBe(0);
      expect(r.stdout, commands[i]).toMatch(/usage: ssmtun/);
    });
    await pg.psql('select 1', { port: configPort });
    const status = await runCli(['status'], daemon.env);
    expect(status.code).toBe(0);
    for (const col of [
      'TUNNEL',
      'STATE',
      'LOCAL',
      'REMOTE',
      'SESSION',
      'MODE',
      'AGENT',
      'CONNS',
      'SENT',
      'RECEIVED',
      'RTT',
      'RETX',
      'RECONN',
    ]) {
      expect(status.stdout).toContain(col);
    }
    expect(status.stdout).toMatch(
      new RegExp(
        `fromfile +open +localhost:${configPort} +127\\.0\\.0\\.1:${pg.port} +\\S+ +mux +3\\.3\\.987\\.0`,
      ),
    );
    expect(status.stdout).toContain(`target ${sim.instances[0].id}`);
    expect(path.isAbsolute(daemon.configFile)).toBe(true);
  });
});
