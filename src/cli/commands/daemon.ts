/**
 * `ssmtun daemon`: the composition root. Loads the config, builds the tunnel manager and the API,
 * and wires signals: SIGTERM/SIGINT terminate every session and exit 0 within 2 s.
 */
import { parseArgs } from 'node:util';
import { ApiKeyError, loadOrCreateApiKey } from '../../api/auth.js';
import { buildApi } from '../../api/server.js';
import { listenUnix } from '../../api/unix-socket.js';
import { ConfigError, defaultConfigPath, loadConfig } from '../../daemon/config.js';
import { createLogger } from '../../daemon/logger.js';
import { TunnelManager } from '../../daemon/manager.js';
import { apiKeyFile, apiSocketPath } from '../../daemon/paths.js';
import { PgpassKeeper } from '../../daemon/pgpass-keeper.js';
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
  const manager = new TunnelManager({ logger });
  const tokens = new TokenService({ credentials: (t) => manager.credentials(t), logger });
  await manager.start(config.tunnels);

  const socketPath = apiSocketPath();
  const apiDeps = { manager, tokens, logger, version: VERSION, apiKey, keyFile, socketPath };
  const api = values['no-api'] ? undefined : buildApi(apiDeps);
  const unixApi = values['no-api'] ? undefined : buildApi({ ...apiDeps, trusted: true });
  const apiPort = values['api-port'] ? Number(values['api-port']) : config.apiPort;
  if (api) {
    try {
      await api.listen({ host: '127.0.0.1', port: apiPort });
    } catch (e) {
      logger.error(
        { err: (e as Error).message, port: apiPort },
        'API could not listen; tunnels keep working',
      );
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
  logger.info(
    { config: file, tunnels: config.tunnels.length, apiPort, socketPath, pgpass: config.pgpass },
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
      void Promise.all([manager.stop(), api?.close(), unixApi?.close(), keeper?.stop()]).finally(() => {
        clearTimeout(force);
        resolve(0);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
