/**
 * pino JSON to stdout (the service manager keeps it); a human-readable format of ssmtun's own
 * (log-format.ts) only when a human runs it on a TTY. Secrets are redacted by path: session tokens,
 * stream-URL tokens, signatures and RDS auth tokens.
 */
import pino, { type Logger } from 'pino';
import { prettyDestination } from './log-format.js';

export const REDACT_PATHS = [
  'token',
  'tokenValue',
  'TokenValue',
  'password',
  'authToken',
  'authorization',
  'Authorization',
  'streamUrl',
  'StreamUrl',
  '*.token',
  '*.tokenValue',
  '*.TokenValue',
  '*.password',
  '*.authToken',
  '*.authorization',
  '*.Authorization',
  '*.streamUrl',
  '*.StreamUrl',
  'headers["x-amz-security-token"]',
  'headers["X-Amz-Security-Token"]',
  'req.headers.authorization',
  'req.headers["x-ssmtun-token"]',
];

export function createLogger(
  opts: { level?: string; pretty?: boolean; destination?: pino.DestinationStream } = {},
): Logger {
  const base: pino.LoggerOptions = {
    level: opts.level ?? process.env.SSMTUN_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  if (opts.destination) return pino(base, opts.destination);
  const pretty =
    opts.pretty ?? (process.stdout.isTTY && !process.env.CI && process.env.SSMTUN_LOG_FORMAT !== 'json');
  if (pretty) return pino(base, prettyDestination());
  return pino(base);
}

/**
 * Process warnings (the AWS SDK's multi-line Node version notice, deprecations) become one log
 * record each instead of free text on stderr in the middle of the JSON stream. Node's own printer is
 * a 'warning' listener; it is replaced, not joined.
 */
export function routeProcessWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    const lines = w.message.split('\n').filter((l) => l.trim());
    logger.warn(
      { warning: w.name, code: w.code, detail: lines.slice(1).join(' ') || undefined },
      lines[0] ?? w.name,
    );
  });
}
