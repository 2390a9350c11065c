/**
 * Tunnels added, changed and removed at run time (the API's POST/PATCH/DELETE /tunnels), next to the
 * ones from the config file. Bodies are checked by the config file's own validator, so mistakes get the
 * same messages; API-made tunnels persist in the state file; config-file tunnels stay the config file's:
 * the API may not delete or change them (the answer names the file and line to edit instead).
 */
import type { Logger } from 'pino';
import { ConfigError, type TunnelConfig, validateTunnel } from './config.js';
import { TunnelError } from './errors.js';
import type { TunnelManager } from './manager.js';
import { readState, type StoredTunnels, writeState } from './state.js';
import type { TunnelStatus } from './tunnel.js';

export class RuntimeTunnels {
  private state: StoredTunnels = { version: 1, tunnels: {} };

  constructor(
    private readonly manager: TunnelManager,
    private readonly opts: { stateFile: string; apiPort?: number; logger: Logger },
  ) {}

  isApiMade(name: string): boolean {
    return Object.hasOwn(this.state.tunnels, name);
  }

  names(): string[] {
    return Object.keys(this.state.tunnels);
  }

  /** The API-made tunnels of the last run; one that no longer validates is logged and skipped. */
  async load(): Promise<void> {
    this.state = readState(this.opts.stateFile);
    for (const [name, raw] of Object.entries(this.state.tunnels)) {
      try {
        await this.manager.add(this.validate(name, raw));
      } catch (e) {
        const err = e as Error & { code?: string; fix?: string };
        this.opts.logger.error(
          { tunnel: name, code: err.code, err: err.message, fix: err.fix, file: this.opts.stateFile },
          'a tunnel added over the API could not be restored',
        );
      }
    }
  }

  private validate(name: string, raw: Record<string, unknown>): TunnelConfig {
    const config = validateTunnel(name, raw);
    if (this.opts.apiPort !== undefined && config.localPort === this.opts.apiPort) {
      throw new ConfigError([
        {
          file: '<api>',
          line: 0,
          key: `tunnels.${name}.local_port`,
          message: `local_port ${config.localPort} in tunnel ${name} is the daemon's API port`,
          fix: 'Pick another local_port.',
        },
      ]);
    }
    return config;
  }

  private configOrigin(name: string): TunnelError {
    const t = this.manager.require(name).config;
    return new TunnelError(
      'TUNNEL_FROM_CONFIG',
      `tunnel ${name} comes from the config file ${t.source.file}:${t.source.line}`,
      `edit or remove [tunnels.${name}] at ${t.source.file}:${t.source.line}, then run: ssmtun reload`,
    );
  }

  async add(name: string, raw: Record<string, unknown>): Promise<TunnelStatus> {
    if (this.manager.get(name)) {
      throw new TunnelError(
        'TUNNEL_EXISTS',
        `a tunnel named ${name} already exists`,
        `pick another name, or change it with PATCH /tunnels/${name}`,
      );
    }
    const status = await this.addListening(this.validate(name, raw));
    this.state.tunnels[name] = raw;
    this.persist();
    return status;
  }

  async patch(name: string, changes: Record<string, unknown>): Promise<TunnelStatus> {
    this.manager.require(name);
    if (!this.isApiMade(name)) throw this.configOrigin(name);
    const raw = { ...this.state.tunnels[name] };
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) delete raw[k];
      else raw[k] = v;
    }
    const config = this.validate(name, raw);
    await this.manager.remove(name);
    try {
      const status = await this.addListening(config);
      this.state.tunnels[name] = raw;
      this.persist();
      return status;
    } catch (e) {
      // The new settings could not listen: put the old tunnel back rather than lose it.
      await this.manager.add(this.validate(name, this.state.tunnels[name])).catch(() => {});
      throw e;
    }
  }

  /** A tunnel made over the API either listens or is not made: the caller gets the reason. */
  private async addListening(config: TunnelConfig): Promise<TunnelStatus> {
    const status = await this.manager.add(config);
    if (status.state === 'error' && status.lastError?.code === 'LISTEN_FAILED') {
      await this.manager.remove(config.name);
      throw new TunnelError('LISTEN_FAILED', status.lastError.message, status.lastError.fix);
    }
    return status;
  }

  async remove(name: string): Promise<void> {
    this.manager.require(name);
    if (!this.isApiMade(name)) throw this.configOrigin(name);
    await this.manager.remove(name);
    delete this.state.tunnels[name];
    this.persist();
  }

  private persist(): void {
    writeState(this.opts.stateFile, this.state);
  }
}
