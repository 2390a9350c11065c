/**
 * `ssmtun demo`: the whole product on this machine. The simulated AWS side, a local destination (an
 * echo server, and a throw-away PostgreSQL when one is installed) and the daemon with a demo config,
 * all on loopback. `--once` does one round trip through a tunnel and prints a one-line summary.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadOrCreateApiKey } from '../../api/auth.js';
import { buildApi } from '../../api/server.js';
import { listenUnix } from '../../api/unix-socket.js';
import { parseConfig, type TunnelConfig } from '../../daemon/config.js';
import { connectionInfo } from '../../daemon/connection.js';
import { createLogger } from '../../daemon/logger.js';
import { TunnelManager } from '../../daemon/manager.js';
import { TokenService } from '../../daemon/tokens.js';
import { type SimDatabase, startSimulator } from '../../sim/index.js';
import { connect, freePort, readExactly, startEchoServer } from '../../sim/net.js';
import { type PgCluster, pgAvailable, startPostgres } from '../../sim/postgres.js';
import { libpqEnv } from '../db-env.js';
import { VERSION } from '../version.js';

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      once: { type: 'boolean' },
      'no-pacing': { type: 'boolean' },
      'no-postgres': { type: 'boolean' },
      'api-port': { type: 'string' },
      verbose: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: ssmtun demo [--once] [--no-pacing] [--no-postgres] [--api-port N] [-v]

Runs the simulated AWS side, an echo server, a throw-away PostgreSQL behind a simulated RDS endpoint
and the daemon, all on loopback, and prints what to try. --once does one round trip (lazy open, echo,
an IAM login with verify-full) and exits 0 or 1 with a one-line summary.
`);
    return 0;
  }
  const once = values.once ?? false;
  const logger = createLogger({
    level: values.verbose ? 'info' : 'warn',
    pretty: !once && process.stdout.isTTY,
  });
  const out = (s: string) => process.stdout.write(`${s}\n`);

  const sim = await startSimulator({ port: 0, logger: logger.child({ component: 'sim' }) });
  const cleanup: Array<() => Promise<unknown>> = [() => sim.close()];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ssmtun-demo-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  let pg: PgCluster | undefined;
  try {
    if (values['no-pacing']) {
      for (const i of sim.instances) await setInstancePacing(sim.endpoint, i.id, false);
    }
    const echo = await startEchoServer();
    cleanup.push(() => echo.close());
    if (!values['no-postgres'] && pgAvailable()) {
      pg = await startPostgres().catch((e: Error) => {
        logger.warn(
          { err: e.message },
          'PostgreSQL did not start; the demo goes on with the echo tunnel only',
        );
        return undefined;
      });
      if (pg) cleanup.push(() => pg!.stop());
    }
    // The demo database sits behind a simulated RDS endpoint: TLS with its own CA, IAM tokens only.
    const rds = pg
      ? await sim.addDatabase({ name: 'demo', upstream: { host: '127.0.0.1', port: pg.port } })
      : undefined;

    // The daemon talks to the simulator exactly as it would to AWS: SDK, credentials chain, endpoint.
    process.env.AWS_ACCESS_KEY_ID = sim.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = sim.secretAccessKey;
    process.env.AWS_REGION = sim.region;
    delete process.env.AWS_PROFILE;
    process.env.AWS_CONFIG_FILE = path.join(dir, 'aws-config-none');
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'aws-credentials-none');

    const echoLocal = await freePort();
    const pgLocal = pg ? await freePort() : 0;
    const configText = demoConfig(sim.endpoint, sim.region, echo.port, echoLocal, rds, pgLocal);
    const configFile = path.join(dir, 'config.toml');
    await writeFile(configFile, configText, { mode: 0o600 });
    const config = parseConfig(configText, configFile);

    const manager: TunnelManager = new TunnelManager({ logger, tokens: { get: (t) => tokens.get(t) } });
    cleanup.unshift(() => manager.stop());
    const tokens = new TokenService({ credentials: (t) => manager.credentials(t), logger });
    cleanup.unshift(async () => tokens.stop());
    await manager.start(config.tunnels);

    if (once) return await roundTrip(manager, tokens, echoLocal, pg, out);

    // Its own key and socket in the demo folder: a real daemon of this user keeps its own.
    const keyFile = path.join(dir, 'state', 'api-key');
    const socketPath = path.join(dir, 'run', 'api.sock');
    const deps = {
      manager,
      tokens,
      logger,
      version: VERSION,
      apiKey: loadOrCreateApiKey(keyFile),
      keyFile,
      socketPath,
    };
    const apiPort = Number(values['api-port'] ?? 7711);
    const api = buildApi(deps);
    let apiLine: string;
    try {
      await api.listen({ host: '127.0.0.1', port: apiPort });
      cleanup.unshift(() => api.close());
      apiLine = `curl -s localhost:${apiPort}/tunnels`;
    } catch {
      apiLine = `(port ${apiPort} is busy, so the API is off; try --api-port N)`;
    }
    const closeUnix = await listenUnix(api, socketPath);
    cleanup.unshift(closeUnix);
    out(
      `ssmtun demo: simulated AWS at ${sim.endpoint}, daemon with ${config.tunnels.length} tunnel(s). Config: ${configFile}`,
    );
    out('');
    out('Try, in another terminal:');
    out(`  ${apiLine}`);
    out(
      `  echo hello | nc -q1 127.0.0.1 ${echoLocal}        # tunnel "demo-echo" to an echo server (needs netcat)`,
    );
    if (pg && rds) {
      out(`  SSMTUN_SOCKET=${socketPath} ssmtun psql demo-pg -- -c 'select current_user'`);
      out('      # IAM token + TLS verify-full against the simulated RDS, through the tunnel');
      out(`  SSMTUN_SOCKET=${socketPath} ssmtun env demo-pg      # the same as PG* variables`);
    } else out('  (install PostgreSQL to also get a "demo-pg" tunnel to a simulated RDS)');
    out('');
    out('Ctrl-C stops everything.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    return 0;
  } finally {
    for (const fn of cleanup) await fn().catch(() => {});
  }
}

function demoConfig(
  endpoint: string,
  region: string,
  echoPort: number,
  echoLocal: number,
  rds: SimDatabase | undefined,
  pgLocal: number,
): string {
  const lines = [
    '[tunnels.demo-echo]',
    `region = "${region}"`,
    'target_tag = "Name=bastion"',
    'remote_host = "127.0.0.1"',
    `remote_port = ${echoPort}`,
    `local_port = ${echoLocal}`,
    `endpoint = "${endpoint}"`,
    '',
  ];
  if (rds) {
    lines.push(
      '[tunnels.demo-pg]',
      `region = "${region}"`,
      'target_tag = "Name=bastion"',
      `remote_host = "${rds.host}"`,
      `remote_port = ${rds.port}`,
      `local_port = ${pgLocal}`,
      'db_user = "postgres"',
      'db_name = "postgres"',
      `ca_bundle = "${rds.caFile}"`,
      `endpoint = "${endpoint}"`,
      '',
    );
  }
  return lines.join('\n');
}

async function setInstancePacing(endpoint: string, id: string, pacing: boolean): Promise<void> {
  await fetch(`${endpoint}/_sim/instances`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, agent: { pacing } }),
  });
}

/** One full round trip: lazy open (StartSession, WebSocket, handshake) then a 64-byte echo. */
async function roundTrip(
  manager: TunnelManager,
  tokens: TokenService,
  echoLocal: number,
  pg: PgCluster | undefined,
  out: (s: string) => void,
): Promise<number> {
  const payload = Buffer.from('ssmtun demo round trip '.padEnd(64, '.'));
  const t0 = performance.now();
  const sock = await connect(echoLocal);
  sock.write(payload);
  const first = await readExactly(sock, payload.length);
  const firstMs = performance.now() - t0;
  const t1 = performance.now();
  sock.write(payload);
  const second = await readExactly(sock, payload.length);
  const warmMs = performance.now() - t1;
  sock.destroy();
  if (!first.equals(payload) || !second.equals(payload)) {
    out('ssmtun demo: FAILED: echoed bytes differ');
    return 1;
  }
  let pgPart = '';
  const pgTunnel = manager.get('demo-pg');
  if (pg && pgTunnel) {
    const v = await iamLogin(pg, pgTunnel.config, tokens);
    if (v !== 'postgres') {
      out(`ssmtun demo: FAILED: psql through demo-pg answered ${JSON.stringify(v)}`);
      return 1;
    }
    pgPart = ', psql through demo-pg: ok (IAM token, TLS verify-full to the simulated RDS)';
  }
  const st = manager.get('demo-echo')!.status();
  out(
    `ssmtun demo: ok: demo-echo via ${st.resolvedTarget} (${st.mode} mode, agent ${st.agentVersion}): ` +
      `first byte after lazy open ${firstMs.toFixed(1)} ms, 64-byte round trip ${warmMs.toFixed(2)} ms${pgPart}`,
  );
  return 0;
}

/** What `ssmtun psql demo-pg` does: a fresh token and host=<RDS name> hostaddr=127.0.0.1, verify-full. */
async function iamLogin(pg: PgCluster, config: TunnelConfig, tokens: TokenService): Promise<string> {
  const tok = await tokens.get(config);
  const env = libpqEnv({ ...connectionInfo(config), user: tok.user, token: tok.token, expiresAt: '' });
  // The simulated RDS takes nothing but a valid token over TLS, so an answer proves both.
  return pg.psql('select current_user', { extraEnv: env });
}
