/**
 * The front's refusals that need no database: bad client bytes, users, timeouts, a client leaving
 * mid-login, and upstreams that do not speak TLS. The client is a duplexPair end speaking the wire
 * protocol through src/shared/pg-wire.ts; upstreams are duplexPair ends driven by the test.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { validateTunnel } from '../../../src/daemon/config.js';
import {
  createPgFrontStats,
  handlePgClient,
  type PgClientOutcome,
  type PgFrontOptions,
} from '../../../src/daemon/pgfront/index.js';
import { duplexPair } from '../../../src/shared/duplex-pair.js';
import {
  gssencRequest,
  MessageReader,
  parseErrorFields,
  sslRequest,
  startupMessage,
} from '../../../src/shared/pg-wire.js';

const HOST = 'orders.cluster-c0ffee.us-east-1.rds.amazonaws.com';
const tunnel = validateTunnel('orders', {
  region: 'us-east-1',
  target: 'i-05e1a000000000001',
  remote_host: HOST,
  remote_port: 5432,
  local_port: 15432,
  db_user: 'app',
  auth: 'iam',
});

function setup(over: Partial<PgFrontOptions> = {}) {
  const stats = createPgFrontStats();
  const [client, local] = duplexPair();
  client.on('error', () => {});
  const outcome: Promise<PgClientOutcome> = handlePgClient(local, {
    tunnel,
    allowedUsers: ['app'],
    token: async () => 'tok',
    openUpstream: () => new Promise(() => {}),
    ca: 'unused',
    servername: HOST,
    logger: pino({ level: 'silent' }),
    stats,
    ...over,
  });
  const received: Buffer[] = [];
  client.on('data', (c: Buffer) => received.push(c));
  const closed = once(client, 'end').catch(() => undefined);
  /** Everything the front sent until it hung up. */
  const all = async () => {
    await closed;
    return Buffer.concat(received);
  };
  return { stats, client, outcome, all };
}

/** The fields of the one ErrorResponse in `bytes` (after `skip` single-byte answers). */
function errorOf(bytes: Buffer, skip = 0): Record<string, string> {
  const r = new MessageReader();
  r.push(bytes.subarray(skip));
  const msg = r.nextTyped();
  expect(msg?.type).toBe('E');
  return parseErrorFields((msg as { body: Buffer }).body);
}

/** An upstream the test plays: `onSsl` gets the far end once the SSLRequest has arrived. */
function upstream(onSsl: (far: Duplex) => void) {
  let far: Duplex | undefined;
  return {
    get far() {
      return far;
    },
    open: async (): Promise<Duplex> => {
      const [near, other] = duplexPair();
      far = other;
      other.on('error', () => {});
      other.once('data', () => onSsl(other));
      return near;
    },
  };
}

describe('front refusals without a database', () => {
  it('answers SSLRequest and GSSENCRequest with N, then refuses a user not allowed (28000)', async () => {
    const t = setup();
    t.client.write(sslRequest());
    t.client.write(gssencRequest());
    t.client.write(startupMessage({ user: 'eve', database: 'orders' }));
    const bytes = await t.all();
    expect(bytes.subarray(0, 2).toString()).toBe('NN');
    const e = errorOf(bytes, 2);
    expect(e).toMatchObject({ S: 'FATAL', C: '28000' });
    expect(e.M).toBe('ssmtun: user "eve" may not log in through tunnel orders; allowed users: app');
    expect(e.H).toMatch(/^connect as app, or add "eve" to db_users in \[tunnels\.orders\] \(<api>\)$/);
    expect(await t.outcome).toEqual({
      kind: 'refused',
      reason: 'user-not-allowed',
      code: 'PGFRONT_USER_NOT_ALLOWED',
    });
    expect(t.stats.loginFailures['user-not-allowed']).toBe(1);
  });

  it('refuses a startup packet without a user, a third negotiation, bad lengths and protocol 2', async () => {
    const cases: Array<[Buffer, string, RegExp, number]> = [
      [startupMessage({ database: 'orders' }), '28000', /no PostgreSQL user name/, 0],
      [
        Buffer.concat([sslRequest(), gssencRequest(), sslRequest()]),
        '08P01',
        /too many SSL\/GSSENC requests/,
        2,
      ],
      [Buffer.from([0, 0, 0, 2, 0, 0, 0, 0]), '08P01', /invalid length of startup packet/, 0],
      [startupMessage({ user: 'app' }, 2 << 16), '0A000', /unsupported frontend protocol 2\.0/, 0],
    ];
    for (const [bytes, code, message, skip] of cases) {
      const t = setup();
      t.client.write(bytes);
      const e = errorOf(await t.all(), skip);
      expect(e.C).toBe(code);
      expect(e.M).toMatch(/^ssmtun: /);
      expect(e.M).toMatch(message);
    }
  });

  it('a login that does not finish in time gets 08006 and the upstream is closed', async () => {
    const up = upstream(() => {}); // never answers the SSLRequest
    const t = setup({ openUpstream: up.open, loginTimeoutMs: 300 });
    t.client.write(startupMessage({ user: 'app' }));
    const e = errorOf(await t.all());
    expect(e.C).toBe('08006');
    expect(e.M).toBe('ssmtun: the login through tunnel orders did not finish within 300 ms');
    expect((await t.outcome).kind).toBe('refused');
    expect(t.stats.loginFailures.timeout).toBe(1);
    expect(up.far?.destroyed).toBe(true);
  });

  it('a stream that arrives after the login timed out is closed at once', async () => {
    let deliver: (d: Duplex) => void = () => {};
    const late = new Promise<Duplex>((r) => {
      deliver = r;
    });
    const t = setup({ openUpstream: () => late, loginTimeoutMs: 100 });
    t.client.write(startupMessage({ user: 'app' }));
    expect(await t.outcome).toMatchObject({ reason: 'timeout' });
    const [near, far] = duplexPair();
    far.on('error', () => {});
    const farClosed = once(far, 'close');
    deliver(near);
    await farClosed;
    expect(near.destroyed).toBe(true);
  });

  it('a client that leaves mid-login closes the upstream and counts client-closed', async () => {
    let reached: () => void = () => {};
    const atSsl = new Promise<void>((r) => {
      reached = r;
    });
    const up = upstream(() => reached());
    const t = setup({ openUpstream: up.open });
    t.client.write(startupMessage({ user: 'app' }));
    await atSsl;
    const farClosed = once(up.far as Duplex, 'close');
    t.client.destroy();
    await farClosed;
    expect(await t.outcome).toMatchObject({ reason: 'client-closed' });
    expect(t.stats.loginFailures['client-closed']).toBe(1);
  });

  it('an upstream that answers N, sends bytes after S, or hangs up before TLS is refused with 08006', async () => {
    const cases: Array<[(far: Duplex) => void, string, RegExp]> = [
      [(far) => far.write('N'), 'tls', /does not accept TLS \(it answered N to SSLRequest\)/],
      [(far) => far.write('Sgarbage'), 'tls', /sent unencrypted data after its SSL response/],
      [(far) => far.destroy(), 'upstream', /closed before TLS started/],
    ];
    for (const [answer, reason, message] of cases) {
      const t = setup({ openUpstream: upstream(answer).open });
      t.client.write(startupMessage({ user: 'app' }));
      const e = errorOf(await t.all());
      expect(e.C).toBe('08006');
      expect(e.M).toMatch(new RegExp(`^ssmtun: .*${message.source}`));
      expect(e.H).toBeTruthy();
      expect((await t.outcome) as { reason: string }).toMatchObject({ reason });
    }
  });

  it('a token failure is reported at once, before the upstream answers', async () => {
    const t = setup({
      openUpstream: () => new Promise(() => {}),
      token: async () => {
        throw new Error('no credentials in the chain');
      },
    });
    t.client.write(startupMessage({ user: 'app' }));
    const e = errorOf(await t.all());
    expect(e.C).toBe('28000');
    expect(e.M).toBe('ssmtun: could not get an IAM token for app: no credentials in the chain');
    expect(e.H).toMatch(/AWS credentials/);
    expect(t.stats.loginFailures.token).toBe(1);
  });
});
