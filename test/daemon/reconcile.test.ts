/**
 * TunnelManager.reconcile in-process (the SIGHUP path with sessions is in test/e2e/service-daemon):
 * only the difference is applied, the Tunnel objects of unchanged tunnels are kept, a port can move
 * from a removed tunnel to a new one, and a clash with an API-made tunnel refuses the whole list.
 * Also the busy-port retry with back-off.
 */
import net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type TunnelConfig } from '../../src/daemon/config.js';
import { listenRetryDelay } from '../../src/daemon/listen-retry.js';
import { TunnelManager } from '../../src/daemon/manager.js';
import { connect, freePort } from '../helpers/net.js';

const logger = pino({ level: 'silent' });
const managers: TunnelManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.stop()));
});

function configs(
  spec: Record<string, { port: number; extra?: string }>,
  file = '/cfg/config.toml',
): TunnelConfig[] {
  const text = Object.entries(spec)
    .map(
      ([name, t]) =>
        `[tunnels.${name}]\nregion = "us-east-1"\ntarget = "i-0123456789abcdef0"\nremote_port = 5432\nlocal_port = ${t.port}\nbind = ["127.0.0.1"]\n${t.extra ?? ''}\n`,
    )
    .join('\n');
  return parseConfig(text, file).tunnels;
}

async function refused(port: number): Promise<boolean> {
  return connect(port).then(
    (s) => {
      s.destroy();
      return false;
    },
    () => true,
  );
}

async function manager(): Promise<TunnelManager> {
  const m = new TunnelManager({ logger, listenRetryMs: 20 });
  managers.push(m);
  return m;
}

describe('TunnelManager.reconcile', () => {
  it('adds, removes, restarts changed tunnels and leaves unchanged ones alone', async () => {
    const [pa, pb, pb2, pc, pd] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const m = await manager();
    await m.start(configs({ a: { port: pa }, b: { port: pb }, c: { port: pc } }));
    const a = m.get('a');
    const b = m.get('b');
    // `a` moves to another line (source differs) but is the same tunnel.
    const result = await m.reconcile(configs({ d: { port: pd }, b: { port: pb2 }, a: { port: pa } }));
    expect(result).toEqual({ added: ['d'], removed: ['c'], changed: ['b'], unchanged: ['a'] });
    expect(m.get('a')).toBe(a);
    expect(m.get('b')).not.toBe(b);
    expect(
      m
        .list()
        .map((t) => [t.name, t.localPort, t.listening])
        .sort(),
    ).toEqual([
      ['a', pa, ['127.0.0.1']],
      ['b', pb2, ['127.0.0.1']],
      ['d', pd, ['127.0.0.1']],
    ]);
    expect(await refused(pc)).toBe(true);
    expect(await refused(pb)).toBe(true);
    expect(await refused(pd)).toBe(false);
    // Reloading the same list again changes nothing.
    expect(await m.reconcile(configs({ a: { port: pa }, b: { port: pb2 }, d: { port: pd } }))).toEqual({
      added: [],
      removed: [],
      changed: [],
      unchanged: ['a', 'b', 'd'],
    });
  });

  it('a port handed from a removed tunnel to a new one is free when the new one binds', async () => {
    const p = await freePort();
    const m = await manager();
    await m.start(configs({ old: { port: p } }));
    await m.reconcile(configs({ fresh: { port: p } }));
    expect(m.list().map((t) => [t.name, t.listening])).toEqual([['fresh', ['127.0.0.1']]]);
  });

  it('refuses a list that clashes with an API-made tunnel, changing nothing', async () => {
    const [pa, papi, pnew] = await Promise.all([freePort(), freePort(), freePort()]);
    const m = await manager();
    await m.start(configs({ a: { port: pa } }));
    await m.add(configs({ api1: { port: papi } }, '(api)')[0]);
    const a = m.get('a');
    const err = await m
      .reconcile(
        configs({
          a: { port: pa, extra: 'idle_timeout = "1m"' },
          fresh: { port: papi },
          api1: { port: pnew },
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    expect(issues.map((i) => [i.file, i.line > 0])).toEqual([
      ['/cfg/config.toml', true],
      ['/cfg/config.toml', true],
    ]);
    expect((err as ConfigError).message).toMatch(/local_port .* used by the API tunnel api1/);
    expect((err as ConfigError).message).toMatch(
      /a tunnel named api1 was made through the API.*ssmtun rm api1/,
    );
    expect(m.get('a')).toBe(a);
    expect(
      m
        .list()
        .map((t) => t.name)
        .sort(),
    ).toEqual(['a', 'api1']);
    // A reload never removes API-made tunnels.
    expect((await m.reconcile(configs({ a: { port: pa } }))).removed).toEqual([]);
    expect(m.get('api1')).toBeDefined();
  });
});

describe('busy local port', () => {
  it('is retried with growing back-off, shown in the status, and taken once free', async () => {
    const p = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(p, '127.0.0.1', () => r()));
    const m = await manager();
    try {
      await m.start(configs({ busy: { port: p } }));
      const s = m.list()[0];
      expect(s.state).toBe('error');
      expect(s.lastError).toMatchObject({
        code: 'LISTEN_FAILED',
        fix: expect.stringMatching(/another program uses port/),
      });
      expect(s.listenRetry?.attempt).toBe(1);
      await expect.poll(() => m.list()[0].listenRetry?.attempt ?? 0).toBeGreaterThanOrEqual(3);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    await expect.poll(() => m.list()[0].listening, { timeout: 5000 }).toEqual(['127.0.0.1']);
    expect(m.list()[0]).toMatchObject({ state: 'listening', listenRetry: undefined });
  });

  it('back-off doubles from the base and stops growing at 30 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => listenRetryDelay(n))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });

  it('a removed tunnel is not retried any more', async () => {
    const p = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(p, '127.0.0.1', () => r()));
    const m = await manager();
    await m.start(configs({ busy: { port: p } }));
    await m.remove('busy');
    await new Promise((r) => blocker.close(r));
    // Three retry periods later nobody has bound the port again.
    await new Promise((r) => setTimeout(r, 100));
    expect(await refused(p)).toBe(true);
  });
});
