/**
 * `ssmtun daemon`: the composition root. Loads the config, builds the tunnel manager, the token
 * service, the runtime tunnels, the event hub and the API (TCP on both loopbacks + the unix socket),
 * and wires signals. Exit codes are for service managers (systemd Restart=on-failure, launchd
 * KeepAlive SuccessfulExit=false):
 *   0   stopped by SIGTERM/SIGINT (every session terminated, within 2 s)
 *   1   could not run: another daemon serves this config or API port (its pid is logged), the API
 *       port is taken, the API key file is unsafe, or no tunnel could listen
 *   2   bad command line
 *   78  the config is invalid (EX_CONFIG; restarting would only repeat it)
 * SIGHUP (and POST /reload) re-reads the config and applies only the difference; it never stops the daemon.
 */
import { ApiKeyError, loadOrCreateApiKey } from '../../api/auth.js';
import { ApiListenError, listenLoopback } from '../../api/listen.js';
import { buildApi } from '../../api/server.js';
import { listenUnix } from '../../api/unix-socket.js';
import { ConfigError, defaultConfigPath, loadConfig, logConfigWarnings } from '../../daemon/config.js';
import { EventHub } from '../../daemon/events.js';
import { AlreadyRunningError, apiLockKey, configLockKey, DaemonLock } from '../../daemon/lock.js';
import { createLogger, routeProcessWarnings } from '../../daemon/logger.js';
import type { ReconcileResult } from '../../daemon/manager.js';
import { TunnelManager } from '../../daemon/manager.js';
import { apiKeyFile, apiSocketPath } from '../../daemon/paths.js';
import { PgpassKeeper } from '../../daemon/pgpass-keeper.js';
import { reloadConfig } from '../../daemon/reload.js';
import { RuntimeTunnels } from '../../daemon/runtime-tunnels.js';
import { defaultStateFile } from '../../daemon/state.js';
import { TokenService } from '../../daemon/tokens.js';
import { CLIENT_OPTIONS, parseCommand } from '../args.js';
import { VERSION } from '../version.js';
import { usage } from './token.js';

const SHUTDOWN_BUDGET_MS = 1800;

const USAGE = `usage: ssmtun daemon [--config FILE] [--api-port N] [--no-api]

Runs the tunnel daemon in the foreground (a service manager runs it the same way: ssmtun service install).
Logs are JSON lines on stdout (readable text on a terminal).
  -c, --config FILE   config file (default: $SSMTUN_CONFIG or ~/.config/ssmtun/config.toml)
      --api-port N    API port instead of [daemon] api_port (default 7711)
      --no-api        no local API (and no ssmtun status / psql / token)
Signals: SIGTERM/SIGINT terminate every session and exit 0; SIGHUP reloads the config.
Exit codes: 0 stopped, 1 could not run (another daemon, port taken, no tunnel could listen),
2 usage, 78 invalid config.
`;

export async function daemonCommand(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(
    argv,
    { ...CLIENT_OPTIONS, 'no-api': { type: 'boolean' } },
    USAGE,
  );
  if (help) return usage(USAGE);
  if (positionals.length > 0) {
    process.stderr.write(`ssmtun daemon: unexpected ${positionals.join(' ')}\n\n${USAGE}`);
    return 2;
  }
  // Before anything slow: a SIGHUP while starting must not kill the daemon (Node's default would).
  let reloadRequested = false;
  let onHup = () => {
    reloadRequested = true;
  };
  const hup = () => onHup();
  process.on('SIGHUP', hup);

  if (values['api-port'] !== undefined && !/^\d{1,5}$/.test(values['api-port'])) {
    process.stderr.write(
      `ssmtun daemon: --api-port must be a port number, not ${JSON.stringify(values['api-port'])}\n`,
    );
    return 2;
  }
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
  const apiPort = values['api-port'] ? Number(values['api-port']) : config.apiPort;
  if (apiPort < 1 || apiPort > 65535) {
    process.stderr.write(`ssmtun daemon: --api-port must be between 1 and 65535, not ${apiPort}\n`);
    return 2;
  }
  const logger = createLogger({ level: process.env.SSMTUN_LOG_LEVEL ?? config.logLevel });
  routeProcessWarnings(logger);
  logConfigWarnings(config, logger);

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

  const keyFile = apiKeyFile();
  let apiKey: string | undefined;
  if (!values['no-api']) {
    try {
      apiKey = loadOrCreateApiKey(keyFile);
    } catch (e) {
      if (!(e instanceof ApiKeyError)) throw e;
      logger.error({ code: e.code, fix: e.fix }, e.message);
      release();
      return 1;
    }
  }

  const events = new EventHub();
  // The two need each other: tunnels ask for tokens, tokens are signed with the tunnels' credentials.
  const manager: TunnelManager = new TunnelManager({
    logger,
    observer: events,
    tokens: { get: (t) => tokens.get(t) },
  });
  const tokens = new TokenService({ credentials: (t) => manager.credentials(t), logger });
  const runtime = new RuntimeTunnels(manager, { stateFile: defaultStateFile(), apiPort, logger });
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

  // Reloads run one after another; a burst of SIGHUPs collapses into at most one pending reload.
  let reloading: Promise<ReconcileResult> | undefined;
  const reload = async (): Promise<ReconcileResult> => {
    while (reloading) await reloading.catch(() => {});
    logger.info({ config: file }, 'reloading config');
    reloading = reloadConfig(manager, file, logger, { apiPort: config.apiPort });
    try {
      const r = await reloading;
      for (const name of [...r.removed, ...r.changed]) tokens.forget(name);
      events.publish({
        type: 'reload',
        at: new Date().toISOString(),
        added: r.added,
        removed: r.removed,
        changed: r.changed,
      });
      void keeper?.refresh();
      return r;
    } catch (e) {
      events.publish({
        type: 'reload',
        at: new Date().toISOString(),
        added: [],
        removed: [],
        changed: [],
        error: (e as Error).message,
      });
      throw e;
    } finally {
      reloading = undefined;
    }
  };

  let started = false;
  const socketPath = apiSocketPath();
  const apiDeps = {
    manager,
    tokens,
    runtime,
    events,
    reload,
    started: () => started,
    logger,
    version: VERSION,
    apiKey,
    keyFile,
    socketPath,
    port: apiPort,
  };
  const api = values['no-api'] ? undefined : buildApi(apiDeps);
  let closeV6: (() => Promise<void>) | undefined;
  let closeUnix: (() => Promise<void>) | undefined;
  const stopAll = () =>
    Promise.all([manager.stop(), api?.close(), closeV6?.(), closeUnix?.(), keeper?.stop()]).finally(() => {
      tokens.stop();
    });
  const fail = async (code: number) => {
    await stopAll();
    release();
    return code;
  };
  try {
    await manager.start(config.tunnels);
    await runtime.load();
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
        closeV6 = await listenLoopback(api, apiPort);
      } catch (e) {
        if (!(e instanceof ApiListenError)) throw e;
        const holder = e.errno === 'EADDRINUSE' ? await ssmtunHolder(apiPort) : undefined;
        logger.error(
          {
            err: e.message,
            port: apiPort,
            fix: holder
              ? `stop it first: kill ${holder}`
              : `free port ${apiPort} or set [daemon] api_port in ${file} (or pass --api-port)`,
          },
          holder
            ? `another ssmtun daemon (pid ${holder}) already serves port ${apiPort}`
            : 'API could not listen',
        );
        return await fail(1);
      }
    }
    if (api) {
      try {
        closeUnix = await listenUnix(api, socketPath);
      } catch (e) {
        const err = e as Error & { fix?: string };
        logger.error({ err: err.message, fix: err.fix, socketPath }, 'API unix socket could not listen');
      }
    }
    await keeper?.start();
  } catch (e) {
    await fail(1);
    throw e;
  }
  started = true;
  logger.info(
    {
      config: file,
      tunnels: manager.list().length,
      apiPort,
      socketPath,
      pgpass: config.pgpass,
      version: VERSION,
    },
    'ssmtun daemon ready',
  );

  onHup = () => {
    logger.info({ signal: 'SIGHUP' }, 'SIGHUP: reload');
    // Refused or failed reloads are logged by reloadConfig; the running set stays.
    void reload().catch(() => {});
  };
  if (reloadRequested) onHup();

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
      void stopAll().finally(done);
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
