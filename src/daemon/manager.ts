/**
 * All tunnels of one daemon. Each tunnel fails alone: a bad port, bad credentials or a dead session
 * in one never touches another. The API reads the daemon only through this class.
 *
 * `reconcile` is the reload (SIGHUP, and the API's reload): it applies only the difference between
 * the running config tunnels and a new list, so tunnels whose config did not change keep their
 * sessions and open connections.
 */
import type { Logger } from 'pino';
import { type AwsCredentials, type AwsTarget, createSsmGateway, type SsmGateway } from './aws.js';
import { ConfigError, type ConfigIssue, type TunnelConfig } from './config.js';
import { TunnelError } from './errors.js';
import { ListenRetries } from './listen-retry.js';
import { createTunnel, type TunnelLike } from './pool.js';
import type { TunnelDeps, TunnelObserver, TunnelStatus } from './tunnel.js';

export interface ManagerOptions {
  logger: Logger;
  /** Defaults to the real SDK; tests and the demo pass the same (the simulator is just an endpoint). */
  gatewayFactory?: (t: AwsTarget) => SsmGateway;
  session?: TunnelDeps['session'];
  /** Every tunnel's state changes and errors, as they happen. */
  observer?: TunnelObserver;
  /** RDS IAM tokens for `auth = "iam"` tunnels. */
  tokens?: TunnelDeps['tokens'];
  /** First back-off step when a local port is busy (doubles up to 30 s). */
  listenRetryMs?: number;
}

export interface ReconcileResult {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

/** Two configs are the same tunnel if everything but where they were written is equal. */
function sameConfig(a: TunnelConfig, b: TunnelConfig): boolean {
  const strip = ({ source: _source, ...rest }: TunnelConfig) => JSON.stringify(rest);
  return strip(a) === strip(b);
}

export class TunnelManager {
  private readonly tunnels = new Map<string, TunnelLike>();
  private readonly gateways = new Map<string, SsmGateway>();
  /** Names of the tunnels that came from the config file (the rest were made through the API). */
  private readonly fromConfig = new Set<string>();
  private readonly retries: ListenRetries;
  private reconciling: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.logger;
    this.retries = new ListenRetries(opts.listenRetryMs);
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

  /** Starts the config file's tunnels. */
  async start(configs: TunnelConfig[]): Promise<void> {
    for (const c of configs) this.fromConfig.add(c.name);
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
    const tunnel = createTunnel(config, {
      gateway: (t) => this.gateway(t),
      logger: this.log,
      session: this.opts.session,
      observer: this.opts.observer,
      tokens: this.opts.tokens,
    });
    this.tunnels.set(config.name, tunnel);
    this.opts.observer?.added?.(config.name);
    await tunnel.start();
    this.retries.watch(tunnel);
    return tunnel.status();
  }

  async remove(name: string): Promise<void> {
    const t = this.require(name);
    this.tunnels.delete(name);
    this.opts.observer?.removed?.(name);
    this.fromConfig.delete(name);
    this.retries.cancel(t);
    await t.stop();
  }

  /**
   * Applies a new list of config tunnels: added ones start, removed ones terminate their session and
   * stop, changed ones restart, unchanged ones are not touched. A list that clashes with a tunnel made
   * through the API is refused as a whole (ConfigError) and nothing changes. Calls are serialised.
   */
  reconcile(configs: TunnelConfig[]): Promise<ReconcileResult> {
    const run = this.reconciling.then(() => this.reconcileNow(configs));
    this.reconciling = run.catch(() => {});
    return run;
  }

  private async reconcileNow(configs: TunnelConfig[]): Promise<ReconcileResult> {
    const wanted = new Map(configs.map((c) => [c.name, c]));
    const issues: ConfigIssue[] = [];
    for (const c of configs) {
      for (const t of this.tunnels.values()) {
        if (this.fromConfig.has(t.config.name)) continue;
        const fix = `rename it, or remove the API tunnel first: ssmtun rm ${t.config.name}`;
        if (t.config.name === c.name) {
          issues.push({ ...c.source, message: `a tunnel named ${c.name} was made through the API`, fix });
        } else if (t.config.localPort === c.localPort) {
          issues.push({
            ...c.source,
            message: `local_port ${c.localPort} of ${c.name} is used by the API tunnel ${t.config.name}`,
            fix: `pick another local_port, or ${fix}`,
          });
        }
      }
    }
    if (issues.length > 0) throw new ConfigError(issues);

    const result: ReconcileResult = { added: [], removed: [], changed: [], unchanged: [] };
    for (const name of this.fromConfig) {
      const next = wanted.get(name);
      const current = this.tunnels.get(name);
      if (!next || !current) result.removed.push(name);
      else if (sameConfig(current.config, next)) result.unchanged.push(name);
      else result.changed.push(name);
    }
    for (const name of wanted.keys()) if (!this.fromConfig.has(name)) result.added.push(name);

    // Stop first, so a port handed from one tunnel to another is free when the new one binds.
    await Promise.all([...result.removed, ...result.changed].map((n) => this.remove(n).catch(() => {})));
    const starting = [...result.changed, ...result.added].map((n) => wanted.get(n)!);
    for (const c of starting) this.fromConfig.add(c.name);
    await Promise.all(
      starting.map((c) =>
        this.add(c).catch((e: Error) =>
          this.log.error({ tunnel: c.name, err: e.message }, 'tunnel not started'),
        ),
      ),
    );
    this.log.info(result, 'config reloaded');
    return result;
  }

  get(name: string): TunnelLike | undefined {
    return this.tunnels.get(name);
  }

  require(name: string): TunnelLike {
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
    this.retries.cancelAll();
    await Promise.all([...this.tunnels.values()].map((t) => t.stop().catch(() => {})));
    for (const g of this.gateways.values()) g.destroy();
    this.gateways.clear();
  }
}
