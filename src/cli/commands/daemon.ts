/**
 * `ssmtun daemon`: the composition root. Loads the config, builds the tunnel manager and the API,
 * and wires signals. Exit codes are for service managers (systemd Restart=on-failure, launchd
 * KeepAlive SuccessfulExit=false):
 *   0   stopped by SIGTERM/SIGINT (every session terminated, within 2 s)
 *   1   could not run: another daemon serves this config or API port (its pid is logged), the API
 *       port is taken, or no tunnel could listen
 *   78  the config is invalid (EX_CONFIG; restarting would only repeat it)
 * SIGHUP re-reads the config and applies only the difference; it never stops the daemon.
 */
import { parseArgs } from 'node:util';
import { buildApi } from '../../api/server.js';
import { ConfigError, defaultConfigPath, loadConfig } from '../../daemon/config.js';
import { AlreadyRunningError, apiLockKey, configLockKey, DaemonLock } from '../../daemon/lock.js';
import { createLogger, routeProcessWarnings } from '../../daemon/logger.js';
import { TunnelManager } from '../../daemon/manager.js';
import { reloadConfig } from '../../daemon/reload.js';
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
  // Before anything slow: a SIGHUP while starting must not kill the daemon (Node's default would).
  let reloadRequested = false;
  let onHup = () => {
    reloadRequested = true;
  };
  const hup = () => onHup();
  process.on('SIGHUP', hup);

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
  routeProcessWarnings(logger);
  const apiPort = values['api-port'] ? Number(values['api-port']) : config.apiPort;

  const lock = new DaemonLock();
  try {
    lock.acquire([
      { key: configLockKey(file), what: `the config ${file}` },
      ...(values['no-api'] ? [] : [{ key: apiLockKey(apiPort), what: `API port ${apiPort}` }]),
    ]);
  } catch (e) {
    if (e instanceof AlreadyRunningError) {
      logger.error({ code: e.code, pid: e.pid, fix: e.fix }, e.message);
      return 1;
    }
    throw e;
  }
  const release = () => lock.release();
  process.once('exit', release);

  const manager = new TunnelManager({ logger });
  const api = values['no-api'] ? undefined : buildApi({ manager, logger, version: VERSION });
  const fail = async (code: number) => {
    await Promise.all([manager.stop(), api?.close()]);
    release();
    return code;
  };
  try {
    await manager.start(config.tunnels);
    const tunnels = manager.list();
    if (tunnels.length > 0 && tunnels.every((t) => t.listening.length === 0)) {
      logger.error(
        {
          tunnels: tunnels.map((t) => ({ name: t.name, error: t.lastError?.message, fix: t.lastError?.fix })),
        },
        'no tunnel could listen; exiting 1 so the service manager retries later',
      );
      return await fail(1);
    }
    if (api) {
      try {
        await api.listen({ host: '127.0.0.1', port: apiPort });
      } catch (e) {
        // Another program holds the port (another ssmtun would have been caught by the lock).
        logger.error(
          {
            err: (e as Error).message,
            port: apiPort,
            fix: `free port ${apiPort} or set [daemon] api_port in ${file} (or pass --api-port)`,
          },
          'API could not listen',
        );
        return await fail(1);
      }
    }
  } catch (e) {
    await fail(1);
    throw e;
  }
  logger.info(
    { config: file, tunnels: config.tunnels.length, apiPort, version: VERSION },
    'ssmtun daemon ready',
  );

  // Reloads run one after another; a burst of SIGHUPs collapses into at most one pending reload.
  let reloading: Promise<void> | undefined;
  let again = false;
  const reload = () => {
    if (reloading) {
      again = true;
      return;
    }
    logger.info({ signal: 'SIGHUP', config: file }, 'reloading config');
    reloading = reloadConfig(manager, file, logger, { apiPort: config.apiPort })
      .then(
        () => {},
        () => {}, // refused or failed: logged by reloadConfig; the running set stays
      )
      .finally(() => {
        reloading = undefined;
        if (again) {
          again = false;
          reload();
        }
      });
  };
  onHup = reload;
  if (reloadRequested) reload();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      const done = () => {
        clearTimeout(force);
        release();
        resolve(0);
      };
      const force = setTimeout(done, SHUTDOWN_BUDGET_MS);
      void Promise.all([manager.stop(), api?.close()]).finally(done);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
