import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectionInfo } from '../../src/daemon/connection.js';
import {
  BLOCK_BEGIN,
  BLOCK_END,
  escapePgpass,
  mergeBlock,
  pgpassEntriesFor,
  pgpassLine,
  readBlockLines,
  serviceEntryFor,
  writePgpass,
  writePgService,
} from '../../src/daemon/pgpass.js';

const conn: ConnectionInfo = {
  tunnel: 'orders',
  engine: 'postgres',
  host: 'orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com',
  hostaddr: '127.0.0.1',
  port: 15432,
  remotePort: 5432,
  user: 'app_readonly',
  database: 'orders',
  region: 'eu-west-1',
  sslmode: 'verify-full',
  sslrootcert: '/tmp/ca.pem',
  iam: true,
};

/** Lines without our markers, with any line endings and characters, like a real user's pgpass. */
const userText = fc
  .array(fc.string({ unit: fc.constantFrom('a', ':', '\\', '*', '#', ' ', '\r', '\n', '5', 'é') }), {
    maxLength: 8,
  })
  .map((lines) => lines.join('\n'));

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-pgpass-'));
  dirs.push(d);
  return d;
}

describe('pgpass entries', () => {
  it('escape ":" and "\\" the way libpq reads them', () => {
    expect(escapePgpass('a:b\\c')).toBe('a\\:b\\\\c');
    expect(pgpassLine({ host: 'h', port: 1, database: '*', user: 'u:x', password: 'p\\:' })).toBe(
      'h:1:*:u\\:x:p\\\\\\:',
    );
  });

  it('cover the real endpoint name and both loopback spellings on the local port', () => {
    const lines = pgpassEntriesFor(conn, 'tok:en').map(pgpassLine);
    expect(lines).toEqual([
      'orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com:15432:orders:app_readonly:tok\\:en',
      '127.0.0.1:15432:orders:app_readonly:tok\\:en',
      'localhost:15432:orders:app_readonly:tok\\:en',
    ]);
  });

  it('give libpq services host, hostaddr, port, dbname, user, sslmode and sslrootcert', () => {
    expect(serviceEntryFor(conn).settings).toEqual([
      ['host', conn.host],
      ['hostaddr', '127.0.0.1'],
      ['port', 15432],
      ['dbname', 'orders'],
      ['user', 'app_readonly'],
      ['sslmode', 'verify-full'],
      ['sslrootcert', '/tmp/ca.pem'],
    ]);
  });
});

describe('the managed block', () => {
  it('leaves every byte around it as it was, through insert, replace and remove', () => {
    fc.assert(
      fc.property(
        userText,
        userText,
        fc.array(fc.string(), { minLength: 1, maxLength: 3 }),
        (before, after, lines) => {
          const safe = lines.map((l) => l.replace(/[\r\n]/g, '') || 'x');
          for (const where of ['top', 'bottom'] as const) {
            const original = before;
            const inserted = mergeBlock(original, safe, where);
            expect(readBlockLines(inserted)).toEqual(safe);
            const replaced = mergeBlock(inserted, ['new'], where);
            expect(readBlockLines(replaced)).toEqual(['new']);
            const removed = mergeBlock(replaced, [], where);
            if (where === 'top' || original === '' || original.endsWith('\n')) expect(removed).toBe(original);
            // A block in the middle of the user's lines stays where it is, everything else untouched.
            const middle = `${before}\n${BLOCK_BEGIN}\nold\n${BLOCK_END}\n${after}`;
            const merged = mergeBlock(middle, safe, where);
            expect(merged).toBe(`${before}\n${BLOCK_BEGIN}\n${safe.join('\n')}\n${BLOCK_END}\n${after}`);
          }
        },
      ),
    );
  });

  it('goes first in pgpass so that a wildcard line of the user cannot shadow the token', () => {
    const out = mergeBlock('*:*:*:*:oldsecret\n', ['h:1:d:u:tok'], 'top');
    expect(out.split('\n')[1]).toBe('h:1:d:u:tok');
    expect(out.endsWith('*:*:*:*:oldsecret\n')).toBe(true);
  });

  it('is written atomically with mode 0600 and only when it changes', () => {
    const file = path.join(tmp(), 'pgpass');
    writeFileSync(file, 'db.example:5432:*:me:mine\n', { mode: 0o644 });
    expect(writePgpass(file, pgpassEntriesFor(conn, 't1'))).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(writePgpass(file, pgpassEntriesFor(conn, 't1'))).toBe(false);
    writePgpass(file, pgpassEntriesFor(conn, 't2'));
    const text = readFileSync(file, 'utf8');
    expect(text).toContain(':t2\n');
    expect(text).not.toContain(':t1');
    expect(text.endsWith('db.example:5432:*:me:mine\n')).toBe(true);
  });

  it('is read by libpq: psql takes the token from the block as the password', () => {
    // pg_service.conf and pgpass as libpq itself parses them: `psql` prints the connection it would make.
    const d = tmp();
    const svc = path.join(d, 'pg_service.conf');
    writeFileSync(svc, '[mine]\nhost=elsewhere\n');
    writePgService(svc, [serviceEntryFor(conn)]);
    const text = readFileSync(svc, 'utf8');
    expect(text.startsWith('[mine]\nhost=elsewhere\n')).toBe(true);
    expect(text).toContain(`[orders]\nhost=${conn.host}\nhostaddr=127.0.0.1\nport=15432\n`);
    let out = '';
    try {
      out = execFileSync('psql', ['-w', '-c', 'select 1'], {
        env: { PATH: process.env.PATH, PGSERVICEFILE: svc, PGSERVICE: 'orders', PGCONNECT_TIMEOUT: '1' },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      out = String((e as { stderr?: string }).stderr);
    }
    // Nothing listens on 15432 here; libpq's error names the host and address it took from the file.
    expect(out).toMatch(/orders\.cluster-c0ffee\.eu-west-1\.rds\.amazonaws\.com|127\.0\.0\.1/);
    expect(out).toContain('15432');
  });
});
