#!/usr/bin/env node
/** `ssmtun <command>`: a thin dispatcher; each command lives in commands/. */
import { suggest } from '../daemon/config/suggest.js';
import { VERSION } from './version.js';

const USAGE = `ssmtun ${VERSION} — tunnels to private databases through AWS Session Manager

usage: ssmtun <command> [options]

commands:
  daemon [--config FILE]     run the tunnel daemon in the foreground
  status [NAME] [--watch]    the running daemon's tunnels (also: ls)
  open NAME | close NAME     open the tunnel's session now / terminate it
  add NAME --region ... | rm NAME
                             add a tunnel at run time (kept across restarts) / remove it
  reload                     re-read the config file and apply the difference
  doctor                     check config, credentials, daemon, API key and targets, with fixes

  psql NAME [-- ARGS]        run psql through the tunnel, signed in with a fresh IAM token (TLS verify-full)
  exec NAME -- CMD [ARGS]    run any libpq tool (pg_dump, pgbench, ...) with the tunnel's PG* settings
  mysql NAME [-- ARGS]       run the mysql client through the tunnel with a fresh IAM token
  env NAME [--shell fish]    print the settings as export lines (eval "$(ssmtun env NAME)")
  url NAME                   print a libpq URI with the token and hostaddr
  token NAME                 print a fresh RDS IAM auth token
  pgpass [--file F]          write the tunnels' tokens into the ssmtun block of ~/.pgpass
  pgservice [--file F]       write a section per tunnel into ~/.pg_service.conf

  demo [--once]              run the simulator, a database and the daemon locally and show a tunnel
  sim [--json] [--port N]    run the simulated AWS side (SSM API + gateway + agents + RDS) standalone

  service <install|uninstall|status|logs [-f]|restart> [--dry-run]
                             run the daemon at login (systemd user unit / LaunchAgent)
  logs [-f]                  the daemon's logs, where the service manager keeps them
  wait [--timeout 30s]       return 0 once the running daemon is ready, 1 if not within the timeout
  help                       this text

Every command takes --help. Exit codes: 0 ok, 1 failure, 2 usage error, 78 invalid config.
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  daemon: async () => (await import('./commands/daemon.js')).daemonCommand,
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  sim: async () => (await import('./commands/sim.js')).simCommand,
  status: async () => (await import('./commands/status.js')).statusCommand,
  ls: async () => (await import('./commands/status.js')).statusCommand,
  open: async () => (await import('./commands/tunnels.js')).openCommand,
  close: async () => (await import('./commands/tunnels.js')).closeCommand,
  add: async () => (await import('./commands/tunnels.js')).addCommand,
  rm: async () => (await import('./commands/tunnels.js')).rmCommand,
  reload: async () => (await import('./commands/tunnels.js')).reloadCommand,
  doctor: async () => (await import('./commands/doctor.js')).doctorCommand,
  token: async () => (await import('./commands/token.js')).tokenCommand,
  env: async () => (await import('./commands/token.js')).envCommand,
  url: async () => (await import('./commands/token.js')).urlCommand,
  psql: async () => (await import('./commands/run.js')).psqlCommand,
  exec: async () => (await import('./commands/run.js')).execCommand,
  mysql: async () => (await import('./commands/run.js')).mysqlCommand,
  pgpass: async () => (await import('./commands/pgfiles.js')).pgpassCommand,
  pgservice: async () => (await import('./commands/pgfiles.js')).pgserviceCommand,
  service: async () => (await import('./commands/service.js')).serviceCommand,
  wait: async () => (await import('./commands/wait.js')).waitCommand,
  logs: async () => {
    const { serviceCommand } = await import('./commands/service.js');
    return (argv: string[]) => serviceCommand(['logs', ...argv]);
  },
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
    const guess = suggest(name, Object.keys(commands), {
      remove: 'rm',
      delete: 'rm',
      list: 'ls',
      start: 'open',
      stop: 'close',
    });
    process.stderr.write(
      `ssmtun: unknown command ${JSON.stringify(name)}${guess ? ` (did you mean ${guess}?)` : ''}\n\n${USAGE}`,
    );
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (e) {
    const err = e as { code?: string; message?: string; fix?: string; usage?: string };
    process.stderr.write(
      `ssmtun ${name}: ${err.message ?? String(e)}${err.fix ? `\n  fix: ${err.fix}` : ''}\n`,
    );
    if (err.code === 'USAGE') {
      process.stderr.write(`\n${err.usage}`);
      return 2;
    }
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
