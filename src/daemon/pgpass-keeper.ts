/**
 * `[daemon] pgpass = true`: the daemon keeps the pgpass block fresh, so `psql "service=orders"` and GUI
 * tools that read pgpass log in with no password step. It rewrites the block when a token is re-signed
 * (at least every 10 minutes, and always before the oldest entry's token expires), and the
 * pg_service.conf block when the set of tunnels changes.
 */
import type { Logger } from 'pino';
import type { TunnelConfig } from './config.js';
import { connectionInfo } from './connection.js';
import type { TunnelError } from './errors.js';
import {
  type PgpassEntry,
  pgpassEntriesFor,
  serviceEntryFor,
  writePgpass,
  writePgService,
} from './pgpass.js';
import { TOKEN_REFRESH_BEFORE_MS, type TokenService } from './tokens.js';

const MAX_PERIOD_MS = 10 * 60_000;
const MIN_PERIOD_MS = 1_000;

export interface PgpassKeeperOptions {
  tunnels(): TunnelConfig[];
  tokens: TokenService;
  pgpassFile?: string;
  pgserviceFile?: string;
  logger: Logger;
  now?: () => number;
}

/** Tunnels a libpq client can log in to with an IAM token. */
export function iamTunnels(all: TunnelConfig[]): TunnelConfig[] {
  return all.filter((t) => t.engine === 'postgres' && t.dbUser && t.remoteHost);
}

export async function pgpassEntries(
  tunnels: TunnelConfig[],
  tokens: TokenService,
  onError: (t: TunnelConfig, e: TunnelError) => void,
): Promise<{ entries: PgpassEntry[]; earliestExpiry: number }> {
  const entries: PgpassEntry[] = [];
  let earliestExpiry = Number.POSITIVE_INFINITY;
  for (const t of iamTunnels(tunnels)) {
    try {
      const tok = await tokens.get(t);
      entries.push(...pgpassEntriesFor(connectionInfo(t), tok.token));
      earliestExpiry = Math.min(earliestExpiry, tok.expiresAt.getTime());
    } catch (e) {
      onError(t, e as TunnelError);
    }
  }
  return { entries, earliestExpiry };
}

export class PgpassKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;
  /** Completed rewrites of the pgpass block (tests and metrics). */
  writes = 0;

  constructor(private readonly opts: PgpassKeeperOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): Promise<void> {
    return this.refresh();
  }

  /** Rewrites both blocks now (also after a reload), then schedules the next refresh. */
  refresh(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    const { pgpassFile, pgserviceFile, logger } = this.opts;
    const tunnels = this.opts.tunnels();
    let next = MAX_PERIOD_MS;
    if (pgpassFile) {
      const { entries, earliestExpiry } = await pgpassEntries(tunnels, this.opts.tokens, (t, e) =>
        logger.warn(
          { tunnel: t.name, code: e.code, err: e.message, fix: e.fix },
          'no pgpass entry for this tunnel: its token could not be signed',
        ),
      );
      try {
        if (writePgpass(pgpassFile, entries)) this.writes++;
      } catch (e) {
        logger.error({ file: pgpassFile, err: (e as Error).message }, 'could not write the pgpass file');
      }
      // Tokens are re-signed TOKEN_REFRESH_BEFORE_MS before expiry; come back just after that point.
      next = Math.min(next, earliestExpiry - TOKEN_REFRESH_BEFORE_MS + MIN_PERIOD_MS - this.now());
    }
    if (pgserviceFile) {
      try {
        const services = tunnels
          .filter((t) => t.engine === 'postgres')
          .map((t) => serviceEntryFor(connectionInfo(t)));
        writePgService(pgserviceFile, services);
      } catch (e) {
        logger.error(
          { file: pgserviceFile, err: (e as Error).message },
          'could not write the pg_service file',
        );
      }
    }
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.refresh(), Math.max(MIN_PERIOD_MS, next));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
