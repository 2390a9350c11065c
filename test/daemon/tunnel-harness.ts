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

export async function startTunnel(
  sim: Simulator,
  opts: { target: string; remotePort: number; name?: string; deps?: Partial<TunnelDeps> },
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
    idleTimeoutMs: 0,
    endpoint: sim.endpoint,
    lazy: true,
    documentName: DOCUMENT_REMOTE_HOST,
    parameters: {
      host: ['127.0.0.1'],
      portNumber: [String(opts.remotePort)],
      localPortNumber: [String(port)],
    },
    source: { file: '<test>', line: 0 },
  };
  const tunnel = new Tunnel(config, {
    gateway: (t) =>
      createSsmGateway({
        ...t,
        credentials: { accessKeyId: sim.accessKeyId, secretAccessKey: sim.secretAccessKey },
      }),
    logger,
    ...opts.deps,
  });
  await tunnel.start();
  return { tunnel, port, logs };
}
