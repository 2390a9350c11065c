/**
 * In-process tunnels against the in-process simulator: a real Tunnel with real listeners, real
 * WebSockets to the simulator's gateway and a real destination server, all on loopback.
 */
import pino from 'pino';
import { createSsmGateway } from '../../src/daemon/aws.js';
import { DOCUMENT_REMOTE_HOST, type TunnelConfig } from '../../src/daemon/config.js';
import { Tunnel, type TunnelDeps } from '../../src/daemon/tunnel.js';
import type { Simulator } from '../../src/sim/index.js';
import { freePort } from '../helpers/net.js';

export const BASTION = 'i-05e1a000000000001';
export const LEGACY = 'i-05e1a000000000002';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export type SimEndpoint = Pick<Simulator, 'region' | 'endpoint' | 'accessKeyId' | 'secretAccessKey'>;

export async function startTunnel(
  sim: SimEndpoint,
  opts: { target: string; remotePort: number; name?: string; endpoint?: string; deps?: Partial<TunnelDeps> },
): Promise<{ tunnel: Tunnel; port: number; logs: LogLine[] }> {
  const port = await freePort();
  const logs: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  const config: TunnelConfig = {
    name: opts.name ?? 't',
    region: sim.region,
    target: { kind: 'instance', instanceId: opts.target },
    remoteHost: '127.0.0.1',
    remotePort: opts.remotePort,
    localPort: port,
    bind: ['127.0.0.1'],
    engine: 'postgres',
    sslmode: 'verify-full',
    idleTimeoutMs: 0,
    endpoint: opts.endpoint ?? sim.endpoint,
    lazy: true,
    documentName: DOCUMENT_REMOTE_HOST,
    parameters: {
      host: ['127.0.0.1'],
      portNumber: [String(opts.remotePort)],
      localPortNumber: [String(port)],
    },
    source: { file: '<test>', line: 0 },
  };
  // One gateway for the tunnel's life, as the manager keeps one per identity and endpoint.
  let gateway: ReturnType<typeof createSsmGateway> | undefined;
  const tunnel = new Tunnel(config, {
    gateway: (t) => {
      gateway ??= createSsmGateway({
        ...t,
        credentials: { accessKeyId: sim.accessKeyId, secretAccessKey: sim.secretAccessKey },
      });
      return gateway;
    },
    logger,
    ...opts.deps,
  });
  await tunnel.start();
  return { tunnel, port, logs };
}

/**
 * How a connection ended, seen from the client: 'RST' or 'FIN'. libuv reports a reset that arrives
 * behind unread data as a plain end, so after an end we write one byte: a socket the peer reset fails
 * at once (ECONNRESET/EPIPE), one it closed with FIN accepts the write. Needs `allowHalfOpen: true`.
 */
export function howItEnds(sock: import('node:net').Socket): Promise<'RST' | 'FIN'> {
  return new Promise((resolve) => {
    const onError = (e: NodeJS.ErrnoException) =>
      resolve(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'RST' : 'FIN');
    sock.once('error', onError);
    sock.once('end', () => {
      sock.off('error', onError);
      sock.once('error', () => {});
      sock.write('x', (err?: NodeJS.ErrnoException | null) =>
        resolve(err && (err.code === 'ECONNRESET' || err.code === 'EPIPE') ? 'RST' : 'FIN'),
      );
    });
  });
}
