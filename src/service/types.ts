/**
 * What a service install needs to know about the machine, all injectable: tests pass another
 * platform, a temporary HOME and a recording command runner, and get exactly what a user would.
 */

export type ServicePlatform = 'linux' | 'darwin';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv without a shell. `inherit` streams to the terminal (logs -f); otherwise output is captured. */
export type CommandRunner = (argv: string[], opts?: { inherit?: boolean }) => Promise<CommandResult>;

export interface ServiceContext {
  platform: ServicePlatform;
  home: string;
  uid: number;
  /** The environment the install runs in (PATH, XDG_*, AWS_CONFIG_FILE). */
  env: NodeJS.ProcessEnv;
  /** Absolute path of the node binary the service runs. */
  nodePath: string;
  /** Absolute path of the compiled ssmtun entry script (dist/cli/index.js). */
  scriptPath: string;
  /** Absolute path of the config file the service reads. */
  configPath: string;
  apiPort: number;
  version: string;
  run: CommandRunner;
  out: (text: string) => void;
  /** Asks the daemon's /health; injectable so tests need no daemon. */
  health?: (apiPort: number) => Promise<{ ok: boolean; version?: string; tunnels?: number } | undefined>;
}

export interface PlannedFile {
  path: string;
  content: string;
  mode: number;
}

export interface PlannedCommand {
  argv: string[];
  /** e.g. bootout of a service that is not loaded yet: failing is the expected case. */
  allowFail?: boolean;
}

/** What one action writes and runs, in order; `--dry-run` prints it instead. */
export interface ServicePlan {
  files: PlannedFile[];
  /** Directories to create that no file implies (launchd does not create its log directory). */
  dirs: string[];
  /** Files to delete (uninstall). */
  remove: string[];
  commands: PlannedCommand[];
  /** Printed after a real run (hints such as enable-linger). */
  notes: string[];
}

export class ServiceError extends Error {
  readonly code: string;
  readonly fix?: string;
  constructor(code: string, message: string, fix?: string) {
    super(message);
    this.name = 'ServiceError';
    this.code = code;
    this.fix = fix;
  }
}

/** First line of every file install writes, so uninstall never deletes a file someone else wrote. */
export const MARKER = 'Written by `ssmtun service install`';
