/**
 * `npm run bench [-- options]`: the simulator and the daemon each in their own process, a bench server
 * (echo / sink / source) and a throw-away PostgreSQL on loopback; every figure measured for a direct
 * TCP connection and through each client in the same runs (interleaved), with the simulator's agent
 * pacing off and on. See docs/bench.md.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type PgCluster, pgAvailable, startPostgres } from '../src/sim/postgres.js';
import { type Client, CmdClient, DirectClient, type Env, PortClient, SsmtunClient } from './clients.js';
import { pingPong } from './latency.js';
import { lazyOpen, warmFirstByte } from './open-time.js';
import { pgbenchInit, pgbenchTps } from './pgbench.js';
import { loadAverage, treeCpu, treeRss } from './procfs.js';
import {
  addedAtMost,
  atLeast,
  atMost,
  type Report,
  type Row,
  ratioAtLeast,
  record,
  renderSvg,
  renderTable,
  row,
  type Section,
  toJson,
} from './report.js';
import { manyConnections, withCpu } from './resources.js';
import { type BenchServer, startBenchServer } from './server.js';
import {
  addInstances,
  ensureBuild,
  INSTANCES,
  type Runtime,
  type SectionName,
  type SimProcess,
  startSim,
  waitListening,
} from './setup.js';
import { type Direction, slowSinkUpload, transfer } from './throughput.js';
import { log, MB, MiB } from './util.js';

const USAGE = `usage: npm run bench -- [--quick] [--json] [--chart FILE] [--client cmd:PATH | port:N[,...]]...
  --quick                 ~1 minute: smaller transfers, fewer runs
  --json                  print JSON on stdout (the table goes to stderr)
  --chart FILE            also write an SVG bar chart
  --client cmd:PATH       measure a session-manager-plugin-compatible program too (extra column)
  --client port:N[,pg=M][,paced=K][,paced-pg=L][,pid=P][,name=LABEL]
                          measure ports something else forwards through this bench's simulator
                          (N/K to the bench server, M/L to PostgreSQL; pid for CPU/RSS figures)
  --client-wait S         how long to wait for port: clients to listen (default 120)
  --sections LIST         unpaced,paced (default both)
  --only LIST             throughput,latency,pgbench,open,resources,overrun (default all)
  --runs N                runs per figure (default 3, --quick 2)
  --runtime build|tsx     run the sim and daemon from a compiled build (default) or through tsx
  --daemon-node-args STR  extra node flags for the daemon, e.g. "--cpu-prof --cpu-prof-dir=bench/out/prof"
  --sim-node-args STR     the same for the simulator
  --sim-port N            simulator port (default: a free one)
  --server-port N         bench server port (default: a free one)
`;

interface Plan {
  runs: number;
  /** Bytes per bulk transfer through a tunnel (direct moves directScale times as much). */
  bulk: number;
  /** Download bytes with the agent's pacing on (about 1 MB/s by design). */
  pacedDown: number;
  directScale: number;
  pingIters: number;
  warmRuns: number;
  lazyRuns: number;
  pgSeconds: number;
  manyConns: number;
  manyMs: number;
  manyRuns: number;
  overrunBytes: number;
  slowSinkRate: number;
  watchdogMs: number;
}

const PLANS: Record<'quick' | 'full', Plan> = {
  quick: {
    runs: 2,
    bulk: 8 * MiB,
    pacedDown: 256 * 1024,
    directScale: 8,
    pingIters: 300,
    warmRuns: 6,
    lazyRuns: 2,
    pgSeconds: 2,
    manyConns: 200,
    manyMs: 1500,
    manyRuns: 1,
    overrunBytes: 20 * MB,
    slowSinkRate: 10 * MB,
    watchdogMs: 6 * 60_000,
  },
  full: {
    runs: 3,
    bulk: 32 * MiB,
    pacedDown: 1 * MiB,
    directScale: 8,
    pingIters: 2000,
    warmRuns: 15,
    lazyRuns: 5,
    pgSeconds: 4,
    manyConns: 200,
    manyMs: 4000,
    manyRuns: 2,
    overrunBytes: 200 * MB,
    slowSinkRate: 10 * MB,
    watchdogMs: 25 * 60_000,
  },
};

const ALL_PARTS = ['throughput', 'latency', 'pgbench', 'open', 'resources', 'overrun'] as const;
type Part = (typeof ALL_PARTS)[number];

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      chart: { type: 'string' },
      client: { type: 'string', multiple: true },
      'client-wait': { type: 'string' },
      sections: { type: 'string' },
      only: { type: 'string' },
      runs: { type: 'string' },
      runtime: { type: 'string' },
      'daemon-node-args': { type: 'string' },
      'sim-node-args': { type: 'string' },
      'sim-port': { type: 'string' },
      'server-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const int = (name: string, v: string | undefined, min: number, max: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be ${min}..${max}`);
    return n;
  };
  const mode: 'quick' | 'full' = values.quick ? 'quick' : 'full';
  const plan = { ...PLANS[mode] };
  plan.runs = int('runs', values.runs, 1, 20) ?? plan.runs;
  const sections = (values.sections ?? 'unpaced,paced').split(',').map((s) => s.trim()) as SectionName[];
  for (const s of sections) if (!(s in INSTANCES)) throw new Error(`--sections: unknown section ${s}`);
  const parts = new Set((values.only ?? ALL_PARTS.join(',')).split(',').map((s) => s.trim()) as Part[]);
  for (const p of parts) if (!ALL_PARTS.includes(p)) throw new Error(`--only: unknown part ${p}`);
  const runtime = (values.runtime ?? 'build') as Runtime;
  if (runtime !== 'build' && runtime !== 'tsx') throw new Error('--runtime must be build or tsx');
  const clients = values.client ?? [];
  for (const c of clients) {
    if (!c.startsWith('cmd:') && !c.startsWith('port:'))
      throw new Error(`--client ${c}: use cmd:PATH or port:N`);
  }
  return {
    help: values.help ?? false,
    mode,
    plan,
    json: values.json ?? false,
    chart: values.chart,
    clients,
    clientWaitMs: (int('client-wait', values['client-wait'], 1, 3600) ?? 120) * 1000,
    sections,
    parts,
    runtime,
    daemonNodeArgs: (values['daemon-node-args'] ?? '').split(/\s+/).filter(Boolean),
    simNodeArgs: (values['sim-node-args'] ?? '').split(/\s+/).filter(Boolean),
    simPort: int('sim-port', values['sim-port'], 0, 65535) ?? 0,
    serverPort: int('server-port', values['server-port'], 0, 65535) ?? 0,
  };
}

type Options = ReturnType<typeof parseOptions>;

const SECTION_TITLES: Record<SectionName, string> = {
  unpaced: 'agent pacing OFF (simulator runs flat out; the targets apply here)',
  paced: 'agent pacing ON (1 ms sleep per 1024-byte Output, like the real agent)',
};

interface Ctx {
  opts: Options;
  plan: Plan;
  sim: SimProcess;
  server: BenchServer;
  pg?: PgCluster;
  clients: Client[];
}

/** Runs one measurement for every client that can take it, `runs` times, interleaved by run. */
async function eachRun(
  ctx: Ctx,
  section: SectionName,
  runs: number,
  what: string,
  rows: Row[],
  fn: (client: Client, run: number) => Promise<Array<number | undefined> | undefined>,
  accept: (c: Client) => boolean = () => true,
): Promise<void> {
  const clients = ctx.clients.filter((c) => c.ports(section) && accept(c));
  const failures = new Map<string, number>();
  for (let run = 0; run < runs; run++) {
    for (const c of clients) {
      if ((failures.get(c.name) ?? 0) >= 2) continue;
      try {
        const values = await fn(c, run);
        if (!values) continue;
        values.forEach((v, i) => {
          if (rows[i]) record(rows[i], c.name, v);
        });
        const shown = values.map((v, i) => (v === undefined ? '' : `${v.toFixed(3)} ${rows[i]?.unit ?? ''}`));
        log(`${section} ${what} run ${run + 1}/${runs} ${c.name}: ${shown.filter(Boolean).join(', ')}`);
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        failures.set(c.name, (failures.get(c.name) ?? 0) + 1);
        log(`${section} ${what} run ${run + 1}/${runs} ${c.name}: FAILED ${err.message}`);
        record(rows[0], c.name, err);
      }
    }
  }
}

/** The simulated agents' receive counters, summed over every session. */
async function agentCounters(sim: SimProcess): Promise<{ duplicates: number; reordered: number }> {
  const st = (await sim.control('/_sim/state')) as {
    sessions: Array<{ agent: { dataChannel?: { duplicates?: number; reordered?: number } } | null }>;
  };
  let duplicates = 0;
  let reordered = 0;
  for (const s of st.sessions) {
    duplicates += s.agent?.dataChannel?.duplicates ?? 0;
    reordered += s.agent?.dataChannel?.reordered ?? 0;
  }
  return { duplicates, reordered };
}

async function measureSection(ctx: Ctx, section: SectionName, idleRow?: Row): Promise<Section> {
  const { plan, opts } = ctx;
  const paced = section === 'paced';
  const rows: Row[] = [];
  const add = (r: Row) => {
    rows.push(r);
    return r;
  };
  const cpuUp = row(
    'cpu-up',
    'client CPU per GB uploaded, 1 conn',
    's/GB',
    'lower',
    'none',
    paced ? undefined : atMost(15),
  );
  const cpuDown = row(
    'cpu-down',
    'client CPU per GB downloaded, 1 conn',
    's/GB',
    'lower',
    'none',
    paced ? undefined : atMost(15),
  );
  // Where the cycles go on this machine: a process at ~100% of a core is the bottleneck.
  const busy = (key: string, who: string, dir: string) =>
    row(key, `${who} CPU busy during the 1-conn ${dir} (info)`, '% core', 'lower', 'none');
  const busyRows = [
    busy('busy-up', 'client', 'upload'),
    busy('busy-down', 'client', 'download'),
    busy('sim-busy-up', 'simulator', 'upload'),
    busy('sim-busy-down', 'simulator', 'download'),
  ];

  // Warm every session up (ssmtun opens lazily), so the first figure doesn't carry the open.
  for (const c of ctx.clients) {
    const p = c.ports(section);
    if (!p) continue;
    await warmFirstByte(p.server).catch((e: Error) => log(`${section} warm-up ${c.name}: ${e.message}`));
    if (p.pg && ctx.pg) {
      await ctx.pg
        .psql('select 1', { port: p.pg, host: '127.0.0.1' })
        .catch((e: Error) => log(`${section} pg warm-up ${c.name}: ${e.message}`));
    }
  }

  if (opts.parts.has('throughput')) {
    const cases: Array<[Direction, number]> = [
      ['upload', 1],
      ['download', 1],
      ['both', 1],
      ['upload', 8],
      ['download', 8],
      ['both', 8],
    ];
    for (const [dir, conns] of cases) {
      const oneWay = dir !== 'both';
      const target = paced
        ? dir === 'upload'
          ? { text: '> 1 (sleep cap)', ok: (v: number) => v > 1 }
          : undefined
        : oneWay
          ? atLeast(50)
          : undefined;
      const label = `${dir === 'both' ? 'upload+download at once' : dir}, ${conns} conn${conns > 1 ? 's on one session' : ''}`;
      const r = add(row(`${dir}-${conns}`, label, 'MB/s', 'higher', 'ratio', target));
      const bytes = paced && dir !== 'upload' ? plan.pacedDown : plan.bulk;
      const rows = [r, cpuUp, cpuDown, ...busyRows];
      await eachRun(ctx, section, plan.runs, `${dir} x${conns}`, rows, async (c) => {
        const size = c.kind === 'direct' ? bytes * plan.directScale : bytes;
        const timeout = 20_000 + (size / ((c.kind === 'direct' ? 50 : 0.5) * MB)) * 1000;
        const pids = c.pids(section);
        const simBefore = treeCpu([ctx.sim.pid]);
        const { result, cpuSeconds } = await withCpu(pids, () =>
          transfer(ctx.server, c.ports(section)!.server, dir, size, conns, timeout),
        );
        const simSeconds = treeCpu([ctx.sim.pid]) - simBefore;
        const perGb = (s: number) => (Number.isFinite(s) ? s / (result.bytes / 1e9) : undefined);
        const pct = (s: number) => (Number.isFinite(s) ? (s / (result.ms / 1000)) * 100 : undefined);
        const up = conns === 1 && dir === 'upload';
        const down = conns === 1 && dir === 'download';
        const tunnelled = c.kind !== 'direct';
        return [
          result.mbps,
          up ? perGb(cpuSeconds) : undefined,
          down ? perGb(cpuSeconds) : undefined,
          up ? pct(cpuSeconds) : undefined,
          down ? pct(cpuSeconds) : undefined,
          up && tunnelled ? pct(simSeconds) : undefined,
          down && tunnelled ? pct(simSeconds) : undefined,
        ];
      });
    }
  }

  if (opts.parts.has('latency')) {
    const med = add(
      row(
        'ping-median',
        '64-byte ping-pong round trip, median',
        'ms',
        'lower',
        'added',
        paced ? undefined : addedAtMost(0.3, ' ms'),
      ),
    );
    const p99 = add(row('ping-p99', '64-byte ping-pong round trip, p99', 'ms', 'lower', 'added'));
    await eachRun(ctx, section, plan.runs, 'ping-pong', [med, p99], async (c) => {
      const r = await pingPong(c.ports(section)!.server, plan.pingIters, 120_000);
      return [r.medianMs, r.p99Ms];
    });
  }

  if (opts.parts.has('pgbench') && ctx.pg) {
    for (const clients of [1, 8]) {
      const target = !paced && clients === 8 ? ratioAtLeast(50) : undefined;
      const r = add(
        row(
          `pgbench-${clients}`,
          `pgbench -S, ${clients} client${clients > 1 ? 's' : ''}`,
          'tps',
          'higher',
          'ratio',
          target,
        ),
      );
      const info =
        clients === 8
          ? [
              row('pg-busy', 'client CPU busy during pgbench -c 8 (info)', '% core', 'lower', 'none'),
              row('pg-sim-busy', 'simulator CPU busy during pgbench -c 8 (info)', '% core', 'lower', 'none'),
            ]
          : [];
      await eachRun(
        ctx,
        section,
        plan.runs,
        `pgbench -c ${clients}`,
        [r, ...info],
        async (c) => {
          const t0 = performance.now();
          const simBefore = treeCpu([ctx.sim.pid]);
          const { result, cpuSeconds } = await withCpu(c.pids(section), () =>
            pgbenchTps(ctx.pg!, c.ports(section)!.pg!, clients, plan.pgSeconds),
          );
          const secs = (performance.now() - t0) / 1000;
          const simSeconds = treeCpu([ctx.sim.pid]) - simBefore;
          const tunnelled = c.kind !== 'direct';
          return [
            result,
            Number.isFinite(cpuSeconds) ? (cpuSeconds / secs) * 100 : undefined,
            tunnelled ? (simSeconds / secs) * 100 : undefined,
          ];
        },
        (c) => c.ports(section)?.pg !== undefined,
      );
      rows.push(...info);
    }
  }

  if (opts.parts.has('open')) {
    const lazy = add(
      row(
        'first-byte-lazy',
        'lazy open: first connection to first byte',
        'ms',
        'lower',
        'ratio',
        paced ? undefined : atMost(150),
      ),
    );
    await eachRun(ctx, section, plan.lazyRuns, 'lazy open', [lazy], async (c) => {
      const v = await lazyOpen(c, section);
      return v === undefined ? undefined : [v];
    });
    const warm = add(
      row('first-byte-warm', 'warm session: new connection to first byte', 'ms', 'lower', 'ratio'),
    );
    await eachRun(ctx, section, plan.warmRuns, 'warm first byte', [warm], async (c) => [
      await warmFirstByte(c.ports(section)!.server),
    ]);
  }

  if (opts.parts.has('resources')) {
    if (idleRow) rows.push(idleRow);
    const rss = add(
      row(
        'rss-200',
        `client RSS, peak with ${plan.manyConns} active connections`,
        'MB',
        'lower',
        'none',
        paced ? undefined : atMost(200),
      ),
    );
    const rts = add(
      row(
        'rt-200',
        `${plan.manyConns} connections: 64-byte round trips per second, all together`,
        '1/s',
        'higher',
        'ratio',
      ),
    );
    await eachRun(ctx, section, plan.manyRuns, `${plan.manyConns} connections`, [rss, rts], async (c) => {
      const r = await manyConnections(c.ports(section)!.server, plan.manyConns, plan.manyMs, c.pids(section));
      return [Number.isFinite(r.peakRss) ? r.peakRss / MB : undefined, r.roundTripsPerSec];
    });
  }
  if (opts.parts.has('throughput')) rows.push(cpuUp, cpuDown, ...busyRows);

  if (paced && opts.parts.has('overrun')) {
    const mb = Math.round(plan.overrunBytes / MB);
    const rate = plan.slowSinkRate / MB;
    const info = (key: string, label: string, unit: string) => row(key, `  ${label}`, unit, 'lower', 'none');
    const overrun = [
      row('overrun', `${mb} MB upload into a ${rate} MB/s sink`, 'MB/s', 'higher', 'none', {
        text: 'completes',
        ok: () => true,
      }),
      info(
        'overrun-reordered',
        'meanwhile: messages the agent held out of order (refused an earlier one)',
        'count',
      ),
      info('overrun-dups', 'meanwhile: messages the agent received twice', 'count'),
      info('overrun-resent', 'meanwhile: messages the client retransmitted', 'count'),
      info('overrun-sim-rss', 'meanwhile: simulator RSS, peak', 'MB'),
    ];
    rows.push(...overrun);
    await eachRun(
      ctx,
      section,
      1,
      'slow-sink upload',
      overrun,
      async (c) => {
        const before = await agentCounters(ctx.sim);
        const resentBefore = await c.retransmissions?.(section);
        let simPeak = treeRss([ctx.sim.pid]);
        const sampler = setInterval(() => {
          simPeak = Math.max(simPeak, treeRss([ctx.sim.pid]));
        }, 100);
        const timeout = 60_000 + (plan.overrunBytes / plan.slowSinkRate) * 3000;
        let r: Awaited<ReturnType<typeof slowSinkUpload>>;
        try {
          r = await slowSinkUpload(
            ctx.server,
            c.ports(section)!.server,
            plan.overrunBytes,
            plan.slowSinkRate,
            timeout,
          );
        } finally {
          clearInterval(sampler);
        }
        const after = await agentCounters(ctx.sim);
        const resentAfter = await c.retransmissions?.(section);
        return [
          r.mbps,
          after.reordered - before.reordered,
          after.duplicates - before.duplicates,
          resentBefore === undefined || resentAfter === undefined ? undefined : resentAfter - resentBefore,
          simPeak / MB,
        ];
      },
      (c) => c.kind !== 'direct',
    );
  }
  return { name: section, title: SECTION_TITLES[section], rows };
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { plan } = opts;
  const t0 = performance.now();
  const loadStart = loadAverage();
  const watchdog = setTimeout(() => {
    log(`watchdog: the bench ran longer than ${plan.watchdogMs / 60_000} min; stopping everything`);
    process.exit(3);
  }, plan.watchdogMs);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping`);
      process.exit(130);
    });
  }

  if (opts.runtime === 'build') await ensureBuild();
  const notes: string[] = [];
  const usePg = opts.parts.has('pgbench') && pgAvailable();
  if (opts.parts.has('pgbench') && !usePg)
    notes.push('PostgreSQL server binaries not found: pgbench rows skipped');
  const [sim, server, pg] = await Promise.all([
    startSim(opts.runtime, opts.simPort, opts.simNodeArgs),
    startBenchServer(opts.serverPort),
    usePg ? startPostgres({ maxConnections: 60 }) : Promise.resolve(undefined),
  ]);
  const clients: Client[] = [];
  const ctx: Ctx = { opts, plan, sim, server, pg, clients };
  try {
    await addInstances(sim);
    if (pg) await pgbenchInit(pg);
    log(
      `simulator ${sim.endpoint} (instances: unpaced ${INSTANCES.unpaced}, paced ${INSTANCES.paced}), ` +
        `bench server 127.0.0.1:${server.port}${pg ? `, postgres 127.0.0.1:${pg.port}` : ''}`,
    );
    const env: Env = {
      sim,
      serverPort: server.port,
      pgPort: pg?.port,
      runtime: opts.runtime,
      daemonNodeArgs: opts.daemonNodeArgs,
      sections: opts.sections,
    };
    clients.push(new DirectClient(env));
    const ssmtun = new SsmtunClient(env);
    await ssmtun.start();
    clients.push(ssmtun);
    for (const spec of opts.clients) {
      if (spec.startsWith('cmd:')) {
        const c = new CmdClient(spec.slice(4), env);
        await c.start();
        clients.push(c);
      } else {
        const c = new PortClient(spec.slice(5));
        log(
          `waiting up to ${opts.clientWaitMs / 1000} s for ${c.name} to listen on ${c.allPorts().join(', ')}`,
        );
        for (const p of c.allPorts()) await waitListening(p, opts.clientWaitMs);
        clients.push(c);
      }
    }

    let idleRow: Row | undefined;
    if (opts.parts.has('resources')) {
      idleRow = row(
        'rss-idle',
        'client RSS, idle with 10 tunnels never connected',
        'MB',
        'lower',
        'none',
        atMost(80),
      );
      for (const c of clients) {
        if (!c.idleRss10) continue;
        try {
          const v = (await c.idleRss10()) / MB;
          record(idleRow, c.name, v);
          log(`idle RSS with 10 tunnels ${c.name}: ${v.toFixed(1)} MB`);
        } catch (e) {
          record(idleRow, c.name, e as Error);
          log(`idle RSS ${c.name}: FAILED ${(e as Error).message}`);
        }
      }
    }

    const sections: Section[] = [];
    for (const s of opts.sections) {
      sections.push(await measureSection(ctx, s, s === opts.sections[0] ? idleRow : undefined));
    }
    if (plan.directScale !== 1 && opts.parts.has('throughput')) {
      notes.push(
        `direct bulk transfers move ${plan.directScale}x the bytes of tunnelled ones so that they last long enough to time`,
      );
    }
    if (opts.sections.includes('paced') && opts.parts.has('throughput')) {
      notes.push(
        `with pacing on, downloads are ${Math.round(plan.pacedDown / 1024)} KiB: the agent sends at most one 1024-byte message per ms (~1 MB/s) by design`,
      );
    }
    if (clients.some((c) => c.kind === 'cmd')) {
      notes.push('cmd: lazy open = StartSession + starting the program + its port listening + first byte');
    }
    const report: Report = {
      mode: opts.mode,
      runs: plan.runs,
      runtime: opts.runtime === 'build' ? 'a compiled build of src/' : 'tsx',
      machine: {
        cores: os.cpus().length,
        loadStart,
        loadEnd: loadAverage(),
        node: process.version,
        platform: `${process.platform} ${process.arch}`,
      },
      clients: clients.map((c) => c.name),
      sections,
      seconds: (performance.now() - t0) / 1000,
      notes,
    };
    const table = renderTable(report);
    if (opts.json) {
      process.stderr.write(table);
      process.stdout.write(`${JSON.stringify(toJson(report), null, 2)}\n`);
    } else {
      process.stdout.write(table);
    }
    if (opts.chart) {
      writeFileSync(path.resolve(opts.chart), renderSvg(report));
      log(`chart written to ${opts.chart}`);
    }
    return 0;
  } finally {
    for (const c of clients.reverse())
      await c.stop().catch((e: Error) => log(`stopping ${c.name}: ${e.message}`));
    await Promise.all([sim.stop(), server.close(), pg?.stop()]);
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
