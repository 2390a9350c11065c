/**
 * The simulated RDS MySQL front with real parts: a throw-away MariaDB behind it, the simulator's own CA,
 * and the real `mariadb` client doing TLS with --ssl-ca and the mysql_clear_password exchange with IAM
 * tokens minted by @aws-sdk/rds-signer.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { Signer } from '@aws-sdk/rds-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT,
  encodeHandshakeResponse41,
  encodePacket,
  encodeSslRequest,
  type Packet,
  PacketReader,
  packetKind,
  parseAuthSwitch,
  parseErr,
  parseHandshakeV10,
} from '../../src/shared/mysql-wire.js';
import {
  DEFAULT_CREDENTIALS,
  type SimDatabase,
  type Simulator,
  startSimulator,
} from '../../src/sim/index.js';
import { type MariaDb, mariadbAvailable, startMariaDb } from '../../src/sim/mariadb.js';
import { createSimCa } from '../../src/sim/tls-ca.js';
import { runTool, type ToolResult } from '../helpers/run.js';

// Without MariaDB on a developer machine the suite is skipped; under CI it must run (and fail if missing).
const run = mariadbAvailable() || process.env.CI ? describe : describe.skip;

async function mintToken(host: string, user = 'app', port = 3306): Promise<string> {
  return new Signer({
    hostname: host,
    port,
    username: user,
    region: 'us-east-1',
    credentials: DEFAULT_CREDENTIALS,
  }).getAuthToken();
}

/** The next whole packet on a stream. */
function nextPacket(stream: Duplex, reader: PacketReader): Promise<Packet> {
  const ready = reader.next();
  if (ready) return Promise.resolve(ready);
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer) => {
      reader.push(c);
      const p = reader.next();
      if (!p) return;
      stream.off('data', onData);
      stream.off('close', onClose);
      resolve(p);
    };
    const onClose = () => reject(new Error('closed before a whole packet'));
    stream.on('data', onData);
    stream.once('close', onClose);
  });
}

const CLIENT_CAPS =
  CLIENT.LONG_PASSWORD |
  CLIENT.PROTOCOL_41 |
  CLIENT.SECURE_CONNECTION |
  CLIENT.PLUGIN_AUTH |
  CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  CLIENT.TRANSACTIONS;

type ClientResult = ToolResult;

run('simulated RDS MySQL front (real mariadb client, real MariaDB)', () => {
  let mdb: MariaDb;
  let sim: Simulator;
  let db: SimDatabase;
  let clockOffsetMs = 0;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    mdb = await startMariaDb();
    await mdb.sql(
      "create user app@'%' identified by ''; create database shop; grant all on shop.* to app@'%'",
    );
    sim = await startSimulator({
      agentDefaults: { pacing: false },
      now: () => Date.now() + clockOffsetMs,
      databases: [{ name: 'shop', engine: 'mysql', upstream: { host: '127.0.0.1', port: mdb.port } }],
    });
    db = sim.databases[0];
  }, 60_000);
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await sim?.close();
    await mdb?.stop();
  });

  function client(args: string[], o: { password?: string; tls?: string[] } = {}): Promise<ClientResult> {
    const tlsArgs = o.tls ?? ['--ssl', `--ssl-ca=${db.caFile}`];
    const full = [
      '--no-defaults',
      '--protocol=tcp',
      '--host=127.0.0.1',
      `--port=${db.frontPort}`,
      '--connect-timeout=10',
      ...tlsArgs,
      '--user=app',
      ...(o.password !== undefined ? [`--password=${o.password}`] : []),
      '-N',
      '-B',
      ...args,
    ];
    return runTool(mdb.client, full, { env: { PATH: process.env.PATH } }, children);
  }

  it('names the RDS host on port 3306 and the shared CA', () => {
    expect(db).toMatchObject({
      name: 'shop',
      host: 'shop.cluster-c0ffee.us-east-1.rds.amazonaws.com',
      port: 3306,
      engine: 'mysql',
    });
    expect(sim.databases[0].frontPort).toBeGreaterThan(0);
  });

  it('a valid IAM token over TLS logs in as that user and reaches the real MariaDB', async () => {
    const before = db.stats.logins;
    const r = await client(['-e', 'select current_user(), database(), @@version_comment'], {
      password: await mintToken(db.host),
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [user, database, comment] = r.stdout.split('\t');
    expect(user).toBe('app@%');
    expect(database).toBe('NULL');
    expect(comment).toMatch(/Debian|MariaDB/);
    expect(db.stats.logins).toBe(before + 1);
  });

  it('the client reports TLS on its side; the database is passed on; queries of any size go through', async () => {
    const token = await mintToken(db.host);
    const status = await client(['--database=shop', '-e', 'status'], { password: token });
    expect(status.stderr).toBe('');
    expect(status.stdout).toMatch(/SSL:\s+Cipher in use is \S+/);
    expect(status.stdout).toMatch(/Current database:\s+shop/);
    const big = await client(
      [
        '--database=shop',
        '-e',
        'create table t (v longtext); insert into t values (repeat("x", 3000000)); select length(v) from t',
      ],
      { password: token },
    );
    expect(big.stderr).toBe('');
    expect(big.stdout).toBe('3000000');
  });

  it('a CA that did not sign the server certificate fails the TLS check before any password is sent', async () => {
    const other = await createSimCa();
    try {
      const before = db.stats.refusals.length + db.stats.logins;
      const r = await client(['-e', 'select 1'], {
        password: await mintToken(db.host),
        tls: ['--ssl', `--ssl-ca=${other.caFile}`],
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/ERROR 2026 .*TLS\/SSL error/);
      expect(db.stats.refusals.length + db.stats.logins).toBe(before);
    } finally {
      await other.close();
    }
  });

  it('without TLS the login is refused with 3159 like require_secure_transport=ON', async () => {
    const before = db.stats.plaintextRefused;
    const r = await client(['-e', 'select 1'], { password: await mintToken(db.host), tls: ['--skip-ssl'] });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'ERROR 3159 (HY000): Connections using insecure transport are prohibited while --require_secure_transport=ON.',
    );
    expect(db.stats.plaintextRefused).toBe(before + 1);
  });

  const denied = "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)";

  it.each([
    ['wrong-host', () => mintToken('other.cluster-c0ffee.us-east-1.rds.amazonaws.com')],
    ['wrong-port', () => mintToken('shop.cluster-c0ffee.us-east-1.rds.amazonaws.com', 'app', 5432)],
    ['wrong-user', () => mintToken('shop.cluster-c0ffee.us-east-1.rds.amazonaws.com', 'admin')],
    ['malformed', async () => 'not-a-token'],
    [
      'bad-signature',
      async () => {
        const t = await mintToken('shop.cluster-c0ffee.us-east-1.rds.amazonaws.com');
        return t.replace(
          /X-Amz-Signature=([0-9a-f])/,
          (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`,
        );
      },
    ],
  ])('a %s token is refused with RDS 1045', async (reason, token) => {
    const before = db.stats.logins;
    const r = await client(['-e', 'select 1'], { password: await token() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(denied);
    expect(db.stats.refusals.at(-1)).toEqual({ user: 'app', reason, sqlstate: '28000' });
    expect(db.stats.logins).toBe(before);
  });

  it('a token is refused once the simulator clock is 16 minutes later, and accepted again after', async () => {
    const token = await mintToken(db.host);
    clockOffsetMs = 16 * 60_000;
    try {
      const r = await client(['-e', 'select 1'], { password: token });
      expect(r.stderr).toContain(denied);
      expect(db.stats.refusals.at(-1)?.reason).toBe('expired');
    } finally {
      clockOffsetMs = 0;
    }
    expect((await client(['-e', 'select current_user()'], { password: token })).stdout).toBe('app@%');
  });

  it('a valid token for a user the upstream does not know passes on the upstream refusal', async () => {
    const r = await client(['--user=ghost', '-e', 'select 1'], {
      password: await mintToken(db.host, 'ghost'),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /ERROR 1045 \(28000\): Access denied for user 'ghost'@'(localhost|127\.0\.0\.1)'/,
    );
    expect(db.stats.refusals.at(-1)).toEqual({ user: 'ghost', reason: 'upstream', sqlstate: '28000' });
  });

  it("MariaDB's client sends the token for mysql_clear_password on its own; --enable-cleartext-plugin only warns", async () => {
    // MariaDB's client has no cleartext opt-in (the option is obsolete there), and it says so on stdout.
    const r = await client(['--enable-cleartext-plugin', '-e', 'select current_user()'], {
      password: await mintToken(db.host),
    });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      "WARNING: option '--enable-cleartext-plugin' is obsolete.",
      'app@%',
    ]);
  });

  /** Greeting, then TLS with the SSLRequest and the ClientHello in one write, verifying the RDS name. */
  async function rawTlsLogin(): Promise<{ secure: tls.TLSSocket; reader: PacketReader; raw: net.Socket }> {
    const raw = net.connect(db.frontPort, '127.0.0.1');
    const greeting = parseHandshakeV10((await nextPacket(raw, new PacketReader())).payload);
    expect(greeting).toMatchObject({
      serverVersion: '8.0.mysql_aurora.3.05.2',
      authPlugin: 'mysql_native_password',
    });
    expect(greeting.scramble.length).toBe(20);
    expect(greeting.capabilities & CLIENT.SSL).toBe(CLIENT.SSL);
    let head: Buffer | undefined = encodePacket(1, encodeSslRequest(CLIENT_CAPS, 45));
    const carrier = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        raw.write(head ? Buffer.concat([head, chunk]) : chunk, cb);
        head = undefined;
      },
    });
    raw.on('data', (c: Buffer) => carrier.push(c));
    raw.on('close', () => carrier.destroy());
    const secure = tls.connect({ socket: carrier, ca: readFileSync(db.caFile), servername: db.host });
    await once(secure, 'secureConnect');
    return { secure, reader: new PacketReader(), raw };
  }

  it('a ClientHello in the same write as the SSLRequest is not lost; the exchange has RDS sequence ids', async () => {
    const { secure, reader, raw } = await rawTlsLogin();
    try {
      const response = {
        capabilities: CLIENT_CAPS,
        maxPacketSize: 1 << 24,
        charset: 45,
        filler: Buffer.alloc(23),
        user: 'app',
        authResponse: Buffer.alloc(20, 1), // a mysql_native_password scramble of something: ignored
        authPlugin: 'mysql_native_password',
      };
      secure.write(encodePacket(2, encodeHandshakeResponse41(response)));
      const sw = await nextPacket(secure, reader);
      expect(sw.seq).toBe(3);
      expect(parseAuthSwitch(sw.payload).plugin).toBe('mysql_clear_password');
      secure.write(encodePacket(4, Buffer.from(`${await mintToken(db.host)}\0`)));
      const ok = await nextPacket(secure, reader);
      expect(ok.seq).toBe(5);
      expect(packetKind(ok.payload)).toBe('ok');
      // COM_PING goes to the real server now and comes back as its OK with sequence id 1.
      secure.write(encodePacket(0, Buffer.from([0x0e])));
      const pong = await nextPacket(secure, reader);
      expect([pong.seq, packetKind(pong.payload)]).toEqual([1, 'ok']);
    } finally {
      secure.destroy();
      raw.destroy();
    }
  });

  it('a HandshakeResponse that breaks the protocol inside TLS gets 1043 Bad handshake', async () => {
    const { secure, reader, raw } = await rawTlsLogin();
    try {
      secure.write(encodePacket(2, Buffer.from([0, 0, 0, 0, 1])));
      const err = await nextPacket(secure, reader);
      expect(err.seq).toBe(3);
      expect(parseErr(err.payload)).toMatchObject({ errno: 1043, sqlstate: '08S01' });
      expect(db.stats.refusals.at(-1)).toEqual({ user: '', reason: 'protocol', sqlstate: '08S01' });
    } finally {
      secure.destroy();
      raw.destroy();
    }
  });
});
