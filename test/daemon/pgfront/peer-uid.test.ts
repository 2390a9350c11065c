/** Who opened a loopback connection, from /proc/net/tcp{,6}: parsing, then real sockets from this process and from nobody. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addressBytes,
  parseProcNetTcp,
  peerUid,
  refuseOtherUsers,
} from '../../../src/daemon/pgfront/peer-uid.js';
import { pgTool } from '../../helpers/postgres.js';

const TCP_HEADER =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const TCP6_HEADER =
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';

describe('parsing /proc/net/tcp and tcp6', () => {
  it('decodes little-endian IPv4 and IPv6 rows (addresses as 16 bytes, ports, uid)', () => {
    const v4 = parseProcNetTcp(
      `${TCP_HEADER}   0: 0100007F:976B 0200007F:1538 01 00000000:00000000 00:00000000 00000000  1000        0 97652 1 0 100 0 0 10 0\n`,
      true,
    );
    expect(v4).toHaveLength(1);
    expect(v4[0].local.equals(addressBytes('127.0.0.1') as Buffer)).toBe(true);
    expect(v4[0].remote.equals(addressBytes('127.0.0.2') as Buffer)).toBe(true);
    expect(v4[0]).toMatchObject({ localPort: 0x976b, remotePort: 0x1538, uid: 1000 });
    const v6 = parseProcNetTcp(
      `${TCP6_HEADER}   0: 00000000000000000000000001000000:E060 0000000000000000FFFF00000100007F:89F1 01 00000000:00000000 03:000007EF 00000000 65534        0 0 3 0\n`,
      true,
    );
    expect(v6[0].local.equals(addressBytes('::1') as Buffer)).toBe(true);
    expect(v6[0].remote.equals(addressBytes('::ffff:127.0.0.1') as Buffer)).toBe(true);
    expect(v6[0]).toMatchObject({ localPort: 0xe060, remotePort: 0x89f1, uid: 65534 });
    // Big-endian hosts print the words as they are.
    const be = parseProcNetTcp(`${TCP_HEADER}   0: 7F000001:0050 00000000:0000 0A 0:0 0:0 0 7 0 1\n`, false);
    expect(be[0].local.equals(addressBytes('127.0.0.1') as Buffer)).toBe(true);
    expect(be[0].uid).toBe(7);
    expect(parseProcNetTcp(`${TCP_HEADER}garbage line\n   1: zz\n`, true)).toEqual([]);
  });

  it('maps IPv4, IPv4-mapped and IPv6 text to the same 16-byte form', () => {
    const mapped = addressBytes('::ffff:127.0.0.1') as Buffer;
    expect(addressBytes('127.0.0.1')?.equals(mapped)).toBe(true);
    expect(addressBytes('::ffff:7f00:1')?.equals(mapped)).toBe(true);
    expect(addressBytes('::1')?.toString('hex')).toBe(`${'00'.repeat(15)}01`);
    expect(addressBytes('::')?.toString('hex')).toBe('00'.repeat(16));
    expect(addressBytes('1:2:3:4:5:6:7:8')?.toString('hex')).toBe('00010002000300040005000600070008');
    expect(addressBytes('fe80::1%lo')?.toString('hex')).toBe(`fe80${'00'.repeat(13)}01`);
    expect(addressBytes('localhost')).toBeUndefined();
  });
});

describe.runIf(process.platform === 'linux')('peer uid of real loopback connections', () => {
  const cleanup: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  /** A loopback server whose first accepted socket is handed back. */
  async function listen(host: string): Promise<{ port: number; accepted: Promise<net.Socket> }> {
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    server.listen(0, host);
    await once(server, 'listening');
    cleanup.push(() => server.close());
    return { port: (server.address() as net.AddressInfo).port, accepted };
  }

  async function connectFromHere(connectHost: string, listenHost: string): Promise<net.Socket> {
    const { port, accepted } = await listen(listenHost);
    const client = net.connect({ host: connectHost, port });
    client.on('error', () => {});
    cleanup.push(() => client.destroy());
    const sock = await accepted;
    cleanup.push(() => sock.destroy());
    return sock;
  }

  it('a connection from this process over 127.0.0.1 maps to our uid and is let in', async () => {
    const sock = await connectFromHere('127.0.0.1', '127.0.0.1');
    expect(await peerUid(sock)).toBe(process.getuid?.());
    expect(await refuseOtherUsers(sock)).toBeUndefined();
  });

  it('the same over ::1 (tcp6) and from an IPv6 socket to ::ffff:127.0.0.1 (IPv4-mapped)', async () => {
    const v6 = await connectFromHere('::1', '::1');
    expect(await peerUid(v6)).toBe(process.getuid?.());
    const mapped = await connectFromHere('::ffff:127.0.0.1', '127.0.0.1');
    expect(await peerUid(mapped)).toBe(process.getuid?.());
  });

  it('a connection whose owner is not in the tables is refused; a table-less system is not checked', async () => {
    const sock = await connectFromHere('127.0.0.1', '127.0.0.1');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ssmtun-procnet-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'tcp'), TCP_HEADER);
    writeFileSync(path.join(dir, 'tcp6'), TCP6_HEADER);
    expect(await peerUid(sock, dir)).toBeUndefined();
    expect(await refuseOtherUsers(sock, dir)).toMatch(
      /^could not tell which local user opened the connection/,
    );
    expect(await refuseOtherUsers(sock, path.join(dir, 'missing'))).toBeUndefined();
    // Not a socket (an in-process stream): nothing to check.
    expect(await refuseOtherUsers(new PassThrough())).toBeUndefined();
  });

  it('a connection made by runuser -u nobody maps to nobody and is refused', async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip();
    const { port, accepted } = await listen('127.0.0.1');
    // psql sends its StartupMessage and waits for an answer, keeping its socket open while we look.
    const child: ChildProcess = spawn(
      'runuser',
      [
        '-u',
        'nobody',
        '--',
        pgTool('psql'),
        '-X',
        '-w',
        `host=127.0.0.1 port=${port} user=x sslmode=disable`,
      ],
      { stdio: 'ignore', cwd: os.tmpdir() },
    );
    cleanup.push(() => child.kill('SIGKILL'));
    const sock = await accepted;
    cleanup.push(() => sock.destroy());
    const nobody = Number(
      await new Promise<string>((resolve) => {
        const id = spawn('id', ['-u', 'nobody']);
        let out = '';
        id.stdout.on('data', (c: Buffer) => {
          out += c.toString();
        });
        id.on('close', () => resolve(out.trim()));
      }),
    );
    expect(nobody).toBeGreaterThan(0);
    expect(await peerUid(sock)).toBe(nobody);
    expect(await refuseOtherUsers(sock)).toBe(
      `the connection comes from another local user (uid ${nobody}); only ${os.userInfo().username} (uid 0), who runs the daemon, may connect`,
    );
  });
});
