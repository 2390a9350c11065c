/**
 * pgpass and pg_service.conf entries for the tunnels, kept inside one marked block of each file.
 *
 * Everything outside the block is the user's and is left byte for byte. The pgpass block goes first in
 * a new file section because libpq takes the first matching line: a user's `*:*:*:*:secret` further
 * down must not shadow a fresh token. Services have unique names, so their block is appended.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic-file.js';
import type { ConnectionInfo } from './connection.js';

export const BLOCK_BEGIN = '# >>> ssmtun managed block: rewritten by ssmtun, edits here are lost >>>';
export const BLOCK_END = '# <<< ssmtun managed block <<<';

export interface PgpassEntry {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

/** pgpass fields escape `\` and `:` with a backslash; nothing else is special. */
export function escapePgpass(field: string): string {
  return field.replace(/[\\:]/g, (c) => `\\${c}`);
}

export function pgpassLine(e: PgpassEntry): string {
  return [e.host, String(e.port), e.database, e.user, e.password].map(escapePgpass).join(':');
}

/**
 * The real host name first (what `host=` says when TLS verify-full checks the certificate), then the two
 * loopback spellings tools use when they only know "localhost:port".
 */
export function pgpassEntriesFor(c: ConnectionInfo, token: string): PgpassEntry[] {
  const user = c.user;
  if (!user) return [];
  return [...new Set([c.host, '127.0.0.1', 'localhost'])].map((host) => ({
    host,
    port: c.port,
    database: c.database ?? '*',
    user,
    password: token,
  }));
}

export interface ServiceEntry {
  name: string;
  settings: Array<[string, string | number]>;
}

export function serviceEntryFor(c: ConnectionInfo): ServiceEntry {
  const settings: Array<[string, string | number]> = [['host', c.host]];
  if (c.host !== c.hostaddr) settings.push(['hostaddr', c.hostaddr]);
  settings.push(['port', c.port]);
  if (c.database) settings.push(['dbname', c.database]);
  if (c.user) settings.push(['user', c.user]);
  settings.push(['sslmode', c.sslmode]);
  if (c.sslmode !== 'disable') settings.push(['sslrootcert', c.sslrootcert]);
  return { name: c.tunnel, settings };
}

export function serviceLines(e: ServiceEntry): string[] {
  return [`[${e.name}]`, ...e.settings.map(([k, v]) => `${k}=${v}`)];
}

/**
 * Replaces the marked block of `text` with `lines` (removes it when `lines` is empty). Line endings and
 * every byte outside the block stay as they were.
 */
export function mergeBlock(text: string, lines: string[], where: 'top' | 'bottom'): string {
  const block = lines.length === 0 ? '' : `${[BLOCK_BEGIN, ...lines, BLOCK_END].join('\n')}\n`;
  const found = findBlock(text);
  if (found) return text.slice(0, found.start) + block + text.slice(found.end);
  if (!block) return text;
  if (where === 'top') return block + text;
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  return text + sep + block;
}

/** Byte range of the block, including the END line's newline (if any). */
function findBlock(text: string): { start: number; end: number } | undefined {
  let start = -1;
  let pos = 0;
  while (pos <= text.length) {
    const nl = text.indexOf('\n', pos);
    const lineEnd = nl < 0 ? text.length : nl;
    const line = text.slice(pos, lineEnd).replace(/\r$/, '');
    const next = nl < 0 ? text.length : nl + 1;
    if (start < 0 && line === BLOCK_BEGIN) start = pos;
    else if (start >= 0 && line === BLOCK_END) return { start, end: next };
    if (nl < 0) break;
    pos = next;
  }
  // A BEGIN without END (a hand-edited file): treat everything after BEGIN as ours would lose the
  // user's lines, so leave it alone and add a fresh block instead.
  return undefined;
}

export function readBlockLines(text: string): string[] | undefined {
  const found = findBlock(text);
  if (!found) return undefined;
  return text
    .slice(found.start, found.end)
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l !== '' && l !== BLOCK_BEGIN && l !== BLOCK_END);
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** Rewrites the block of `file` when it changed (0600: libpq ignores a pgpass readable by others). */
function writeBlock(file: string, lines: string[], where: 'top' | 'bottom'): boolean {
  const before = readOrEmpty(file);
  const after = mergeBlock(before, lines, where);
  if (after === before) return false;
  writeFileAtomic(file, after, 0o600);
  return true;
}

export function writePgpass(file: string, entries: PgpassEntry[]): boolean {
  return writeBlock(file, entries.map(pgpassLine), 'top');
}

export function writePgService(file: string, services: ServiceEntry[]): boolean {
  return writeBlock(file, services.flatMap(serviceLines), 'bottom');
}
