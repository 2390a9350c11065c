/** How keys, paths and values are written in messages and in the examples that fixes suggest. */

const BARE_KEY_RE = /^[A-Za-z0-9_-]+$/;

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `a string (${JSON.stringify(v)})`;
  if (typeof v === 'number') return Number.isInteger(v) ? `a number (${v})` : `a decimal number (${v})`;
  if (typeof v === 'bigint') return `a number (${v})`;
  if (typeof v === 'boolean') return `a boolean (${v})`;
  if (v instanceof Date) return 'a date';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'a table';
  return typeof v;
}

function tomlKey(k: string): string {
  return BARE_KEY_RE.test(k) ? k : JSON.stringify(k);
}

export function tomlPath(p: readonly string[]): string {
  return p.map(tomlKey).join('.');
}

function literal(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(literal).join(', ')}]`;
  return String(v);
}

export function example(json: boolean, key: string, value: unknown): string {
  return json ? `"${key}": ${literal(value)}` : `${key} = ${literal(value)}`;
}
