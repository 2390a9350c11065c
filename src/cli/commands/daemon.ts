/**
 * `ssmtun daemon`: the composition root. Loads the config, builds the tunnel manager and the API,
 * and wires signals: SIGTERM/SIGINT terminate every session and exit 0 within 2 s.
 */
import { parseArgs } from 'node:util';
import { ApiKeyError, loadOrCreateApiKey } from '../../api/auth.js';
import { ApiListenError, listenLoopback } from '../../api/listen.js';
import { buildApi } from '../../api/server.js';
import { listenUnix } from '../../api/unix-socket.js';
import { ConfigError, defaultConfigPath, loadConfig } from '../../daemon/config.js';
import { EventHub } from '../../daemon/events.js';
import { createLogger } from '../../daemon/logger.js';
import { TunnelManager } from '../../daemon/manager.js';
import { apiKeyFile, apiSocketPath } from '../../daemon/paths.js';
import { PgpassKeeper } from '../../daemon/pgpass-keeper.js';
import { RuntimeTunnels } from '../../daemon/runtime-tunnels.js';
import { defaultStateFile } from '../../daemon/state.js';
import { TokenService } from '../../daemon/tokens.js';
import { VERSION } from '../version.js';

const SHUTDOWN_BUDGET_MS = 1800;

export async function daemonCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      'api-port': { type: 'string' },
      'no-api': { type: 'boolean' },
    },
  });
  const file = values.config ?? defaultConfigPath();
  if (values['api-port'] !== undefined && !/^\d{1,5}$/.test(values['api-port'])) {
    process.stderr.write(
      `ssmtun daemon: --api-port must be a port number, not ${JSON.stringify(values['api-port'])}\n`,
    );
    return 2;
  }
  let config: Awaited<ReturnType<typeof loadConfig>>;
  try {
    config = await loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`ssmtun: invalid configuration\n${e.message}\n`);
      return 78; // EX_CONFIG
    }
    throw e;
  }
  const logger = createLogger({ level: process.env.SSMTUN_LOG_LEVEL ?? config.logLevel });
  const keyFile = apiKeyFile();
  let apiKey: string | undefined;
  if (!values['no-api']) {
    try {
      apiKey = loadOrCreateApiKey(keyFile);
    } catch (e) {
      if (!(e instanceof ApiKeyError)) throw e;
      process.stderr.write(`ssmtun: ${e.message}\n  fix: ${e.fix}\n`);
      return 1;
    }
  }
  const apiPort = values['api-port'] ? Number(values['api-port']) : config.apiPort;
  if (apiPort < 1 || apiPort > 65535) {
    process.stderr.write(`ssmtun daemon: --api-port must be between 1 and 65535, not ${apiPort}\n`);
    return 2;
  }
  const manager = new TunnelManager({ logger });
  const tokens = new TokenService({ credentials: (t) => manager.credentials(t), logger });
  const events = new EventHub(manager);
  const runtime = new RuntimeTunnels(manager, { stateFile: defaultStateFile(), apiPort, logger });
  let started = false;
  await manager.start(config.tunnels);
  await runtime.load();
  events.start();

  const socketPath = apiSocketPath();
  const apiDeps = {
    manager,
    tokens,
    runtime,
    events,
    started: () => started,
    logger,
    version: VERSION,
    apiKey,
    keyFile,
    socketPath,
    port: apiPort,
  };
  const api = values['no-api'] ? undefined : buildApi(apiDeps);
  const unixApi = values['no-api'] ? undefined : buildApi({ ...apiDeps, trusted: true });
  let closeV6: (() => Promise<void>) | undefined;
  if (api) {
    try {
      closeV6 = await listenLoopback(api, apiPort);
    } catch (e) {
      if (!(e instanceof ApiListenError)) throw e;
      const holder = e.errno === 'EADDRINUSE' ? await ssmtunHolder(apiPort) : undefined;
      logger.error(
        { err: e.message, fix: holder ? `stop it first: kill ${holder}` : e.fix, port: apiPort },
        holder
          ? `another ssmtun daemon (pid ${holder}) already serves port ${apiPort}`
          : 'the API could not listen',
      );
      await Promise.all([manager.stop(), api.close()]);
      events.stop();
      tokens.stop();
      return 1;
    }
  }
  if (unixApi) {
    try {
      await listenUnix(unixApi, socketPath);
    } catch (e) {
      const err = e as Error & { fix?: string };
      logger.error({ err: err.message, fix: err.fix, socketPath }, 'API unix socket could not listen');
    }
  }
  const keeper =
    config.pgpass || config.pgservice
      ? new PgpassKeeper({
          tunnels: () => manager.configs(),
          tokens,
          pgpassFile: config.pgpass,
          pgserviceFile: config.pgservice,
          logger,
        })
      : undefined;
  await keeper?.start();
  started = true;
  logger.info(
    { config: file, tunnels: manager.list().length, apiPort, socketPath, pgpass: config.pgpass },
    'ssmtun daemon ready',
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => resolve(0), SHUTDOWN_BUDGET_MS);
      tokens.stop();
      events.stop();
      void Promise.all([manager.stop(), api?.close(), closeV6?.(), unixApi?.close(), keeper?.stop()]).finally(
        () => {
          clearTimeout(force);
          resolve(0);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** The pid of the ssmtun daemon answering on the port, if that is what holds it. */
async function ssmtunHolder(port: number): Promise<number | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { service?: string; pid?: number };
    return body.service === 'ssmtun' ? body.pid : undefined;
  } catch {
    return undefined;
  }
}
