/**
 * Issue 8: the simulated RDS front with real parts: a throw-away PostgreSQL behind it, the simulator's
 * own CA, real psql (libpq) doing TLS verify-full and the cleartext-password exchange with IAM tokens
 * minted by @aws-sdk/rds-signer, and an in-process client session reaching the RDS name through an agent.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Signer } from '@aws-sdk/rds-signer';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSsmGateway } from '../../src/daemon/aws.js';
import { DOCUMENT_REMOTE_HOST } from '../../src/daemon/config.js';
import { ClientSession } from '../../src/daemon/session.js';
import {
  gssencRequest,
  MessageReader,
  parseErrorFields,
  passwordMessage,
  sslRequest,
  startupMessage,
  type TypedMessage,
} from '../../src/shared/pg-wire.js';
import {
  DEFAULT_CREDENTIALS,
  type SimDatabase,
  type Simulator,
  startSimulator,
} from '../../src/sim/index.js';
import { type PgCluster, pgTool, startPostgres } from '../helpers/postgres.js';

const BASTION = 'i-05e1a000000000001';
const LEGACY_USER = 'legacy_user';

function mintToken(host: string, user = 'postgres', port = 5432): Promise<string> {
  return new Signer({
    hostname: host,
    port,
    username: user,
    region: 'us-east-1',
    credentials: DEFAULT_CREDENTIALS,
  }).getAuthToken();
}

interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('simulated RDS front (real psql, real PostgreSQL)', () => {
  let pg: PgCluster;
  let sim: Simulator;
  let db: SimDatabase;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    pg = await startPostgres();
    sim = await startSimulator({
      agentDefaults: { pacing: false },
      databases: [
        { name: 'orders', upstream: { host: '127.0.0.1', port: pg.port }, passwordUsers: [LEGACY_USER] },
      ],
    });
    db = sim.databases[0];
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await sim?.close();
    await pg?.stop();
  });

  function conninfo(o: { host?: string; sslmode?: string; user?: string } = {}): string {
    return [
      `host=${o.host ?? db.host}`,
      'hostaddr=127.0.0.1',
      `port=${db.frontPort}`,
      `sslmode=${o.sslmode ?? 'verify-full'}`,
      `sslrootcert=${db.caFile}`,
      `user=${o.user ?? 'postgres'}`,
      'dbname=postgres',
    ].join(' ');
  }

  function psql(conn: string, password: string, sql = 'select current_user'): Promise<PsqlResult> {
    const env = { ...pg.env(), PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' };
    return new Promise((resolve) => {
      const child = execFile(
        pgTool('psql'),
        ['-X', '-A', '-t', '-c', sql, conn],
        { env },
        (err, stdout, stderr) => {
          children.delete(child);
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: stdout.trim(), stderr });
        },
      );
      children.add(child);
    });
  }

  it('SimDatabase names the RDS host, port 5432, the CA, and the loopback front', () => {
    expect(db).toMatchObject({
      name: 'orders',
      host: 'orders.cluster-c0ffee.us-east-1.rds.amazonaws.com',
      port: 5432,
    });
    expect(db.caFile).toMatch(/ca\.pem$/);
    expect(db.frontPort).toBeGreaterThan(0);
    expect(sim.state().databases).toEqual([
      {
        name: 'orders',
        host: db.host,
        port: 5432,
        caFile: db.caFile,
        frontPort: db.frontPort,
        stats: { logins: 0, refusals: [], plaintextRefused: 0, cancels: 0 },
      },
    ]);
  });

  it('psql with verify-full and a valid IAM token logs in and reaches the real PostgreSQL', async () => {
    const before = db.stats.logins;
    const r = await psql(conninfo(), await mintToken(db.host));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('postgres');
    expect(r.code).toBe(0);
    expect(db.stats.logins).toBe(before + 1);
  });

  it('the same with host=127.0.0.1 fails verify-full on the certificate name', async () => {
    const before = db.stats.logins;
    const r = await psql(conninfo({ host: '127.0.0.1' }), await mintToken(db.host));
    expect(r.code).not.toBe(0);
    // libpq counts the CN and the SAN: 'for "<name>" (and 1 other name) does not match'.
    expect(r.stderr).toMatch(
      /server certificate for "orders\.cluster-c0ffee\.us-east-1\.rds\.amazonaws\.com".* does not match host name "127\.0\.0\.1"/,
    );
    expect(db.stats.logins).toBe(before);
  });

  it('sslmode=disable is refused with 28000 like rds.force_ssl=1', async () => {
    const before = db.stats.plaintextRefused;
    const r = await psql(conninfo({ sslmode: 'disable' }), await mintToken(db.host));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'no pg_hba.conf entry for host "127.0.0.1", user "postgres", database "postgres", no encryption',
    );
    expect(db.stats.plaintextRefused).toBe(before + 1);
  });

  it('a token for another host is refused with 28P01 and says why', async () => {
    const r = await psql(conninfo(), await mintToken('127.0.0.1'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('PAM authentication failed for user "postgres"');
    expect(r.stderr).toContain(`IAM token signed for host 127.0.0.1:5432, not ${db.host}:5432`);
    expect(db.stats.refusals.at(-1)).toEqual({ user: 'postgres', reason: 'wrong-host', sqlstate: '28P01' });
  });

  it('a plain password is refused as malformed, a token for another user as wrong-user', async () => {
    expect((await psql(conninfo(), 'hunter2')).stderr).toContain(
      'PAM authentication failed for user "postgres"',
    );
    expect(db.stats.refusals.at(-1)?.reason).toBe('malformed');
    const r = await psql(conninfo(), await mintToken(db.host, 'admin'));
    expect(r.stderr).toContain('PAM authentication failed');
    expect(db.stats.refusals.at(-1)?.reason).toBe('wrong-user');
  });

  it('a user without rds_iam gets the SCRAM path and 28P01 password authentication failed', async () => {
    const r = await psql(conninfo({ user: LEGACY_USER }), await mintToken(db.host, LEGACY_USER));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`password authentication failed for user "${LEGACY_USER}"`);
    expect(db.stats.refusals.at(-1)).toEqual({
      user: LEGACY_USER,
      reason: 'password-user',
      sqlstate: '28P01',
    });
  });

  it('psql cancel (plaintext CancelRequest) is forwarded to the upstream', async () => {
    const before = db.stats.cancels;
    const env = { ...pg.env(), PGPASSWORD: await mintToken(db.host) };
    const child = spawn(pgTool('psql'), ['-X', '-A', '-t', '-c', 'select pg_sleep(60)', conninfo()], { env });
    children.add(child);
    try {
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const exited = once(child, 'exit');
      // Wait until the query runs on the real server (no event crosses the process boundary).
      for (let i = 0; ; i++) {
        const n = await pg.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'");
        if (n === '1') break;
        if (i > 200) throw new Error('the query never started');
        await new Promise((r) => setTimeout(r, 25));
      }
      child.kill('SIGINT');
      const [code] = await exited;
      expect(code).not.toBe(0);
      expect(stderr).toContain('canceling statement due to user request');
      expect(db.stats.cancels).toBe(before + 1);
    } finally {
      child.kill('SIGKILL');
      children.delete(child);
    }
  });

  describe('the wire exchange, byte by byte', () => {
    /** SSLRequest (after a refused GSSENCRequest), TLS verified against the CA, StartupMessage. */
    async function tlsStartup(user: string): Promise<{ sock: tls.TLSSocket; next(): Promise<TypedMessage> }> {
      const raw = net.connect(db.frontPort, '127.0.0.1');
      await once(raw, 'connect');
      const oneByte = () => once(raw, 'data').then(([d]) => (d as Buffer).toString('latin1'));
      raw.write(gssencRequest());
      expect(await oneByte()).toBe('N');
      raw.write(sslRequest());
      expect(await oneByte()).toBe('S');
      const sock = tls.connect({ socket: raw, ca: readFileSync(db.caFile), servername: db.host });
      await once(sock, 'secureConnect');
      sock.write(startupMessage({ user, database: 'postgres' }));
      const reader = new MessageReader();
      const next = async (): Promise<TypedMessage> => {
        for (;;) {
          const m = reader.nextTyped();
          if (m) return m;
          const [chunk] = await once(sock, 'data');
          reader.push(chunk as Buffer);
        }
      };
      return { sock, next };
    }

    it('asks an IAM user for a cleartext password (AuthenticationCleartextPassword)', async () => {
      const { sock, next } = await tlsStartup('postgres');
      try {
        const m = await next();
        expect(m.type).toBe('R');
        expect(m.body.readInt32BE(0)).toBe(3);
        sock.write(passwordMessage(await mintToken(db.host)));
        const ok = await next();
        expect(ok.type).toBe('R');
        expect(ok.body.readInt32BE(0)).toBe(0); // AuthenticationOk, from the real server
      } finally {
        sock.destroy();
      }
    });

    it('offers SCRAM-SHA-256 to a password user, and fails whatever it sends', async () => {
      const { sock, next } = await tlsStartup(LEGACY_USER);
      try {
        const m = await next();
        expect(m.type).toBe('R');
        expect(m.body.readInt32BE(0)).toBe(10);
        expect(m.body.subarray(4).toString('latin1')).toBe('SCRAM-SHA-256\0\0');
        sock.write(passwordMessage('anything'));
        const err = await next();
        expect(err.type).toBe('E');
        expect(parseErrorFields(err.body)).toMatchObject({ S: 'FATAL', C: '28P01' });
      } finally {
        sock.destroy();
      }
    });
  });

  describe('through the simulator: an agent resolves the RDS name with its own table', () => {
    async function session(host: string, port: string) {
      const got: Buffer[] = [];
      const errors: string[] = [];
      let onData: (() => void) | undefined;
      let onClosed: (() => void) | undefined;
      const s = await ClientSession.start({
        aws: createSsmGateway({
          region: sim.region,
          endpoint: sim.endpoint,
          credentials: { accessKeyId: sim.accessKeyId, secretAccessKey: sim.secretAccessKey },
        }),
        target: BASTION,
        documentName: DOCUMENT_REMOTE_HOST,
        parameters: { host: [host], portNumber: [port], localPortNumber: ['0'] },
        logger: pino({ level: 'silent' }),
        handlers: {
          data: (_id, d) => {
            got.push(Buffer.from(d));
            onData?.();
          },
          remoteClosed: () => onClosed?.(),
          connectToPortError: () => errors.push('CONNECT_TO_PORT_ERROR'),
          drain: () => {},
          reconnecting: () => {},
          reconnected: () => {},
          closed: () => {},
        },
      });
      return {
        s,
        errors,
        firstByte: (id: number) => {
          s.write(id, sslRequest());
          return new Promise<string>((r) => {
            onData = () => r(Buffer.concat(got).toString('latin1'));
          });
        },
        closed: () =>
          new Promise<void>((r) => {
            onClosed = r;
          }),
      };
    }

    it(`dials <rds name>:5432 and gets the front's 'S' answer to an SSLRequest`, async () => {
      const c = await session(db.host, '5432');
      try {
        const id = c.s.openConnection();
        expect(await c.firstByte(id)).toBe('S');
        expect(c.errors).toEqual([]);
      } finally {
        await c.s.terminate();
      }
    });

    it('an unknown RDS name, or another port of a known one, fails like a refused connection', async () => {
      for (const [host, port] of [
        ['other.cluster-c0ffee.us-east-1.rds.amazonaws.com', '5432'],
        [db.host, '5433'],
      ]) {
        const c = await session(host, port);
        try {
          const closed = c.closed();
          const id = c.s.openConnection();
          c.s.write(id, sslRequest());
          await closed;
          expect(c.errors).toEqual(['CONNECT_TO_PORT_ERROR']);
        } finally {
          await c.s.terminate();
        }
      }
    });
  });
});
