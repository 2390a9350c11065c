/**
 * pino JSON to stdout (the service manager keeps it); pretty only when a human runs it on a TTY.
 * Secrets are redacted by path: session tokens, stream-URL tokens, signatures and RDS auth tokens.
 */
import pino, { type Logger } from 'pino';

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
  const pretty = opts.pretty ?? (process.stdout.isTTY && !process.env.CI);
  if (pretty) {
    try {
      return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } });
    } catch {
      // pino-pretty is a dev dependency; plain JSON is always fine.
    }
  }
  return pino(base);
}
