/**
 * Bounds on config input, apart from the per-key checks: the file itself (a regular file, at most
 * 1 MiB, not writable by others), control characters in any string, host names (RFC 1123 or an IP
 * literal, at most 253 characters), plain-http endpoints off loopback, integers written as integers,
 * and the per-tunnel limits (max_buffer, max_connections). Kept apart from fields.ts so the checks
 * read as one list of what the config refuses.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { parse } from 'smol-toml';
import type { Section } from './section.js';
import { ConfigError, type ConfigIssue } from './types.js';

/** Far above any real config; /dev/zero or a 50 MB value stop here, in constant memory. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
export const MAX_HOST_LENGTH = 253;
export const MAX_STRING_LENGTH = 4096;
const MIN_BUFFER = 64 * 1024;
const MAX_BUFFER = 4 * 1024 * 1024 * 1024;
const MAX_CONNECTIONS = 65_535;

/** Keys whose values must be TOML integers (1e3 and 5432.0 are floats, even if whole). */
const INTEGER_KEYS = new Set(['remote_port', 'local_port', 'api_port', 'max_connections', 'max_buffer']);

/**
 * Reads the config without ever blocking or reading without bound: opened non-blocking (a FIFO
 * would otherwise wait for a writer forever), refused unless it is a regular file, refused past
 * MAX_CONFIG_BYTES, and refused when any user may write it (they could point tunnels anywhere).
 * Group-writable only warns: the default umask 002 of user-private-group systems (Debian, Ubuntu,
 * Fedora) makes every new file so, with a group of one, and refusing it would fail first starts.
 */
export async function readConfigFile(file: string): Promise<{ text: string; warnings: ConfigIssue[] }> {
  const refuse = (message: string, fix: string): never => {
    throw new ConfigError([{ file, line: 0, message, fix }]);
  };
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      const kind = st.isFIFO()
        ? 'a named pipe (FIFO)'
        : st.isCharacterDevice()
          ? 'a character device'
          : st.isBlockDevice()
            ? 'a block device'
            : st.isSocket()
              ? 'a socket'
              : st.isDirectory()
                ? 'a directory'
                : 'not a regular file';
      refuse(
        `the config path is ${kind}, not a regular file`,
        'Point SSMTUN_CONFIG (or --config) at a regular TOML file.',
      );
    }
    if (st.size > MAX_CONFIG_BYTES) {
      refuse(
        `the config file is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES} (1 MiB)`,
        'A config is a few KiB: check the path points at the right file.',
      );
    }
    const chmod = `Run: chmod 600 '${file.replace(/'/g, `'\\''`)}'`;
    const warnings: ConfigIssue[] = [];
    if (process.platform !== 'win32' && (st.mode & 0o002) !== 0) {
      refuse('the config file is writable by other users, who could redirect your tunnels', chmod);
    }
    if (process.platform !== 'win32' && (st.mode & 0o020) !== 0) {
      warnings.push({
        file,
        line: 0,
        message: 'the config file is writable by its group; anyone in that group could redirect your tunnels',
        fix: chmod,
      });
    }
    // Read at most one byte past the limit: the size can change between stat and read.
    const buf = Buffer.alloc(Math.min(st.size, MAX_CONFIG_BYTES) + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got >= buf.length) break;
    }
    if (got > MAX_CONFIG_BYTES)
      refuse('the config file grew past 1 MiB while being read', 'Check the path points at the right file.');
    return { text: buf.subarray(0, got).toString('utf8'), warnings };
  } finally {
    await fh.close();
  }
}

/** C0 controls except tab, DEL, and the C1 range: never meaningful in a name, host or profile. */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

function describeControl(s: string): string {
  const c = CONTROL.exec(s)?.[0] ?? '';
  return c === '\u0000'
    ? 'a NUL byte'
    : `control character U+${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`;
}

/** Walks every string value of a parsed document and reports control characters and huge strings. */
export function checkStringValues(
  push: (issue: Omit<ConfigIssue, 'file'>) => void,
  lineOf: (path: readonly string[]) => number,
  value: unknown,
  path: string[] = [],
): void {
  if (typeof value === 'string') {
    const key = path.join('.');
    if (CONTROL.test(value)) {
      push({
        line: lineOf(path),
        key,
        message: `${key} contains ${describeControl(value)}`,
        fix: 'Remove it; values are plain text on one line.',
      });
    } else if (value.length > MAX_STRING_LENGTH) {
      push({
        line: lineOf(path),
        key,
        message: `${key} is ${value.length} characters long; the limit is ${MAX_STRING_LENGTH}`,
        fix: 'Check the value; no setting needs text this long.',
      });
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) checkStringValues(push, lineOf, v, [...path, String(i)]);
    return;
  }
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    for (const [k, v] of Object.entries(value)) checkStringValues(push, lineOf, v, [...path, k]);
  }
}

/**
 * TOML keeps integers and floats apart; the main parse does not, so `1e3` passed as a port. A second
 * parse that keeps integers as BigInt shows which values were written as floats.
 */
export function checkIntegers(
  text: string,
  push: (issue: Omit<ConfigIssue, 'file'>) => void,
  lineOf: (path: readonly string[]) => number,
): void {
  let doc: unknown;
  try {
    doc = parse(text, { integersAsBigInt: true });
  } catch {
    return; // the main parse reports syntax errors
  }
  const walk = (v: unknown, path: string[]) => {
    if (!v || typeof v !== 'object' || v instanceof Date || Array.isArray(v)) return;
    for (const [k, child] of Object.entries(v)) {
      const p = [...path, k];
      if (INTEGER_KEYS.has(k) && typeof child === 'number') {
        const whole = Number.isInteger(child) && Number.isSafeInteger(child);
        push({
          line: lineOf(p),
          key: p.join('.'),
          message: `${p.join('.')} must be written as an integer, not ${child} (a float in TOML)`,
          fix: whole
            ? `Write ${k} = ${child}.`
            : `Write a whole number, e.g. ${k} = ${Math.round(child) || 1}.`,
        });
      } else walk(child, p);
    }
  };
  walk(doc, []);
}

/** RFC 1123 host name, or an IPv4/IPv6 literal (brackets around IPv6 allowed and removed). */
export function normalizeHost(host: string): { host?: string; problem?: string } {
  const inner = /^\[(.*)\]$/.exec(host)?.[1];
  if (inner !== undefined) {
    return isIPv6(inner)
      ? { host: inner }
      : { problem: 'has brackets around something that is not an IPv6 address' };
  }
  if (isIPv4(host) || isIPv6(host)) return { host };
  if (host.length > MAX_HOST_LENGTH) {
    return { problem: `is ${host.length} characters long; host names have at most ${MAX_HOST_LENGTH}` };
  }
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length === 0) return { problem: 'has an empty label (two dots in a row, or a leading dot)' };
    if (label.length > 63) return { problem: `has a label of ${label.length} characters; the limit is 63` };
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(label)) {
      return { problem: 'is not a valid host name (letters, digits and hyphens between dots; RFC 1123)' };
    }
  }
  return { host };
}

/** max_buffer (bytes, or a size such as "64MiB") and max_connections of one tunnel. */
export function checkLimits(s: Section): { maxBufferBytes?: number; maxConnections?: number } {
  const out: { maxBufferBytes?: number; maxConnections?: number } = {};
  const mc = s.get('max_connections');
  if (mc !== undefined) {
    const n = typeof mc === 'bigint' ? Number(mc) : mc;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_CONNECTIONS)
      out.maxConnections = n;
    else
      s.report(
        'max_connections',
        `max_connections in ${s.where} must be a whole number from 1 to ${MAX_CONNECTIONS}`,
        `Write e.g. ${s.ex('max_connections', 512)}.`,
      );
  }
  const mb = s.get('max_buffer');
  if (mb !== undefined) {
    const bytes = parseSize(mb);
    if (bytes !== undefined && bytes >= MIN_BUFFER && bytes <= MAX_BUFFER) out.maxBufferBytes = bytes;
    else
      s.report(
        'max_buffer',
        `max_buffer in ${s.where} must be a size from 64KiB to 4GiB, not ${JSON.stringify(typeof mb === 'bigint' ? Number(mb) : mb)}`,
        `Write e.g. ${s.ex('max_buffer', '64MiB')} (or a number of bytes without quotes).`,
      );
  }
  return out;
}

function parseSize(v: unknown): number | undefined {
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number') return Number.isInteger(v) ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+)\s*(B|KiB|MiB|GiB|K|M|G|KB|MB|GB)?\s*$/i.exec(v);
  if (!m) return undefined;
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult = unit.startsWith('K')
    ? 1024
    : unit.startsWith('M')
      ? 1024 ** 2
      : unit.startsWith('G')
        ? 1024 ** 3
        : 1;
  return Number(m[1]) * mult;
}
