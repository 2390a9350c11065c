/**
 * RDS IAM auth tokens for the tunnels' database users, from `@aws-sdk/rds-signer`.
 *
 * A token is a SigV4 presigned URL for `rds-db:connect`, valid 15 minutes, bound to the host name and
 * port the *database* sees. Clients reach it through 127.0.0.1:<local_port>, but the token is always
 * signed for the tunnel's real `remote_host`/`remote_port`: RDS checks the name, not the socket.
 *
 * RDS throttles IAM logins (new connections per second), and signing is cheap but not free, so one token
 * per (identity, host, port, user, region) is reused until 5 minutes before it expires and re-signed in
 * the background while someone keeps asking for it (pgpass keeper, API callers).
 */
import type { Logger } from 'pino';
import type { AwsCredentials } from './aws.js';
import type { TunnelConfig } from './config.js';
import { TunnelError } from './errors.js';

/** What RDS allows for X-Amz-Expires. */
export const TOKEN_LIFETIME_MS = 15 * 60_000;
/** Reuse a token until this long before it expires: a client that just got it must still log in with it. */
export const TOKEN_REFRESH_BEFORE_MS = 5 * 60_000;

export interface DbToken {
  token: string;
  expiresAt: Date;
  issuedAt: Date;
  host: string;
  port: number;
  user: string;
  region: string;
}

export interface TokenServiceOptions {
  /** The tunnel's AWS identity (same profile/region chain its SSM session uses). */
  credentials(tunnel: TunnelConfig): Promise<AwsCredentials>;
  logger?: Logger;
  now?: () => number;
  /** Defaults to @aws-sdk/rds-signer; injectable only to count calls in unit tests. */
  sign?: (p: SignParams) => Promise<string>;
}

export interface SignParams {
  hostname: string;
  port: number;
  username: string;
  region: string;
  credentials: AwsCredentials;
}

interface Entry {
  current?: DbToken;
  pending?: Promise<DbToken>;
  lastUsed: number;
  timer?: NodeJS.Timeout;
  tunnel: TunnelConfig;
}

/** Loaded on first use: the signer pulls in the SDK's whole credential-provider chain. */
async function signWithSdk(p: SignParams): Promise<string> {
  const { Signer } = await import('@aws-sdk/rds-signer');
  return new Signer({
    hostname: p.hostname,
    port: p.port,
    username: p.username,
    region: p.region,
    credentials: p.credentials,
  }).getAuthToken();
}

/** Why a tunnel cannot have a token, as an error that names the key to add and where. */
export function tokenTargetOf(t: TunnelConfig): { host: string; port: number; user: string } {
  const where = t.source.line > 0 ? `${t.source.file}:${t.source.line}` : t.source.file;
  if (!t.dbUser) {
    throw new TunnelError(
      'DB_USER_MISSING',
      `tunnel ${t.name} has no db_user, so there is no database user to sign a token for`,
      `add db_user = "<database user with GRANT rds_iam>" to [tunnels.${t.name}] (${where})`,
    );
  }
  if (!t.remoteHost) {
    throw new TunnelError(
      'REMOTE_HOST_MISSING',
      `tunnel ${t.name} has no remote_host; an RDS IAM token is signed for the database's endpoint name`,
      `add remote_host = "<name>.<id>.<region>.rds.amazonaws.com" to [tunnels.${t.name}] (${where})`,
    );
  }
  return { host: t.remoteHost, port: t.remotePort, user: t.dbUser };
}

export class TokenService {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly sign: (p: SignParams) => Promise<string>;
  private stopped = false;
  /** Tokens signed so far, per tunnel (metrics). */
  readonly signedCount = new Map<string, number>();

  constructor(private readonly opts: TokenServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.sign = opts.sign ?? signWithSdk;
  }

  /** A token valid for at least TOKEN_REFRESH_BEFORE_MS more (unless the AWS credentials end sooner). */
  async get(tunnel: TunnelConfig): Promise<DbToken> {
    const target = tokenTargetOf(tunnel);
    const credentials = await this.opts.credentials(tunnel);
    const key = [credentials.accessKeyId, target.host, target.port, target.user, tunnel.region].join('|');
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { lastUsed: 0, tunnel };
      this.entries.set(key, entry);
    }
    entry.lastUsed = this.now();
    entry.tunnel = tunnel;
    if (entry.current && this.fresh(entry.current)) return entry.current;
    return this.mint(key, entry, credentials);
  }

  private fresh(t: DbToken): boolean {
    return t.expiresAt.getTime() - this.now() > TOKEN_REFRESH_BEFORE_MS;
  }

  private mint(key: string, entry: Entry, credentials: AwsCredentials): Promise<DbToken> {
    entry.pending ??= (async () => {
      const { host, port, user } = tokenTargetOf(entry.tunnel);
      const issuedAt = this.now();
      let token: string;
      try {
        token = await this.sign({
          hostname: host,
          port,
          username: user,
          region: entry.tunnel.region,
          credentials,
        });
      } catch (e) {
        throw new TunnelError(
          'TOKEN_FAILED',
          `could not sign an RDS auth token for ${user}@${host}:${port}: ${(e as Error).message}`,
          undefined,
          { cause: e },
        );
      }
      // A token signed with temporary credentials stops working when they do.
      const credsEnd = credentials.expiration?.getTime() ?? Number.POSITIVE_INFINITY;
      const expiresAt = new Date(Math.min(issuedAt + TOKEN_LIFETIME_MS, credsEnd));
      const t: DbToken = {
        token,
        issuedAt: new Date(issuedAt),
        expiresAt,
        host,
        port,
        user,
        region: entry.tunnel.region,
      };
      this.signedCount.set(entry.tunnel.name, (this.signedCount.get(entry.tunnel.name) ?? 0) + 1);
      entry.current = t;
      this.opts.logger?.debug(
        { tunnel: entry.tunnel.name, user, host, port, expiresAt: expiresAt.toISOString() },
        'signed RDS auth token',
      );
      this.schedule(key, entry);
      return t;
    })().finally(() => {
      entry.pending = undefined;
    });
    return entry.pending;
  }

  /** Re-sign before the refresh point while the token is still being asked for; forget it otherwise. */
  private schedule(key: string, entry: Entry): void {
    if (entry.timer) clearTimeout(entry.timer);
    if (this.stopped || !entry.current) return;
    const due = entry.current.expiresAt.getTime() - TOKEN_REFRESH_BEFORE_MS - 30_000;
    entry.timer = setTimeout(
      () => {
        entry.timer = undefined;
        if (this.stopped) return;
        if (this.now() - entry.lastUsed > TOKEN_LIFETIME_MS) {
          this.entries.delete(key);
          return;
        }
        this.opts
          .credentials(entry.tunnel)
          .then((c) => this.mint(key, entry, c))
          .catch((e: TunnelError) =>
            this.opts.logger?.warn(
              { tunnel: entry.tunnel.name, code: e.code, err: e.message, fix: e.fix },
              'RDS auth token refresh failed; the next request retries',
            ),
          );
      },
      Math.max(1_000, due - this.now()),
    );
    entry.timer.unref();
  }

  /** Drops cached tokens of one tunnel (removed or changed at run time). */
  forget(tunnelName: string): void {
    for (const [key, e] of this.entries) {
      if (e.tunnel.name !== tunnelName) continue;
      if (e.timer) clearTimeout(e.timer);
      this.entries.delete(key);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    this.entries.clear();
  }
}
