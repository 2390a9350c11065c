/** The bench's flags (`npm run bench -- --help`) and the two plans, --quick and full. */
import { parseArgs } from 'node:util';
import { PART_NAMES } from './parts/index.js';
import { INSTANCES, type Runtime, type SectionName } from './setup.js';
import { MB, MiB } from './util.js';

export const USAGE = `usage: npm run bench -- [--quick] [--json] [--chart FILE] [--client cmd:PATH | port:N[,...]]...
  --quick                 ~2 minutes: smaller transfers, fewer runs
  --json                  print JSON on stdout (the table goes to stderr)
  --chart FILE            also write an SVG bar chart
  --client cmd:PATH       measure a session-manager-plugin-compatible program too (extra column)
  --client port:N[,pg=M][,paced=K][,paced-pg=L][,pid=P][,name=LABEL]
                          measure ports something else forwards through this bench's simulator
                          (N/K to the bench server, M/L to PostgreSQL; pid for CPU/RSS figures)
  --client-wait S         how long to wait for port: clients to listen (default 120)
  --sections LIST         unpaced,paced (default both)
  --only LIST             ${PART_NAMES.join(',')} (default all)
  --runs N                runs per figure (default 3, --quick 2)
  --sessions LIST         session pool sizes the wan part compares, 1..16 (default 1,4); sessions = N is
                          written to the tunnel config only for N > 1
  --runtime build|tsx     run the sim and daemon from a compiled build (default) or through tsx
  --daemon-node-args STR  extra node flags for the daemon, e.g. "--cpu-prof --cpu-prof-dir=bench/out/prof"
  --sim-node-args STR     the same for the simulator
  --sim-port N            simulator port (default: a free one)
  --server-port N         bench server port (default: a free one)
`;

export interface Plan {
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
  /** wan part: bytes per download (1 and 8 connections), the upload, the parallel read and its runs. */
  wanDown: number;
  wanUpload: number;
  wanRead: number;
  wanReadRuns: number;
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
    wanDown: 1 * MiB,
    wanUpload: 8 * MiB,
    wanRead: 8 * MB,
    wanReadRuns: 1,
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
    wanDown: 2 * MiB,
    wanUpload: 32 * MiB,
    wanRead: 50 * MB,
    wanReadRuns: 2,
    watchdogMs: 25 * 60_000,
  },
};

export function parseOptions(argv: string[]) {
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
      sessions: { type: 'string' },
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
  const parts = new Set((values.only ?? PART_NAMES.join(',')).split(',').map((s) => s.trim()));
  for (const p of parts) if (!PART_NAMES.includes(p)) throw new Error(`--only: unknown part ${p}`);
  const sessions = [
    ...new Set(
      (values.sessions ?? '1,4').split(',').map((s) => {
        const n = Number(s.trim());
        if (!Number.isInteger(n) || n < 1 || n > 16)
          throw new Error(`--sessions: ${JSON.stringify(s)} is not a pool size 1..16 (e.g. --sessions 1,4)`);
        return n;
      }),
    ),
  ];
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
    sessions,
    runtime,
    daemonNodeArgs: (values['daemon-node-args'] ?? '').split(/\s+/).filter(Boolean),
    simNodeArgs: (values['sim-node-args'] ?? '').split(/\s+/).filter(Boolean),
    simPort: int('sim-port', values['sim-port'], 0, 65535) ?? 0,
    serverPort: int('server-port', values['server-port'], 0, 65535) ?? 0,
  };
}

export type Options = ReturnType<typeof parseOptions>;
