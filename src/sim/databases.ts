/**
 * The simulator's RDS endpoints: one simulated CA, one RDS front per database, and the name table the
 * agents use in place of VPC DNS (`<name>.cluster-c0ffee.<region>.rds.amazonaws.com:5432` -> the
 * front's loopback port). Nothing here touches /etc/hosts or real DNS.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { DestinationResolver } from './agent.js';
import { type RdsFront, type RdsFrontStats, startRdsFront } from './rds.js';
import { startRdsMysqlFront } from './rds-mysql.js';
import type { SimCredential } from './sigv4.js';
import { createSimCa, type SimCa } from './tls-ca.js';

export interface SimDatabaseConfig {
  /** RDS identifier: a letter, then letters, digits or hyphens (at most 63). */
  name: string;
  /** A real PostgreSQL that trusts connections from 127.0.0.1. */
  upstream: { host: string; port: number };
  /** Users without `GRANT rds_iam`: they get SCRAM and always fail (PostgreSQL only). */
  passwordUsers?: string[];
  /**
   * 'postgres' (default): a PostgreSQL front on 5432 in front of a trusting PostgreSQL. 'mysql': a MySQL
   * front on 3306 (rds-mysql.ts) in front of a MariaDB/MySQL whose users have empty passwords.
   */
  engine?: 'postgres' | 'mysql';
}

export interface SimDatabase {
  name: string;
  /** `${name}.cluster-c0ffee.${region}.rds.amazonaws.com`: what tokens are signed for. */
  host: string;
  /** 5432 (3306 for MySQL): what a tunnel's remote_port says (the agents map it to frontPort). */
  port: number;
  engine: 'postgres' | 'mysql';
  /** The simulated CA's PEM (sslrootcert). */
  caFile: string;
  /** Loopback port of the front on 127.0.0.1 (for tests connecting directly). */
  frontPort: number;
  stats: RdsFrontStats;
}

/** A bad database configuration; `fix` says what to change. */
export class SimDatabaseError extends Error {
  readonly code = 'SIM_BAD_DATABASE';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
    this.name = 'SimDatabaseError';
  }
}

export const RDS_PORT = 5432;
export const RDS_MYSQL_PORT = 3306;
const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;

export function rdsHostName(name: string, region: string): string {
  return `${name}.cluster-c0ffee.${region}.rds.amazonaws.com`;
}

function isLoopbackHost(h: string): boolean {
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  return h === '::1';
}

export function validateDatabaseConfig(cfg: SimDatabaseConfig): void {
  if (
    typeof cfg.name !== 'string' ||
    !NAME_RE.test(cfg.name) ||
    cfg.name.endsWith('-') ||
    cfg.name.includes('--')
  ) {
    throw new SimDatabaseError(
      `database name ${JSON.stringify(cfg.name)} is not an RDS identifier`,
      'use lowercase letters, digits and single hyphens, starting with a letter (e.g. orders)',
    );
  }
  if (cfg.engine !== undefined && cfg.engine !== 'postgres' && cfg.engine !== 'mysql') {
    throw new SimDatabaseError(
      `engine of database ${cfg.name} must be "postgres" or "mysql", not ${JSON.stringify(cfg.engine)}`,
      'leave it out for PostgreSQL, or say engine: "mysql"',
    );
  }
  const up = cfg.upstream;
  if (!up || typeof up.host !== 'string' || !isLoopbackHost(up.host)) {
    throw new SimDatabaseError(
      `upstream of database ${cfg.name} must be a loopback address, not ${JSON.stringify(up?.host)}`,
      'point it at a local PostgreSQL, e.g. 127.0.0.1:5432',
    );
  }
  if (!Number.isInteger(up.port) || up.port < 1 || up.port > 65535) {
    throw new SimDatabaseError(
      `upstream port of database ${cfg.name} must be 1 to 65535`,
      'give a TCP port number',
    );
  }
}

export interface DatabaseRegistry {
  readonly list: SimDatabase[];
  add(cfg: SimDatabaseConfig): Promise<SimDatabase>;
  /** The agents' name table. */
  resolve: DestinationResolver;
  close(): Promise<void>;
}

export function createDatabaseRegistry(opts: {
  region: string;
  credentials: readonly SimCredential[];
  now?: () => number;
  logger: Logger;
}): DatabaseRegistry {
  const list: SimDatabase[] = [];
  const fronts: RdsFront[] = [];
  const byHost = new Map<string, SimDatabase>();
  const pending = new Set<string>();
  let ca: Promise<SimCa> | undefined;
  let closed = false;

  return {
    list,
    async add(cfg) {
      validateDatabaseConfig(cfg);
      if (closed) throw new SimDatabaseError('the simulator is closed', 'start a new simulator');
      if (pending.has(cfg.name) || list.some((d) => d.name === cfg.name)) {
        throw new SimDatabaseError(`database ${cfg.name} already exists`, 'give each database its own name');
      }
      pending.add(cfg.name);
      try {
        // One CA per simulator, made on first use so simulators without databases never run openssl.
        ca ??= createSimCa();
        ca.catch(() => {
          ca = undefined;
        });
        const authority = await ca;
        const host = rdsHostName(cfg.name, opts.region);
        const engine = cfg.engine ?? 'postgres';
        const port = engine === 'mysql' ? RDS_MYSQL_PORT : RDS_PORT;
        const common = {
          host,
          port,
          region: opts.region,
          upstream: { host: cfg.upstream.host, port: cfg.upstream.port },
          credentials: opts.credentials,
          tls: await authority.serverCert(host),
          now: opts.now,
          logger: opts.logger.child({ database: cfg.name }),
        };
        const front =
          engine === 'mysql'
            ? await startRdsMysqlFront(common)
            : await startRdsFront({ ...common, passwordUsers: cfg.passwordUsers ?? [] });
        if (closed) {
          await front.close();
          throw new SimDatabaseError('the simulator is closed', 'start a new simulator');
        }
        fronts.push(front);
        const db: SimDatabase = {
          name: cfg.name,
          host,
          port,
          engine,
          caFile: authority.caFile,
          frontPort: front.port,
          stats: front.stats,
        };
        list.push(db);
        byHost.set(host, db);
        return db;
      } finally {
        pending.delete(cfg.name);
      }
    },
    resolve(host, port) {
      // DNS is case-insensitive and tolerates a trailing dot; only the advertised port is open.
      const db = byHost.get(host.toLowerCase().replace(/\.$/, ''));
      return db && port === db.port ? { host: '127.0.0.1', port: db.frontPort } : undefined;
    },
    async close() {
      closed = true;
      await Promise.all(fronts.map((f) => f.close()));
      await (await ca?.catch(() => undefined))?.close();
    },
  };
}
