/**
 * Issue 8: the simulated RDS front with real parts: a throw-away PostgreSQL behind it, the simulator's
 * own CA, real psql (libpq) doing TLS verify-full and the cleartext-password exchange with IAM tokens
 * minted by @aws-sdk/rds-signer, and an in-process client session reaching the RDS name through an agent.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { Signer } from '@aws-sdk/rds-signer';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSsmGateway } from '../../src/daemon/aws.js';
import { DOCUMENT_REMOTE_HOST } from '../../src/daemon/config.js';
import { ClientSession } from '../../src/daemon/session.js';
import {
  cancelRequest,
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
import { closedPort } from '../helpers/net.js';
import { type PgCluster, pgTool, startPostgres } from '../helpers/postgres.js';

const BASTION = 'i-05e1a000000000001';
const LEGACY = 'i-05e1a000000000002';
const LEGACY_USER = 'legacy_user';

const minted: string[] = [];
async function mintToken(host: string, user = 'postgres', port = 5432): Promise<string> {
  const token = await new Signer({
    hostname: host,
    port,
    username: user,
    region: 'us-east-1',
    credentials: DEFAULT_CREDENTIALS,
  }).getAuthToken();
  minted.push(token);
  return token;
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
  /** The simulated RDS's clock runs this far ahead of the real one. */
  let clockOffsetMs = 0;
  let logText = '';
  const logSink = new PassThrough();
  logSink.on('data', (c: Buffer) => {
    logText += c.toString();
  });

  beforeAll(async () => {
    pg = await startPostgres();
    sim = await startSimulator({
      agentDefaults: { pacing: false },
      now: () => Date.now() + clockOffsetMs,
      logger: pino({ level: 'debug' }, logSink),
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

  it('a token is refused once the simulator clock is 16 minutes later, with its expiry time', async () => {
    const token = await mintToken(db.host);
    clockOffsetMs = 16 * 60_000;
    try {
      const r = await psql(conninfo(), token);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('PAM authentication failed for user "postgres"');
      expect(r.stderr).toMatch(/IAM token expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
      expect(db.stats.refusals.at(-1)?.reason).toBe('expired');
    } finally {
      clockOffsetMs = 0;
    }
    expect((await psql(conninfo(), token)).stdout).toBe('postgres');
  });

  it('a database added at run time shares the CA; its unreachable upstream is a clear 08006', async () => {
    const down = await sim.addDatabase({
      name: 'down',
      upstream: { host: '127.0.0.1', port: await closedPort() },
    });
    expect(down.caFile).toBe(db.caFile);
    expect(sim.databases.map((d) => d.name)).toEqual(['orders', 'down']);
    await expect(sim.addDatabase({ name: 'down', upstream: { host: '127.0.0.1', port: 1 } })).rejects.toThrow(
      'database down already exists',
    );
    const conn = [
      `host=${down.host} hostaddr=127.0.0.1 port=${down.frontPort} sslmode=verify-full`,
      `sslrootcert=${down.caFile} user=postgres dbname=postgres`,
    ].join(' ');
    const r = await psql(conn, await mintToken(down.host));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `could not connect to the database behind the simulated RDS endpoint ${down.host}`,
    );
    expect(down.stats.refusals).toEqual([{ user: 'postgres', reason: 'upstream', sqlstate: '08006' }]);
  });

  it('startSimulator refuses a database with a non-loopback upstream, with a fix', async () => {
    const err = await startSimulator({
      databases: [{ name: 'orders', upstream: { host: '10.0.0.5', port: 5432 } }],
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'SIM_BAD_DATABASE',
      message: 'upstream of database orders must be a loopback address, not "10.0.0.5"',
      fix: expect.stringContaining('local PostgreSQL'),
    });
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
    /** SSLRequest (after a refused GSSENCRequest), TLS verified against the CA, then a StartupMessage if `user`. */
    async function tlsStartup(
      user?: string,
    ): Promise<{ sock: tls.TLSSocket; next(): Promise<TypedMessage> }> {
      const raw = net.connect(db.frontPort, '127.0.0.1');
      await once(raw, 'connect');
      const oneByte = () => once(raw, 'data').then(([d]) => (d as Buffer).toString('latin1'));
      raw.write(gssencRequest());
      expect(await oneByte()).toBe('N');
      raw.write(sslRequest());
      expect(await oneByte()).toBe('S');
      const sock = tls.connect({ socket: raw, ca: readFileSync(db.caFile), servername: db.host });
      await once(sock, 'secureConnect');
      const reader = new MessageReader(1 << 20);
      let wake: (() => void) | undefined;
      sock.on('data', (chunk: Buffer) => {
        reader.push(chunk);
        wake?.();
      });
      sock.on('error', () => {});
      if (user !== undefined) sock.write(startupMessage({ user, database: 'postgres' }));
      const next = async (): Promise<TypedMessage> => {
        for (;;) {
          const m = reader.nextTyped();
          if (m) return m;
          await new Promise<void>((r) => {
            wake = r;
          });
        }
      };
      return { sock, next };
    }

    /** Logs in over TLS with a valid token and reads up to ReadyForQuery; returns the BackendKeyData. */
    async function login(): Promise<{
      sock: tls.TLSSocket;
      next(): Promise<TypedMessage>;
      pid: number;
      key: number;
    }> {
      const c = await tlsStartup('postgres');
      expect((await c.next()).type).toBe('R');
      c.sock.write(passwordMessage(await mintToken(db.host)));
      let pid = 0;
      let key = 0;
      for (;;) {
        const m = await c.next();
        if (m.type === 'E') throw new Error(JSON.stringify(parseErrorFields(m.body)));
        if (m.type === 'K') {
          pid = m.body.readInt32BE(0);
          key = m.body.readInt32BE(4);
        }
        if (m.type === 'Z') return { ...c, pid, key };
      }
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
    it('a CancelRequest sent inside TLS reaches the upstream and cancels the running query', async () => {
      const before = db.stats.cancels;
      const c = await login();
      try {
        const sql = Buffer.from('select pg_sleep(60)\0');
        const q = Buffer.alloc(5);
        q.write('Q', 0, 'latin1');
        q.writeInt32BE(4 + sql.length, 1);
        c.sock.write(Buffer.concat([q, sql]));
        for (let i = 0; ; i++) {
          const n = await pg.psql(
            "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'",
          );
          if (n === '1') break;
          if (i > 200) throw new Error('the query never started');
          await new Promise((r) => setTimeout(r, 25));
        }
        const canceller = await tlsStartup();
        canceller.sock.write(cancelRequest(c.pid, c.key));
        await once(canceller.sock, 'close');
        let err = await c.next();
        while (err.type === 'T') err = await c.next(); // RowDescription comes before the query runs
        expect(err.type).toBe('E');
        expect(parseErrorFields(err.body)).toMatchObject({
          C: '57014',
          M: 'canceling statement due to user request',
        });
        expect(db.stats.cancels).toBe(before + 1);
      } finally {
        c.sock.destroy();
      }
    });

    it('refuses bytes pipelined behind an SSLRequest, like PostgreSQL (CVE-2021-23214)', async () => {
      const raw = net.connect(db.frontPort, '127.0.0.1');
      const got: Buffer[] = [];
      raw.on('data', (d: Buffer) => got.push(d));
      raw.write(Buffer.concat([sslRequest(), startupMessage({ user: 'postgres' })]));
      await once(raw, 'close');
      const reader = new MessageReader();
      reader.push(Buffer.concat(got));
      const m = reader.nextTyped()!;
      expect(parseErrorFields(m.body)).toMatchObject({
        C: '08P01',
        M: 'received unencrypted data after SSL request',
      });
    });
  });

  describe('through the simulator: an agent resolves the RDS name with its own table', () => {
    async function session(host: string, port: string, target = BASTION) {
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
        target,
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

    it(`dials <rds name>:5432 and gets the front's 'S' answer to an SSLRequest (mux and basic agents)`, async () => {
      for (const target of [BASTION, LEGACY]) {
        const before = db.stats.plaintextRefused;
        const c = await session(db.host.toUpperCase(), '5432', target);
        try {
          expect(c.s.info.mode).toBe(target === BASTION ? 'mux' : 'basic');
          const id = c.s.openConnection();
          expect(await c.firstByte(id)).toBe('S');
          expect(c.errors).toEqual([]);
          expect(db.stats.plaintextRefused).toBe(before);
        } finally {
          await c.s.terminate();
        }
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

  it('no token, nor its signature, appears in any log line of this file', () => {
    expect(minted.length).toBeGreaterThan(10);
    expect(logText).toContain('IAM login accepted');
    expect(logText).toContain('login refused');
    for (const token of minted) {
      expect(logText).not.toContain(token);
      expect(logText).not.toContain(/X-Amz-Signature=([0-9a-f]{64})/.exec(token)![1]);
    }
  });
});
