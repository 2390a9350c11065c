/**
 * Checks for the keys that sign users in to the database: where the RDS CA bundle is, which TLS mode
 * clients use, and the [daemon] keys that keep pgpass / pg_service files fresh.
 */

import { statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Section } from './section.js';
import { suggest } from './suggest.js';

export const PG_SSLMODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof PG_SSLMODES)[number];
export const DEFAULT_SSLMODE: SslMode = 'verify-full';

/** `~/x` and paths relative to the config file's folder, the way people write them in TOML. */
export function resolveUserPath(p: string, configFile: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(os.homedir(), p.slice(1));
  if (path.isAbsolute(p)) return p;
  // API-made tunnels have no config folder: relative paths would depend on the daemon's cwd.
  return configFile.startsWith('<') ? path.resolve(p) : path.resolve(path.dirname(configFile), p);
}

export function checkCaBundle(s: Section): string | undefined {
  const raw = s.string('ca_bundle', '~/.config/ssmtun/rds-global-bundle.pem', true);
  if (raw === undefined) return undefined;
  const file = resolveUserPath(raw, s.ctx.file);
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    s.report(
      'ca_bundle',
      `ca_bundle ${JSON.stringify(raw)} in ${s.where} does not exist (${file})`,
      'Point it at a PEM file of CA certificates, or remove the key to use the RDS global bundle that ssmtun ships.',
    );
    return undefined;
  }
  if (!isFile) {
    s.report(
      'ca_bundle',
      `ca_bundle ${JSON.stringify(raw)} in ${s.where} is not a regular file`,
      'Point it at a PEM file of CA certificates.',
    );
    return undefined;
  }
  return file;
}

export function checkSslmode(s: Section): SslMode | undefined {
  const mode = s.string('sslmode', DEFAULT_SSLMODE, true);
  if (!s.has('sslmode')) return DEFAULT_SSLMODE;
  if (mode === undefined) return undefined;
  if ((PG_SSLMODES as readonly string[]).includes(mode)) return mode as SslMode;
  const guess = suggest(mode.toLowerCase(), PG_SSLMODES, {
    verifyfull: 'verify-full',
    verifyca: 'verify-ca',
    full: 'verify-full',
    required: 'require',
  });
  s.report(
    'sslmode',
    `sslmode ${JSON.stringify(mode)} in ${s.where} is not a libpq sslmode`,
    `${guess ? `Did you mean ${s.ex('sslmode', guess)}? ` : ''}Use one of ${PG_SSLMODES.join(', ')} (RDS IAM logins need TLS; verify-full is the safe choice).`,
  );
  return undefined;
}

/**
 * `pgpass = true` keeps the block in the default pgpass file fresh; a string names another file.
 * Returns the absolute path, or undefined when the feature is off.
 */
export function checkManagedFile(
  s: Section,
  key: 'pgpass' | 'pgservice',
  defaultPath: string,
): string | undefined {
  const v = s.get(key);
  if (v === undefined || v === false) return undefined;
  if (v === true) return defaultPath;
  if (typeof v === 'string' && v.trim() !== '') return resolveUserPath(v, s.ctx.file);
  s.report(
    key,
    `${key} in ${s.where} must be true, false or a file path`,
    `Write ${s.ex(key, true)} to keep ${defaultPath} fresh, or ${s.ex(key, defaultPath)}.`,
  );
  return undefined;
}

/** Where libpq looks when PGPASSFILE / PGSERVICEFILE are not set. */
export function defaultPgpassPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGPASSFILE || path.join(os.homedir(), '.pgpass');
}

export function defaultPgServicePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGSERVICEFILE || path.join(os.homedir(), '.pg_service.conf');
}

export const AUTH_MODES = ['none', 'iam'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

/**
 * `auth = "iam"` makes the local port a PostgreSQL front that signs in with IAM tokens, so it needs
 * what a token is signed for (db_user, remote_host) and the PostgreSQL wire protocol.
 */
export function checkAuth(
  s: Section,
  engine: string | undefined,
  dbUser: string | undefined,
  remoteHost: string | undefined,
): AuthMode | undefined {
  const auth = s.string('auth', 'iam', true);
  if (!s.has('auth')) return 'none';
  if (auth === undefined) return undefined;
  if (!(AUTH_MODES as readonly string[]).includes(auth)) {
    const guess = suggest(auth.toLowerCase(), AUTH_MODES, {
      rdsiam: 'iam',
      aws: 'iam',
      token: 'iam',
      off: 'none',
      plain: 'none',
      tcp: 'none',
    });
    s.report(
      'auth',
      `auth ${JSON.stringify(auth)} in ${s.where} is not an auth mode`,
      `${guess ? `Did you mean ${s.ex('auth', guess)}? ` : ''}Use ${s.ex('auth', 'iam')} (the local port signs in to RDS with IAM tokens) or ${s.ex('auth', 'none')} (plain TCP forwarding).`,
    );
    return undefined;
  }
  if (auth === 'none') return 'none';
  let ok = true;
  if (engine !== undefined && engine !== 'postgres') {
    s.report(
      'auth',
      `auth = "iam" in ${s.where} needs engine = "postgres", not ${JSON.stringify(engine)}`,
      `Remove auth (MySQL clients get their tokens from ssmtun token), or set ${s.ex('engine', 'postgres')}.`,
    );
    ok = false;
  }
  if (dbUser === undefined && !s.has('db_user')) {
    s.report(
      'auth',
      `auth = "iam" in ${s.where} needs db_user, the database user the IAM tokens are signed for`,
      `Add ${s.ex('db_user', 'app_readonly')} (a role with GRANT rds_iam).`,
    );
    ok = false;
  }
  if (remoteHost === undefined && !s.has('remote_host')) {
    s.report(
      'auth',
      `auth = "iam" in ${s.where} needs remote_host, the RDS endpoint name tokens and certificates are checked against`,
      `Add ${s.ex('remote_host', 'orders.cluster-abc.eu-west-1.rds.amazonaws.com')}.`,
    );
    ok = false;
  }
  return ok ? 'iam' : undefined;
}

/** Extra database users the IAM front lets in besides db_user (each gets its own token). */
export function checkDbUsers(s: Section): string[] | undefined {
  const v = s.get('db_users');
  if (v === undefined) return undefined;
  const sample = ['app_readonly', 'app_admin'];
  if (typeof v === 'string') {
    s.report(
      'db_users',
      `db_users in ${s.where} must be an array of strings, not a string`,
      `Write ${s.ex('db_users', v.trim() ? [v.trim()] : sample)}.`,
    );
    return undefined;
  }
  if (!Array.isArray(v) || v.some((u) => typeof u !== 'string' || u.trim() === '' || u.includes('\0'))) {
    s.report(
      'db_users',
      `db_users in ${s.where} must be an array of non-empty strings`,
      `Write e.g. ${s.ex('db_users', sample)}.`,
    );
    return undefined;
  }
  return [...new Set(v as string[])];
}
