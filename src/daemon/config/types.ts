/** The shapes the config is parsed into, the defaults it falls back on, and how problems are reported. */

export const DOCUMENT_REMOTE_HOST = 'AWS-StartPortForwardingSessionToRemoteHost';
export const DOCUMENT_LOCAL = 'AWS-StartPortForwardingSession';

export const DEFAULT_API_PORT = 7711;
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_BIND: readonly string[] = ['127.0.0.1', '::1'];
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export const ENGINES = ['postgres', 'mysql'] as const;
/** Node timers overflow above 2^31-1 ms and then fire immediately, which would close tunnels at once. */
export const MAX_IDLE_TIMEOUT_MS = 596 * 3_600_000;

export interface TunnelConfig {
  name: string;
  profile?: string;
  region: string;
  target: { kind: 'instance'; instanceId: string } | { kind: 'tag'; key: string; value: string };
  remoteHost?: string;
  remotePort: number;
  localPort: number;
  bind: string[];
  dbUser?: string;
  dbName?: string;
  engine: 'postgres' | 'mysql';
  /** PEM file clients verify the database's certificate against; undefined = the shipped RDS bundle. */
  caBundle?: string;
  /** libpq sslmode handed to clients (env, url, pgservice). */
  sslmode: 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  /** "iam": the local port is a PostgreSQL front that signs in with IAM tokens; undefined = "none" (plain forwarding). */
  auth?: 'none' | 'iam';
  /** Users the IAM front lets in besides dbUser. */
  dbUsers?: string[];
  /** true: local connections from other OS users are accepted; undefined = refused (Linux). */
  allowOtherUsers?: boolean;
  /** 0 = never */
  idleTimeoutMs: number;
  endpoint?: string;
  lazy: boolean;
  /** Session pool size (1..16); set only when above 1. */
  sessions?: number;
  /** max_buffer: bytes queued towards one slow local reader before that connection is reset. */
  maxBufferBytes?: number;
  /** max_connections: connections per tunnel (waiting ones included). */
  maxConnections?: number;
  /** Derived from remoteHost presence. */
  documentName: string;
  /** StartSession Parameters: portNumber, localPortNumber, plus host when remoteHost is set. */
  parameters: Record<string, string[]>;
  /** Where [tunnels.NAME] starts. */
  source: { file: string; line: number };
}

export interface DaemonConfig {
  apiPort: number;
  logLevel: string;
  /** pgpass file whose ssmtun block the daemon keeps fresh; undefined = off. */
  pgpass?: string;
  /** pg_service.conf whose ssmtun block the daemon keeps up to date; undefined = off. */
  pgservice?: string;
  tunnels: TunnelConfig[];
  file: string;
  /** What the daemon accepts but logs at every load (e.g. a group-writable file), with the fix. */
  warnings?: ConfigIssue[];
}

export interface ConfigIssue {
  file: string;
  /** 1-based; 0 when there is no line (missing file, tunnels added through the API). */
  line: number;
  /** Only for TOML syntax errors, where the parser knows it. */
  column?: number;
  /** Dotted TOML path, e.g. `tunnels.orders-db.local_port`. */
  key?: string;
  message: string;
  fix: string;
}

export function formatIssue(issue: ConfigIssue): string {
  let where = issue.file;
  if (issue.line > 0) where += `:${issue.line}`;
  if (issue.line > 0 && issue.column !== undefined) where += `:${issue.column}`;
  return `${where}: ${issue.message}. ${issue.fix}`;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}
