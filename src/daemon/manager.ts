/**
 * All tunnels of one daemon. Each tunnel fails alone: a bad port, bad credentials or a dead session
 * in one never touches another. The API reads the daemon only through this class.
 */
import type { Logger } from 'pino';
import { type AwsCredentials, type AwsTarget, createSsmGateway, type SsmGateway } from './aws.js';
import type { TunnelConfig } from './config.js';
import { TunnelError } from './errors.js';
import { Tunnel, type TunnelDeps, type TunnelStatus } from './tunnel.js';

export interface ManagerOptions {
  logger: Logger;
  /** Defaults to the real SDK; tests and the demo pass the same (the simulator is just an endpoint). */
  gatewayFactory?: (t: AwsTarget) => SsmGateway;
  session?: TunnelDeps['session'];
}

export class TunnelManager {
  private readonly tunnels = new Map<string, Tunnel>();
  private readonly gateways = new Map<string, SsmGateway>();
  private readonly log: Logger;

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.logger;
  }

  /** One SSM client per profile/region/endpoint, shared by the tunnels that use it. */
  private gateway(t: AwsTarget): SsmGateway {
    const key = `${t.profile ?? ''}|${t.region}|${t.endpoint ?? ''}`;
    let g = this.gateways.get(key);
    if (!g) {
      g = (this.opts.gatewayFactory ?? createSsmGateway)(t);
      this.gateways.set(key, g);
    }
    return g;
  }

  /** The identity a tunnel's session uses (RDS auth tokens are signed with the same one). */
  credentials(config: TunnelConfig): Promise<AwsCredentials> {
    return this.gateway({
      profile: config.profile,
      region: config.region,
      endpoint: config.endpoint,
    }).credentials();
  }

  configs(): TunnelConfig[] {
    return [...this.tunnels.values()].map((t) => t.config);
  }

  async start(configs: TunnelConfig[]): Promise<void> {
    await Promise.all(configs.map((c) => this.add(c)));
  }

  async add(config: TunnelConfig): Promise<TunnelStatus> {
    if (this.tunnels.has(config.name)) {
      throw new TunnelError('LISTEN_FAILED', `a tunnel named ${config.name} already exists`);
    }
    const clash = [...this.tunnels.values()].find((t) => t.config.localPort === config.localPort);
    if (clash) {
      throw new TunnelError(
        'LISTEN_FAILED',
        `local port ${config.localPort} is already used by tunnel ${clash.config.name}`,
        'pick another local_port',
      );
    }
    const tunnel = new Tunnel(config, {
      gateway: (t) => this.gateway(t),
      logger: this.log,
      session: this.opts.session,
    });
    this.tunnels.set(config.name, tunnel);
    await tunnel.start();
    return tunnel.status();
  }

  async remove(name: string): Promise<void> {
    const t = this.require(name);
    this.tunnels.delete(name);
    await t.stop();
  }

  get(name: string): Tunnel | undefined {
    return this.tunnels.get(name);
  }

  require(name: string): Tunnel {
    const t = this.tunnels.get(name);
    if (!t) {
      throw new TunnelError(
        'TUNNEL_NOT_FOUND',
        `no tunnel named ${name}`,
        'list the tunnels with: ssmtun status',
      );
    }
    return t;
  }

  list(): TunnelStatus[] {
    return [...this.tunnels.values()].map((t) => t.status());
  }

  async open(name: string): Promise<TunnelStatus> {
    const t = this.require(name);
    await t.open();
    return t.status();
  }

  async close(name: string): Promise<TunnelStatus> {
    const t = this.require(name);
    await t.closeSession();
    return t.status();
  }

  /** Terminates every session and closes every listener, in parallel (shutdown must take < 2 s). */
  async stop(): Promise<void> {
    await Promise.all([...this.tunnels.values()].map((t) => t.stop().catch(() => {})));
    for (const g of this.gateways.values()) g.destroy();
    this.gateways.clear();
  }
}
