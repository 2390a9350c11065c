#!/usr/bin/env node
/** `ssmtun <command>`: a thin dispatcher; each command lives in commands/. */
import { VERSION } from './version.js';

const USAGE = `ssmtun ${VERSION} — tunnels to private databases through AWS Session Manager

usage: ssmtun <command> [options]

commands:
  daemon [--config FILE]     run the tunnel daemon in the foreground
  demo [--once]              run the simulator, a database and the daemon locally and show a tunnel
  sim [--json] [--port N]    run the simulated AWS side (SSM API + gateway + agents) standalone
  status                     list tunnels of the running daemon
  service <install|uninstall|status|logs [-f]|restart> [--dry-run]
                             run the daemon at login (systemd user unit / LaunchAgent)
  wait [--timeout 30s]       return 0 once the running daemon is ready, 1 if not within the timeout
  help                       this text
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  daemon: async () => (await import('./commands/daemon.js')).daemonCommand,
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  sim: async () => (await import('./commands/sim.js')).simCommand,
  status: async () => (await import('./commands/status.js')).statusCommand,
  service: async () => (await import('./commands/service.js')).serviceCommand,
  wait: async () => (await import('./commands/wait.js')).waitCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`ssmtun: unknown command ${JSON.stringify(name)}\n\n${USAGE}`);
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (e) {
    const err = e as { code?: string; message?: string; fix?: string };
    process.stderr.write(
      `ssmtun ${name}: ${err.message ?? String(e)}${err.fix ? `\n  fix: ${err.fix}` : ''}\n`,
    );
    return err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
      ? 2
      : 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`ssmtun: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
