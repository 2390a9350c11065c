import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { libpqEnv, libpqUrl, mysqlArgs, renderEnv, type TokenAnswer } from '../../src/cli/db-env.js';

const answer: TokenAnswer = {
  tunnel: 'orders',
  engine: 'postgres',
  token:
    'orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app&X-Amz-Signature=ab%2Fcd',
  expiresAt: '2026-12-01T10:15:00.000Z',
  host: 'orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com',
  hostaddr: '127.0.0.1',
  port: 15432,
  remotePort: 5432,
  user: 'app',
  database: 'orders',
  region: 'eu-west-1',
  sslmode: 'verify-full',
  sslrootcert: "/home/o'neil/my certs/rds.pem",
};

describe('client settings', () => {
  it('export lines survive a real sh eval byte for byte, whatever the values hold', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (token, cert) => {
        fc.pre(!token.includes('\0') && !cert.includes('\0'));
        const vars = libpqEnv({ ...answer, token, sslrootcert: cert });
        const out = execFileSync('sh', [
          '-c',
          `${renderEnv(vars, 'sh')}\nprintf '%s\\0%s' "$PGPASSWORD" "$PGSSLROOTCERT"`,
        ]);
        expect(out.toString('utf8')).toBe(`${token}\0${cert}`);
      }),
      { numRuns: 25 },
    );
  });

  it('fish lines quote backslashes and quotes', () => {
    expect(renderEnv({ A: "it's \\ here" }, 'fish')).toBe("set -gx A 'it\\'s \\\\ here';");
  });

  it('the libpq URI carries hostaddr and percent-encodes what libpq would misread', () => {
    const u = libpqUrl(answer);
    expect(
      u.startsWith('postgresql://app:orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com%3A5432%2F%3FAction'),
    ).toBe(true);
    expect(u).toContain(
      '@orders.cluster-c0ffee.eu-west-1.rds.amazonaws.com:15432/orders?hostaddr=127.0.0.1&sslmode=verify-full',
    );
    expect(u).toContain("sslrootcert=%2Fhome%2Fo'neil%2Fmy%20certs%2Frds.pem");
    expect(libpqUrl(answer, false)).toMatch(/^postgresql:\/\/app@/);
  });

  it('the mysql client gets the cleartext plugin and CA verification in its own dialect', () => {
    const mysql = { ...answer, engine: 'mysql' as const, port: 13306 };
    expect(mysqlArgs(mysql, 'mysql')).toEqual([
      '--host=127.0.0.1',
      '--port=13306',
      '--user=app',
      '--enable-cleartext-plugin',
      '--ssl-mode=VERIFY_CA',
      `--ssl-ca=${answer.sslrootcert}`,
      '--database=orders',
    ]);
    expect(mysqlArgs(mysql, 'mariadb')).toContain('--ssl');
    expect(mysqlArgs(mysql, 'mariadb')).not.toContain('--enable-cleartext-plugin');
  });
});
