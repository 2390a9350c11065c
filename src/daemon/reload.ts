/**
 * Reload = read the config file again and reconcile. Shared by SIGHUP and the API's reload route,
 * so both refuse a broken file the same way: nothing changes, and the ConfigError (file:line + fix
 * for every problem) is logged and returned to the caller.
 */
import type { Logger } from 'pino';
import { ConfigError, loadConfig, logConfigWarnings } from './config.js';
import type { ReconcileResult, TunnelManager } from './manager.js';

export async function reloadConfig(
  manager: TunnelManager,
  file: string,
  logger: Logger,
  /** What the running daemon read at start, to warn about settings a reload cannot change. */
  running: { apiPort?: number } = {},
): Promise<ReconcileResult> {
  let config: Awaited<ReturnType<typeof loadConfig>>;
  try {
    config = await loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      logger.error(
        {
          config: file,
          issues: e.issues.map((i) => ({ line: i.line, key: i.key, message: i.message, fix: i.fix })),
        },
        `config not reloaded; the running tunnels stay as they are:\n${e.message}`,
      );
    }
    throw e;
  }
  if (running.apiPort !== undefined && config.apiPort !== running.apiPort) {
    logger.warn(
      { apiPort: config.apiPort, running: running.apiPort },
      'api_port changed: it takes effect at the next restart (ssmtun service restart)',
    );
  }
  logger.level = process.env.SSMTUN_LOG_LEVEL ?? config.logLevel;
  logConfigWarnings(config, logger);
  return manager.reconcile(config.tunnels);
}
