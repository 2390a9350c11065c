/**
 * Which local OS user opened a loopback TCP connection, on Linux: the kernel lists every socket with
 * its owner's uid in /proc/net/tcp and /proc/net/tcp6. The client's socket is the row whose
 * local_address is the client's address:port (our socket's remote end) and whose rem_address is ours.
 * Other platforms have no such table; there the port is protected by listening on loopback only.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';

export interface ProcNetRow {
  /** 16 bytes: IPv4 rows are given as IPv4-mapped IPv6 (::ffff:a.b.c.d) so both tables compare alike. */
  local: Buffer;
  localPort: number;
  remote: Buffer;
  remotePort: number;
  uid: number;
}

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** The kernel prints each 32-bit word of the address in host byte order. */
function hexAddress(hex: string, littleEndian: boolean): Buffer {
  const bytes = Buffer.from(hex, 'hex');
  if (littleEndian) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes.length === 4 ? Buffer.concat([MAPPED_PREFIX, bytes]) : bytes;
}

/** Rows of /proc/net/tcp or /proc/net/tcp6 (header skipped, malformed lines ignored). */
export function parseProcNetTcp(text: string, littleEndian = os.endianness() === 'LE'): ProcNetRow[] {
  const rows: ProcNetRow[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [la, lp] = f[1].split(':');
    const [ra, rp] = f[2].split(':');
    if (!la || !lp || !ra || !rp || (la.length !== 8 && la.length !== 32)) continue;
    const uid = Number(f[7]);
    if (!Number.isInteger(uid)) continue;
    rows.push({
      local: hexAddress(la, littleEndian),
      localPort: Number.parseInt(lp, 16),
      remote: hexAddress(ra, littleEndian),
      remotePort: Number.parseInt(rp, 16),
      uid,
    });
  }
  return rows;
}

/** An IP address as 16 bytes, IPv4 (and IPv4-mapped) as ::ffff:a.b.c.d; undefined when not an IP. */
export function addressBytes(ip: string): Buffer | undefined {
  const v4 = (s: string) => (net.isIPv4(s) ? Buffer.from(s.split('.').map(Number)) : undefined);
  if (net.isIPv4(ip)) return Buffer.concat([MAPPED_PREFIX, v4(ip) as Buffer]);
  const bare = ip.split('%')[0];
  if (!net.isIPv6(bare)) return undefined;
  let text = bare;
  let tail: Buffer = Buffer.alloc(0);
  const lastColon = text.lastIndexOf(':');
  const embedded = v4(text.slice(lastColon + 1));
  if (embedded) {
    tail = embedded;
    // "::ffff:1.2.3.4" -> "::ffff", "::1.2.3.4" -> "::"
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const groupsWanted = (16 - tail.length) / 2;
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const hs = head ? head.split(':') : [];
  const rs = rest ? rest.split(':') : [];
  const groups =
    rest === undefined ? hs : [...hs, ...Array(groupsWanted - hs.length - rs.length).fill('0'), ...rs];
  if (groups.length !== groupsWanted) return undefined;
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g || '0', 16), i * 2);
  tail.copy(out, 16 - tail.length);
  return out;
}

/**
 * The uid owning the client end of an accepted loopback connection, or undefined when it cannot be
 * told (not Linux, no /proc, no row: the client is gone).
 */
export async function peerUid(socket: net.Socket, procDir = '/proc/net'): Promise<number | undefined> {
  if (process.platform !== 'linux') return undefined;
  const client = socket.remoteAddress && addressBytes(socket.remoteAddress);
  const server = socket.localAddress && addressBytes(socket.localAddress);
  if (!client || !server || !socket.remotePort || !socket.localPort) return undefined;
  // An IPv4 client reaching a dual-stack listener shows up as ::ffff:a.b.c.d here but sits in tcp.
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await readFile(`${procDir}/${table}`, 'utf8');
    } catch {
      continue;
    }
    const row = parseProcNetTcp(text).find(
      (r) =>
        r.localPort === socket.remotePort &&
        r.remotePort === socket.localPort &&
        r.local.equals(client) &&
        r.remote.equals(server),
    );
    if (row) return row.uid;
  }
  return undefined;
}

/** Whether /proc/net/tcp can be read at all (Linux with procfs mounted). */
async function procReadable(procDir: string): Promise<boolean> {
  try {
    await readFile(`${procDir}/tcp`, 'utf8');
    return true;
  } catch {
    return false;
  }
}

/**
 * Why this connection must be refused because another OS user made it, or undefined to let it in.
 * On Linux a connection whose owner cannot be found is refused too: the client is gone or hidden.
 */
export async function refuseOtherUsers(
  socket: net.Socket | unknown,
  procDir = '/proc/net',
): Promise<string | undefined> {
  if (process.platform !== 'linux' || typeof process.getuid !== 'function') return undefined;
  if (!(socket instanceof net.Socket) || !socket.remoteAddress) return undefined;
  if (!(await procReadable(procDir))) return undefined;
  const me = process.getuid();
  const uid = await peerUid(socket, procDir);
  if (uid === me) return undefined;
  const who = os.userInfo().username;
  if (uid === undefined) {
    return `could not tell which local user opened the connection from ${socket.remoteAddress}:${socket.remotePort}, so it is refused (only ${who}, uid ${me}, may connect)`;
  }
  return `the connection comes from another local user (uid ${uid}); only ${who} (uid ${me}), who runs the daemon, may connect`;
}
