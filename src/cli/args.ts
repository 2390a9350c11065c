/**
 * Argument parsing shared by the commands: node's parseArgs, `--help` that prints the command's usage
 * and exits 0, and everything after `--` kept for the tool a command runs (psql, pg_dump, mysql).
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { suggest } from '../daemon/config/suggest.js';

export class UsageError extends Error {
  readonly code = 'USAGE';
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every command that talks to the daemon takes. */
export const CLIENT_OPTIONS = {
  config: { type: 'string', short: 'c' },
  'api-port': { type: 'string' },
} as const satisfies Options;

export const CLIENT_OPTIONS_HELP = `  -c, --config FILE   config file (default: $SSMTUN_CONFIG or ~/.config/ssmtun/config.toml)
      --api-port N    talk to the daemon on 127.0.0.1:N instead of its unix socket`;

export interface Parsed<O extends Options> {
  values: { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string };
  positionals: string[];
  /** What came after `--`. */
  rest: string[];
  help: boolean;
}

export function parseCommand<O extends Options>(argv: string[], options: O, usage: string): Parsed<O> {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const rest = dash < 0 ? [] : argv.slice(dash + 1);
  try {
    const { values, positionals } = parseArgs({
      args: own,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    const help = (values as { help?: boolean }).help === true;
    return { values: values as Parsed<O>['values'], positionals, rest, help };
  } catch (e) {
    const message = (e as Error).message;
    const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(message)?.[1];
    const guess = unknown
      ? suggest(unknown.replace(/^-+/, ''), [...Object.keys(options), 'help'])
      : undefined;
    const text = unknown ? `unknown option ${unknown}` : message;
    throw new UsageError(guess ? `${text} (did you mean --${guess}?)` : text, usage);
  }
}

/** Exactly one tunnel name, or a usage error that shows how to list them. */
export function tunnelName(positionals: string[], usage: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? 'which tunnel? (ssmtun status lists them)'
        : `one tunnel name expected, got ${positionals.join(' ')}`,
      usage,
    );
  }
  return positionals[0];
}
