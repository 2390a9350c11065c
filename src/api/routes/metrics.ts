/**
 * `GET /metrics` in the Prometheus text format (prom-client), read from the tunnels' status at scrape
 * time: per tunnel state, sessions, connections, bytes each way, retransmissions, reconnects, RTT, errors
 * by code and token signings; plus the process's RSS and CPU.
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { TunnelStatus } from '../../daemon/tunnel.js';
import type { ApiDeps } from '../server.js';

const STATES = ['listening', 'connecting', 'open', 'reconnecting', 'degraded', 'error', 'stopped'];

/** prom-client is loaded on the first scrape: an idle daemon nobody scrapes does not pay for it. */
export async function metricsRegistry(deps: ApiDeps): Promise<Registry> {
  const { Counter, collectDefaultMetrics, Gauge, Registry } = await import('prom-client');
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'ssmtun_' });
  const list = (): TunnelStatus[] => deps.manager.list();

  /** A counter whose value is a running total the tunnel already keeps. */
  const total = (name: string, help: string, value: (t: TunnelStatus) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['tunnel'],
      registers: [register],
      collect() {
        this.reset();
        for (const t of list()) this.inc({ tunnel: t.name }, value(t));
      },
    });

  new Gauge({
    name: 'ssmtun_tunnel_state',
    help: 'Tunnel state: 1 for the current state, 0 for the others',
    labelNames: ['tunnel', 'state'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list())
        for (const s of STATES) this.set({ tunnel: t.name, state: s }, t.state === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ssmtun_tunnel_connections',
    help: 'Local connections open now',
    labelNames: ['tunnel'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list()) this.set({ tunnel: t.name }, t.connections);
    },
  });
  new Gauge({
    name: 'ssmtun_tunnel_sessions_open',
    help: 'SSM sessions open now (a pool has up to sessions = N)',
    labelNames: ['tunnel'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list())
        this.set(
          { tunnel: t.name },
          t.sessions ? t.sessions.filter((m) => m.sessionId).length : t.sessionId ? 1 : 0,
        );
    },
  });
  new Gauge({
    name: 'ssmtun_pool_member_connections',
    help: 'Connections on each member of a session pool',
    labelNames: ['tunnel', 'member'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list())
        for (const m of t.sessions ?? [])
          this.set({ tunnel: t.name, member: String(m.member) }, m.connections);
    },
  });
  new Gauge({
    name: 'ssmtun_tunnel_rtt_seconds',
    help: 'Round-trip time of the data channel, from acknowledgements',
    labelNames: ['tunnel'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list()) if (t.rttMs !== undefined) this.set({ tunnel: t.name }, t.rttMs / 1000);
    },
  });
  total('ssmtun_tunnel_sessions_started_total', 'SSM sessions started', (t) => t.sessionsStarted);
  total('ssmtun_tunnel_connections_total', 'Local connections accepted', (t) => t.totalConnections);
  total('ssmtun_tunnel_retransmissions_total', 'Data-channel messages sent again', (t) => t.retransmissions);
  total('ssmtun_tunnel_reconnects_total', 'WebSocket reconnects (ResumeSession)', (t) => t.reconnects);
  new Counter({
    name: 'ssmtun_tunnel_bytes_total',
    help: 'Payload bytes through the tunnel',
    labelNames: ['tunnel', 'direction'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list()) {
        this.inc({ tunnel: t.name, direction: 'to_remote' }, t.bytesToRemote);
        this.inc({ tunnel: t.name, direction: 'from_remote' }, t.bytesFromRemote);
      }
    },
  });
  new Counter({
    name: 'ssmtun_tunnel_errors_total',
    help: 'Tunnel errors by code',
    labelNames: ['tunnel', 'code'],
    registers: [register],
    collect() {
      this.reset();
      for (const [tunnel, byCode] of deps.events?.errors ?? []) {
        for (const [code, n] of byCode) this.inc({ tunnel, code }, n);
      }
    },
  });
  new Counter({
    name: 'ssmtun_tunnel_logins_total',
    help: 'auth = "iam": logins through the PostgreSQL front',
    labelNames: ['tunnel'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list()) if (t.logins) this.inc({ tunnel: t.name }, t.logins.logins);
    },
  });
  new Counter({
    name: 'ssmtun_tunnel_login_failures_total',
    help: 'auth = "iam": refused or failed logins by reason',
    labelNames: ['tunnel', 'reason'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of list()) {
        for (const [reason, n] of Object.entries(t.logins?.loginFailures ?? {}))
          this.inc({ tunnel: t.name, reason }, n);
      }
    },
  });
  new Counter({
    name: 'ssmtun_token_refreshes_total',
    help: 'RDS IAM auth tokens signed',
    labelNames: ['tunnel'],
    registers: [register],
    collect() {
      this.reset();
      for (const [tunnel, n] of deps.tokens?.signedCount ?? []) this.inc({ tunnel }, n);
    },
  });
  return register;
}

export function metricsRoutes(app: FastifyInstance, deps: ApiDeps): void {
  let register: Promise<Registry> | undefined;
  app.get(
    '/metrics',
    { schema: { response: { 200: { type: 'string', description: 'Prometheus text exposition format' } } } },
    async (_req, reply) => {
      register ??= metricsRegistry(deps);
      const r = await register;
      const text = await r.metrics();
      return reply.type(r.contentType).send(text);
    },
  );
}
