/**
 * `ssmtun service install | uninstall | status | logs [-f] | restart [--dry-run]`: the login service
 * for this platform (systemd user unit on Linux, LaunchAgent on macOS). `--platform` exists for tests
 * and for preparing a file for another machine with `--dry-run`.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_API_PORT, defaultConfigPath, loadConfig } from '../../daemon/config.js';
import {
  applyPlan,
  installPlan,
  printPlan,
  serviceLogs,
  serviceRestart,
  serviceStatus,
  uninstallPlan,
} from '../../service/manage.js';
import { resolveScript } from '../../service/paths.js';
import { runCommand } from '../../service/runner.js';
import { type ServiceContext, ServiceError, type ServicePlatform } from '../../service/types.js';
import { VERSION } from '../version.js';

const USAGE = `usage: ssmtun service <install|uninstall|status|logs|restart> [options]
  --dry-run          print the files (# <path> + content) and commands ($ <command>) instead of acting
  --config FILE      the config the service runs with (default: ${defaultConfigPath()})
  --no-sandbox       (Linux) leave out the hardening that needs user namespaces
  --force            replace or remove a service file ssmtun did not write
  -f, --follow       (logs) keep following
`;

async function apiPortOf(configPath: string): Promise<number> {
  try {
    return (await loadConfig(configPath)).apiPort;
  } catch {
    return DEFAULT_API_PORT;
  }
}

/** `overrides` lets tests inject HOME, the script path, the command runner and the output. */
export async function serviceCommand(
  argv: string[],
  overrides: Partial<ServiceContext> = {},
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'dry-run': { type: 'boolean' },
      config: { type: 'string', short: 'c' },
      'no-sandbox': { type: 'boolean' },
      force: { type: 'boolean' },
      follow: { type: 'boolean', short: 'f' },
      platform: { type: 'string' },
      'api-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [action] = positionals;
  if (!action || !['install', 'uninstall', 'status', 'logs', 'restart'].includes(action)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const platform = (values.platform ?? process.platform) as ServicePlatform;
  if (platform !== 'linux' && platform !== 'darwin') {
    throw new ServiceError(
      'UNSUPPORTED_PLATFORM',
      `no login service support for ${platform}`,
      'run ssmtun daemon from your own service manager',
    );
  }
  const configPath = path.resolve(values.config ?? defaultConfigPath());
  const dryRun = values['dry-run'] ?? false;
  const ctx: ServiceContext = {
    platform,
    home: overrides.home ?? os.homedir(),
    uid: process.getuid?.() ?? 0,
    env: process.env,
    nodePath: process.execPath,
    scriptPath: overrides.scriptPath ?? (action === 'install' ? resolveScript(process.argv[1]) : ''),
    configPath,
    apiPort: values['api-port'] ? Number(values['api-port']) : await apiPortOf(configPath),
    version: VERSION,
    run: runCommand,
    out: (s) => process.stdout.write(s),
    ...overrides,
  };
  switch (action) {
    case 'install':
    case 'uninstall': {
      const plan =
        action === 'install'
          ? await installPlan(ctx, { sandbox: !values['no-sandbox'], force: values.force })
          : await uninstallPlan(ctx, { force: values.force });
      if (dryRun) printPlan(ctx, plan);
      else await applyPlan(ctx, plan);
      return 0;
    }
    case 'status':
      return serviceStatus(ctx);
    case 'restart':
      await serviceRestart(ctx);
      return 0;
    default:
      return serviceLogs(ctx, values.follow ?? false);
  }
}
