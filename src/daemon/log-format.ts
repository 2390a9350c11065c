/**
 * Human-readable log lines for a terminal, written by ssmtun itself so an installed package needs no
 * pino-pretty: `12:34:56.789 INFO  [orders] session open sessionId=... mode=mux`. The service manager
 * never sees this format; without a TTY the daemon writes pino's JSON.
 */
import type { DestinationStream } from 'pino';

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '\x1b[90m' },
  20: { name: 'DEBUG', color: '\x1b[36m' },
  30: { name: 'INFO ', color: '\x1b[32m' },
  40: { name: 'WARN ', color: '\x1b[33m' },
  50: { name: 'ERROR', color: '\x1b[31m' },
  60: { name: 'FATAL', color: '\x1b[35m' },
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'tunnel', 'component']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}

export function formatLine(line: string, color: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const time = new Date(typeof rec.time === 'number' ? rec.time : Date.now()).toISOString().slice(11, 23);
  const level = LEVELS[rec.level as number] ?? { name: String(rec.level).toUpperCase().padEnd(5), color: '' };
  const who = rec.tunnel ?? rec.component;
  const fields = Object.entries(rec)
    .filter(([k, v]) => !OMIT.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  const c = (code: string, s: string) => (color ? `${code}${s}${RESET}` : s);
  return `${c(DIM, time)} ${c(level.color, level.name)} ${who ? `[${who}] ` : ''}${rec.msg ?? ''}${fields ? ` ${c(DIM, fields)}` : ''}\n`;
}

/** A pino destination that formats each JSON line before writing it to `out` (stdout by default). */
export function prettyDestination(
  out: NodeJS.WritableStream = process.stdout,
  color = Boolean((out as { isTTY?: boolean }).isTTY),
): DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) out.write(formatLine(line, color));
    },
  };
}
