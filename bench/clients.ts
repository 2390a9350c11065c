/**
 * What is measured, as columns: a direct TCP connection (the baseline), the ssmtun daemon, and any
 * extra client given with --client:
 *   cmd:PATH  a session-manager-plugin-compatible program: the bench calls StartSession on the
 *             simulator itself and runs PATH with the six arguments the AWS CLI passes, then waits
 *             for the local port; ended with SIGINT.
 *   port:N[,pg=M][,paced=K][,paced-pg=L][,pid=P][,name=LABEL]
 *             ports something else already forwards through the same simulator: N (and K for the
 *             paced section) to the bench server, M/L to PostgreSQL; pid for resource figures.
 */
import path from 'node:path';
import { SSMClient, StartSessionCommand } from '@aws-sdk/client-ssm';
import { timeToFirstByte } from './net.js';
import { treeRss } from './procfs.js';
import {
  awsEnv,
  closeTunnel,
  type DaemonProcess,
  freePort,
  INSTANCES,
  type Proc,
  type Runtime,
  type SectionName,
  type SimProcess,
  spawnTracked,
  startDaemon,
  type TunnelDef,
  tempDir,
  waitListening,
} from './setup.js';
import { log, MB, median, sleep } from './util.js';

export interface Ports {
  /** Forwards to the bench server (echo/sink/source modes). */
  server: number;
  /** Forwards to PostgreSQL; undefined when not available for this client. */
  pg?: number;
  /** PostgreSQL behind a simulated RDS, through an `auth = "iam"` tunnel (ssmtun only). */
  pgIam?: number;
}

export interface Client {
  readonly name: string;
  readonly kind: 'direct' | 'ssmtun' | 'cmd' | 'port';
  /** Undefined: this client is not measured in that section. */
  ports(section: SectionName): Ports | undefined;
  /** Processes whose CPU and RSS are this client's cost in that section ([] = not measurable). */
  pids(section: SectionName): number[];
  /** One lazy-open measurement: from nothing open to the first echoed byte (ms). */
  lazyFirstByte?(section: SectionName): Promise<number>;
  /**
   * RSS (bytes) of this client holding 10 tunnels that are never connected; and, where the client
   * can tell, once one of them has opened and closed a session (the AWS SDK is loaded by then).
   */
  idleRss10?(): Promise<{ fresh: number; afterUse?: number }>;
  /** Data-channel retransmissions so far on the section's bench-server tunnel, where the client tells. */
  retransmissions?(section: SectionName): Promise<number>;
  /**
   * Called just before each part in each section: a client that holds one session per program
   * (cmd:) starts fresh ones here, so no session sits idle long enough to be ended between parts.
   */
  beforePart?(section: SectionName): Promise<void>;
  stop(): Promise<void>;
}

export interface Env {
  sim: SimProcess;
  serverPort: number;
  pgPort?: number;
  /** The simulated RDS endpoint in front of the bench's PostgreSQL, for the IAM login row. */
  iamDb?: { host: string; port: number; caFile: string; user: string };
  runtime: Runtime;
  daemonNodeArgs: string[];
  sections: SectionName[];
}

/**
 * RSS once the processes sit idle: V8 returns start-up garbage to the OS some 8-20 s after the last
 * activity (its memory reducer; 76 MB at 3 s became 65 MB at 9 s in one run, later in others), so a
 * figure taken at once measures start-up, not idleness. Sampled each second from 3 s on, until 25 s
 * have passed and three samples in a row agree within 1 MB (at most 45 s); the median of those
 * three. The start-up figure is logged too.
 */
async function settledRss(pids: number[], since = 'start'): Promise<number> {
  const started = Date.now();
  await sleep(3000);
  log(`RSS 3 s after ${since}: ${(treeRss(pids) / MB).toFixed(1)} MB`);
  const last: number[] = [];
  for (;;) {
    last.push(treeRss(pids));
    if (last.length > 3) last.shift();
    const elapsed = Date.now() - started;
    const agree = last.length === 3 && Math.max(...last) - Math.min(...last) <= MB;
    if ((elapsed >= 25_000 && agree) || elapsed >= 45_000) return median(last);
    await sleep(1000);
  }
}

export class DirectClient implements Client {
  readonly name = 'direct';
  readonly kind = 'direct';
  constructor(private readonly env: Env) {}
  ports(): Ports {
    return { server: this.env.serverPort, pg: this.env.pgPort };
  }
  pids(): number[] {
    return [];
  }
  lazyFirstByte(): Promise<number> {
    return timeToFirstByte(this.env.serverPort);
  }
  async stop(): Promise<void> {}
}

export class SsmtunClient implements Client {
  readonly name = 'ssmtun';
  readonly kind = 'ssmtun';
  private daemon!: DaemonProcess;
  private readonly tunnels = new Map<string, TunnelDef>();

  constructor(private readonly env: Env) {}

  async start(): Promise<void> {
    const defs: TunnelDef[] = [];
    for (const section of this.env.sections) {
      const target = INSTANCES[section];
      defs.push({
        name: `srv-${section}`,
        target,
        remotePort: this.env.serverPort,
        localPort: await freePort(),
      });
      defs.push({
        name: `lazy-${section}`,
        target,
        remotePort: this.env.serverPort,
        localPort: await freePort(),
      });
      if (this.env.pgPort) {
        defs.push({
          name: `pg-${section}`,
          target,
          remotePort: this.env.pgPort,
          localPort: await freePort(),
        });
      }
      const db = this.env.iamDb;
      if (db) {
        defs.push({
          name: `pgiam-${section}`,
          target,
          remoteHost: db.host,
          remotePort: db.port,
          localPort: await freePort(),
          extra: ['auth = "iam"', `db_user = "${db.user}"`, `ca_bundle = "${db.caFile}"`],
        });
      }
    }
    for (const d of defs) this.tunnels.set(d.name, d);
    this.daemon = await startDaemon(this.env.sim, defs, {
      runtime: this.env.runtime,
      nodeArgs: this.env.daemonNodeArgs,
    });
  }

  get pid(): number {
    return this.daemon.pid;
  }

  ports(section: SectionName): Ports {
    return {
      server: this.tunnels.get(`srv-${section}`)!.localPort,
      pg: this.tunnels.get(`pg-${section}`)?.localPort,
      pgIam: this.tunnels.get(`pgiam-${section}`)?.localPort,
    };
  }

  pids(): number[] {
    return [this.daemon.pid];
  }

  async lazyFirstByte(section: SectionName): Promise<number> {
    const name = `lazy-${section}`;
    await closeTunnel(this.daemon, name);
    const ms = await timeToFirstByte(this.tunnels.get(name)!.localPort);
    await closeTunnel(this.daemon, name);
    return ms;
  }

  async retransmissions(section: SectionName): Promise<number> {
    const st = await this.daemon.api<{ retransmissions: number }>(`/tunnels/srv-${section}`);
    return st.retransmissions;
  }

  async idleRss10(): Promise<{ fresh: number; afterUse: number }> {
    const defs: TunnelDef[] = [];
    for (let i = 0; i < 10; i++) {
      defs.push({
        name: `idle-${i}`,
        target: INSTANCES.unpaced,
        remotePort: this.env.serverPort,
        localPort: await freePort(),
      });
    }
    const d = await startDaemon(this.env.sim, defs, {
      runtime: this.env.runtime,
      nodeArgs: this.env.daemonNodeArgs.filter((a) => !a.startsWith('--cpu-prof')),
    });
    try {
      const fresh = await settledRss([d.pid]);
      await timeToFirstByte(defs[0].localPort);
      await closeTunnel(d, defs[0].name);
      return { fresh, afterUse: await settledRss([d.pid], 'the session closed') };
    } finally {
      await d.stop();
    }
  }

  async stop(): Promise<void> {
    const code = await this.daemon?.stop('SIGTERM', 10_000);
    if (code !== 0 && code !== undefined) log(`daemon exited ${code}: ${this.daemon.tail().slice(-500)}`);
  }
}

interface Plugin {
  proc: Proc;
  port: number;
  sessionId: string;
}

export class CmdClient implements Client {
  readonly kind = 'cmd';
  readonly name: string;
  private readonly file: string;
  private readonly ssm: SSMClient;
  private readonly dir = tempDir('ssmtun-bench-cmd-');
  private readonly plugins = new Map<string, Plugin>();
  private readonly extra = new Set<Plugin>();

  constructor(
    spec: string,
    private readonly env: Env,
  ) {
    this.file = path.resolve(spec);
    this.name = `cmd:${path.basename(spec)}`;
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.ssm = new SSMClient({
      region: env.sim.region,
      endpoint: env.sim.endpoint,
      credentials: { accessKeyId: env.sim.accessKeyId, secretAccessKey: env.sim.secretAccessKey },
    });
  }

  /** StartSession as the AWS CLI does, then PATH with the CLI's six arguments; resolves once listening. */
  private async spawnPlugin(target: string, destPort: number): Promise<Plugin> {
    const localPort = await freePort();
    const request = {
      Target: target,
      DocumentName: 'AWS-StartPortForwardingSessionToRemoteHost',
      Parameters: {
        host: ['127.0.0.1'],
        portNumber: [String(destPort)],
        localPortNumber: [String(localPort)],
      },
    };
    const out = await this.ssm.send(new StartSessionCommand(request));
    const response = {
      SessionId: out.SessionId,
      TokenValue: out.TokenValue,
      StreamUrl: out.StreamUrl,
      ResponseMetadata: {
        RequestId: out.$metadata.requestId ?? '',
        HTTPStatusCode: out.$metadata.httpStatusCode,
      },
    };
    const args = [
      JSON.stringify(response),
      this.env.sim.region,
      'StartSession',
      '',
      JSON.stringify(request),
      this.env.sim.endpoint,
    ];
    const proc = spawnTracked(this.file, args, { ...process.env, ...awsEnv(this.env.sim, this.dir) });
    proc.proc.stdout!.on('data', () => {});
    const plugin = { proc, port: localPort, sessionId: out.SessionId ?? '' };
    try {
      await waitListening(localPort, 30_000, proc);
    } catch (e) {
      await proc.stop('SIGKILL');
      throw e;
    }
    return plugin;
  }

  /**
   * Nothing runs until the first part: the simulated agent ends a session of an old-version client
   * that stays idle for over 60 s (its keepalive stays on, SPEC), which programs started at the
   * beginning of the bench would be by the time a later part reached them.
   */
  async start(): Promise<void> {}

  /** Fresh programs for this section's bench-server and PostgreSQL ports, warmed up with one byte. */
  async beforePart(section: SectionName): Promise<void> {
    await Promise.all([...this.plugins.values()].map((p) => p.proc.stop('SIGINT')));
    this.plugins.clear();
    const target = INSTANCES[section];
    const srv = await this.spawnPlugin(target, this.env.serverPort);
    this.plugins.set(`srv-${section}`, srv);
    if (this.env.pgPort) this.plugins.set(`pg-${section}`, await this.spawnPlugin(target, this.env.pgPort));
    await timeToFirstByte(srv.port).catch((e: Error) => log(`${this.name} warm-up: ${e.message}`));
  }

  ports(section: SectionName): Ports | undefined {
    const srv = this.plugins.get(`srv-${section}`);
    if (!srv) return undefined;
    return { server: srv.port, pg: this.plugins.get(`pg-${section}`)?.port };
  }

  /** Both of the section's programs (bench server and PostgreSQL); the one not in use idles. */
  pids(section: SectionName): number[] {
    return [...this.plugins.entries()].filter(([k]) => k.endsWith(`-${section}`)).map(([, p]) => p.proc.pid);
  }

  /** StartSession + start PATH + wait for its port + first byte: what opening a tunnel costs with it. */
  async lazyFirstByte(section: SectionName): Promise<number> {
    const t0 = performance.now();
    const p = await this.spawnPlugin(INSTANCES[section], this.env.serverPort);
    this.extra.add(p);
    try {
      await timeToFirstByte(p.port);
      return performance.now() - t0;
    } finally {
      await p.proc.stop('SIGINT');
      this.extra.delete(p);
    }
  }

  async idleRss10(): Promise<{ fresh: number }> {
    const ps: Plugin[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        const p = await this.spawnPlugin(INSTANCES.unpaced, this.env.serverPort);
        ps.push(p);
        this.extra.add(p);
      }
      return { fresh: await settledRss(ps.map((p) => p.proc.pid)) };
    } finally {
      await Promise.all(ps.map((p) => p.proc.stop('SIGINT')));
      for (const p of ps) this.extra.delete(p);
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.plugins.values(), ...this.extra].map((p) => p.proc.stop('SIGINT')));
    this.ssm.destroy();
  }
}

export class PortClient implements Client {
  readonly kind = 'port';
  readonly name: string;
  private readonly map: Partial<Record<SectionName, Ports>> = {};
  private readonly pid?: number;

  constructor(spec: string) {
    const [first, ...opts] = spec.split(',');
    const kv = new Map(
      opts.map((o) => {
        const i = o.indexOf('=');
        return [o.slice(0, i), o.slice(i + 1)] as const;
      }),
    );
    const num = (s: string | undefined, what: string) => {
      if (s === undefined) return undefined;
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > 65535)
        throw new Error(`--client port:${spec}: bad ${what} ${s}`);
      return n;
    };
    for (const k of kv.keys()) {
      if (!['pg', 'paced', 'paced-pg', 'pid', 'name'].includes(k))
        throw new Error(`--client port: unknown option ${k}`);
    }
    this.map.unpaced = { server: num(first, 'port')!, pg: num(kv.get('pg'), 'pg port') };
    const paced = num(kv.get('paced'), 'paced port');
    if (paced) this.map.paced = { server: paced, pg: num(kv.get('paced-pg'), 'paced-pg port') };
    const pid = kv.get('pid');
    this.pid = pid === undefined ? undefined : Number(pid);
    this.name = kv.get('name') ?? `port:${first}`;
  }

  allPorts(): number[] {
    return Object.values(this.map).flatMap((p) => [p.server, ...(p.pg ? [p.pg] : [])]);
  }

  ports(section: SectionName): Ports | undefined {
    return this.map[section];
  }

  pids(): number[] {
    return this.pid ? [this.pid] : [];
  }

  async stop(): Promise<void> {}
}
