/** ssmtun's own terminal log format (no pino-pretty in the package) and warnings routed into pino. */
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { formatLine, prettyDestination } from '../../src/daemon/log-format.js';
import { routeProcessWarnings } from '../../src/daemon/logger.js';

describe('log format', () => {
  it('formats a pino record as one readable line, with the tunnel and the fields', () => {
    const line = JSON.stringify({
      level: 40,
      time: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
      pid: 1,
      tunnel: 'orders',
      code: 'LISTEN_FAILED',
      fix: 'pick another local_port',
      msg: 'cannot listen',
    });
    expect(formatLine(line, false)).toBe(
      '03:04:05.678 WARN  [orders] cannot listen code=LISTEN_FAILED fix="pick another local_port"\n',
    );
    expect(formatLine(line, true)).toContain('\x1b[33mWARN \x1b[0m');
    expect(formatLine('not json', false)).toBe('not json\n');
  });

  it('is what a pino logger writes through prettyDestination, secrets still redacted', () => {
    let out = '';
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += String(chunk);
        cb();
      },
    });
    const log = pino({ redact: { paths: ['token'], censor: '[redacted]' } }, prettyDestination(sink, false));
    log.info({ token: 'SECRET', sessionId: 's-1' }, 'session open');
    expect(out).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}session open token=\[redacted\] sessionId=s-1\n$/);
  });

  it('routes process warnings (the SDK Node-version notice) into the logger as one record', async () => {
    const records: Array<Record<string, unknown>> = [];
    const log = pino({}, { write: (s: string) => records.push(JSON.parse(s)) });
    const saved = process.listeners('warning');
    try {
      routeProcessWarnings(log);
      process.emitWarning(
        'NodeVersionSupportWarning: The AWS SDK for JavaScript (v3)\nwill require node >=22.\n\nMore: x',
      );
      await new Promise((r) => setImmediate(r));
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        level: 40,
        msg: 'NodeVersionSupportWarning: The AWS SDK for JavaScript (v3)',
        warning: 'Warning',
        detail: 'will require node >=22. More: x',
      });
    } finally {
      process.removeAllListeners('warning');
      for (const l of saved) process.on('warning', l);
    }
  });
});
