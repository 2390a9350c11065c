/** A tunnel's local listeners: one server per bind address, loopback only, IPv6 optional. */
import net from 'node:net';
import type { Logger } from 'pino';
import type { TunnelConfig } from './config.js';
import { TunnelError } from './errors.js';

export interface Bound {
  servers: net.Server[];
  listening: string[];
  /** Set when any address failed (then every server is closed again). */
  error?: TunnelError;
}

export async function listenAll(
  config: TunnelConfig,
  onConnection: (socket: net.Socket) => void,
  log: Logger,
): Promise<Bound> {
  const servers: net.Server[] = [];
  const listening: string[] = [];
  const errors: string[] = [];
  for (const host of config.bind) {
    try {
      servers.push(await listenOne(host, config.localPort, onConnection, log));
      listening.push(host);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // A machine without IPv6 still gets a working tunnel on 127.0.0.1.
      if (host === '::1' && (err.code === 'EADDRNOTAVAIL' || err.code === 'EAFNOSUPPORT')) {
        log.warn({ host }, 'IPv6 loopback unavailable; listening on the other addresses only');
        continue;
      }
      errors.push(`${host}:${config.localPort}: ${err.code ?? err.message}`);
    }
  }
  if (listening.length > 0 && errors.length === 0) return { servers, listening };
  await closeAll(servers);
  const inUse = errors.some((e) => e.includes('EADDRINUSE'));
  return {
    servers: [],
    listening: [],
    error: new TunnelError(
      'LISTEN_FAILED',
      `cannot listen on ${errors.join(', ')}`,
      inUse ? `another program uses port ${config.localPort}; pick another local_port` : undefined,
    ),
  };
}

function listenOne(
  host: string,
  port: number,
  onConnection: (socket: net.Socket) => void,
  log: Logger,
): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true }, onConnection);
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
      server.off('error', reject);
      server.on('error', (e) => log.error({ err: e.message }, 'listener error'));
      resolve(server);
    });
  });
}

export async function closeAll(servers: net.Server[]): Promise<void> {
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
}
