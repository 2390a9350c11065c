/**
 * `ssmtun daemon`: the composition root. Loads the config, builds the tunnel manager and the API,
 * and wires signals: SIGTERM/SIGINT terminate every session and exit 0 within 2 s.
 */
import { parseArgs } from 'node:util';
import { buildApi } from '../../api/server.js';
import { ConfigError, defaultConfigPath, loadConfig } from '../../daemon/config.js';
import { createLogger } from '../../daemon/logger.js';
import { TunnelManager } from '../../daemon/manager.js';
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
  const manager = new TunnelManager({ logger });
  await manager.start(config.tunnels);

  const api = values['no-api'] ? undefined : buildApi({ manager, logger, version: VERSION });
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
  logger.info({ config: file, tunnels: config.tunnels.length, apiPort }, 'ssmtun daemon ready');

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => resolve(0), SHUTDOWN_BUDGET_MS);
      void Promise.all([manager.stop(), api?.close()]).finally(() => {
        clearTimeout(force);
        resolve(0);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
