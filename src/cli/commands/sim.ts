/**
 * `ssmtun sim`: runs the simulated AWS side (SSM API, message gateway, agents) on loopback until
 * SIGINT/SIGTERM, so a daemon, the reference plugin or a test harness in another process can use it.
 * stdout carries only the announcement (one JSON line with --json); logs go to stderr.
 */
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { type SimDatabaseConfig, SimDatabaseError, validateDatabaseConfig } from '../../sim/databases.js';
import { type SimulatorOptions, startSimulator } from '../../sim/index.js';
import { SimCaError } from '../../sim/tls-ca.js';

export interface SimCommandIo {
  stdout?: Writable;
  stderr?: Writable;
  /** Stops the simulator like a signal would (for tests). */
  signal?: AbortSignal;
}

const USAGE = `usage: ssmtun sim [--port N] [--json] [--no-pacing] [--require-signed-upgrade]
                 [--recycle-ms N] [--idle-timeout-ms N] [--seed N] [--rds NAME=HOST:PORT]...
                 [--rds-mysql NAME=HOST:PORT]...
                 [--rtt-ms N] [--jitter-ms N] [--bandwidth-mbps UP[:DOWN]]

Runs a simulated AWS Session Manager (SSM API + message gateway + agents) on 127.0.0.1.
  --port N                   listen port (default: a free one)
  --json                     print one JSON line {endpoint, region, accessKeyId, secretAccessKey, instances,
                             databases: [{name, host, port, caFile}]}
  --rds NAME=HOST:PORT       a simulated RDS PostgreSQL endpoint NAME (host NAME.cluster-c0ffee.REGION.rds.
                             amazonaws.com, port 5432, reachable by the simulated agents only) in front of the
                             PostgreSQL at HOST:PORT (loopback, trusting local connections); it requires TLS
                             (certificate from a simulated CA, path in caFile) and a valid IAM auth token.
                             Repeatable.
  --rds-mysql NAME=HOST:PORT the same for RDS MySQL (port 3306, JSON "engine": "mysql") in front of the
                             MariaDB/MySQL at HOST:PORT whose users have empty passwords; it requires TLS and
                             takes the IAM token through mysql_clear_password. Repeatable.
  --no-pacing                agents run flat out instead of at the real agent's pace
  --require-signed-upgrade   refuse WebSocket upgrades without a valid SigV4 signature
  --recycle-ms N             drop each client WebSocket N ms after it opened (real AWS: ~60 min)
  --idle-timeout-ms N        end sessions idle for N ms (default 20 min; 0 = never)
  --seed N                   seed for agents and fault injection (default 1)
  --rtt-ms N                 WAN model between clients and the simulated AWS: round trip in ms, on every
                             data-channel frame (rtt/2 each way), every SSM API call and every WebSocket
                             upgrade (default 0)
  --jitter-ms N              extra random one-way delay in [0, N) ms per frame; frames stay in order
  --bandwidth-mbps UP[:DOWN] link speed in Mbit/s, client to AWS and AWS to client (DOWN defaults to UP);
                             0 = unlimited. Change all three at run time with POST /_sim/wan
`;

class UsageError extends Error {}

function integer(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new UsageError(`--${name} needs a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

const RDS_ARG = /^([^=]+)=(.+):(\d{1,5})$/;
const RDS_USAGE =
  'e.g. --rds orders=127.0.0.1:5432 (NAME an RDS identifier, HOST:PORT a loopback PostgreSQL)';

/** NAME=HOST:PORT; the checks are the simulator's own (validateDatabaseConfig), worded for the command line. */
function parseRds(value: string, engine: 'postgres' | 'mysql' = 'postgres'): SimDatabaseConfig {
  const flag = engine === 'mysql' ? '--rds-mysql' : '--rds';
  const m = RDS_ARG.exec(value);
  if (!m) {
    const usage = engine === 'mysql' ? 'e.g. --rds-mysql shop=127.0.0.1:3306' : RDS_USAGE;
    throw new UsageError(`${flag} needs NAME=HOST:PORT, got ${JSON.stringify(value)}; ${usage}`);
  }
  const config: SimDatabaseConfig = {
    name: m[1],
    upstream: { host: m[2].replace(/^\[(.*)\]$/, '$1'), port: Number(m[3]) },
    ...(engine === 'mysql' && { engine }),
  };
  try {
    validateDatabaseConfig(config);
  } catch (err) {
    if (!(err instanceof SimDatabaseError)) throw err;
    throw new UsageError(`${flag} ${value}: ${err.message}; ${err.fix}`);
  }
  return config;
}

const MBPS = /^(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?$/;

/** --rtt-ms, --jitter-ms, --bandwidth-mbps UP[:DOWN]; undefined when none is given. */
function parseWan(
  rtt: string | undefined,
  jitter: string | undefined,
  bandwidth: string | undefined,
): SimulatorOptions['wan'] {
  if (rtt === undefined && jitter === undefined && bandwidth === undefined) return undefined;
  const wan: NonNullable<SimulatorOptions['wan']> = {
    rttMs: integer('rtt-ms', rtt, 0, 60_000) ?? 0,
    jitterMs: integer('jitter-ms', jitter, 0, 60_000) ?? 0,
  };
  if (bandwidth !== undefined) {
    const m = MBPS.exec(bandwidth);
    if (!m) {
      throw new UsageError(
        `--bandwidth-mbps needs UP or UP:DOWN in Mbit/s, got ${JSON.stringify(bandwidth)}; e.g. --bandwidth-mbps 50:200 (0 = unlimited)`,
      );
    }
    const up = Number(m[1]);
    const down = m[2] === undefined ? up : Number(m[2]);
    for (const [dir, v] of [
      ['UP', up],
      ['DOWN', down],
    ] as const) {
      if (v > 100_000)
        throw new UsageError(`--bandwidth-mbps: ${dir} must be at most 100000 Mbit/s, got ${v}`);
    }
    wan.bandwidthMbps = { up, down };
  }
  return wan;
}

function parse(argv: string[]): { options: SimulatorOptions; json: boolean; help: boolean } {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        json: { type: 'boolean' },
        'no-pacing': { type: 'boolean' },
        'require-signed-upgrade': { type: 'boolean' },
        'recycle-ms': { type: 'string' },
        'idle-timeout-ms': { type: 'string' },
        seed: { type: 'string' },
        rds: { type: 'string', multiple: true },
        'rds-mysql': { type: 'string', multiple: true },
        'rtt-ms': { type: 'string' },
        'jitter-ms': { type: 'string' },
        'bandwidth-mbps': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const str = (k: string) => values[k] as string | undefined;
  const options: SimulatorOptions = {
    port: integer('port', str('port'), 0, 65535) ?? 0,
    requireSignedUpgrade: values['require-signed-upgrade'] === true,
  };
  const recycle = integer('recycle-ms', str('recycle-ms'), 0, 2 ** 31 - 1);
  if (recycle !== undefined) options.recycleClientMs = recycle;
  const idle = integer('idle-timeout-ms', str('idle-timeout-ms'), 0, 2 ** 31 - 1);
  if (idle !== undefined) options.idleTimeoutMs = idle;
  const seed = integer('seed', str('seed'), 0, 2 ** 32 - 1);
  if (seed !== undefined) options.seed = seed;
  if (values['no-pacing'] === true) options.agentDefaults = { pacing: false };
  const wan = parseWan(str('rtt-ms'), str('jitter-ms'), str('bandwidth-mbps'));
  if (wan) options.wan = wan;
  const rds = [
    ...((values.rds as string[] | undefined) ?? []).map((v) => parseRds(v)),
    ...((values['rds-mysql'] as string[] | undefined) ?? []).map((v) => parseRds(v, 'mysql')),
  ];
  const names = new Set<string>();
  for (const db of rds) {
    if (names.has(db.name))
      throw new UsageError(`--rds ${db.name} is given twice: each endpoint needs its own NAME`);
    names.add(db.name);
  }
  if (rds.length > 0) options.databases = rds;
  return { options, json: values.json === true, help: values.help === true };
}

export async function simCommand(argv: string[], io: SimCommandIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`ssmtun sim: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    stdout.write(USAGE);
    return 0;
  }

  const logger = pino({ level: process.env.SSMTUN_LOG_LEVEL ?? 'info', base: { component: 'sim' } }, stderr);
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  try {
    sim = await startSimulator({ ...parsed.options, logger });
  } catch (err) {
    // A simulated RDS endpoint that cannot be set up (e.g. no openssl) is a clear error, not a stack trace.
    if (!(err instanceof SimDatabaseError) && !(err instanceof SimCaError)) throw err;
    stderr.write(`ssmtun sim: ${err.message}\nfix: ${err.fix}\n`);
    return 1;
  }
  const instances = sim.instances.map((i) => ({ id: i.id, tags: { ...i.tags } }));
  const databases = sim.databases.map((d) => ({
    name: d.name,
    host: d.host,
    port: d.port,
    caFile: d.caFile,
    ...(d.engine === 'mysql' && { engine: d.engine }),
  }));
  if (parsed.json) {
    stdout.write(
      `${JSON.stringify({
        endpoint: sim.endpoint,
        region: sim.region,
        accessKeyId: sim.accessKeyId,
        secretAccessKey: sim.secretAccessKey,
        instances,
        databases,
      })}\n`,
    );
  } else {
    const lines = [
      `ssmtun simulator listening on ${sim.endpoint} (region ${sim.region})`,
      '',
      'Point a daemon or the AWS CLI at it with:',
      `  AWS_ENDPOINT_URL_SSM=${sim.endpoint} AWS_ACCESS_KEY_ID=${sim.accessKeyId} AWS_SECRET_ACCESS_KEY=${sim.secretAccessKey} AWS_REGION=${sim.region}`,
      '',
      'Instances:',
      ...sim.instances.map(
        (i) =>
          `  ${i.id}  agent ${i.agentVersion}  ${Object.entries(i.tags)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`,
      ),
      ...(databases.length > 0
        ? [
            '',
            'Simulated RDS endpoints (reachable through the agents; IAM token + TLS verify-full):',
            ...databases.map((d) => `  ${d.name}  ${d.host}:${d.port}  sslrootcert=${d.caFile}`),
          ]
        : []),
      '',
      `Control API: ${sim.endpoint}/_sim/state (GET), /_sim/faults, /_sim/kill, /_sim/target-error, /_sim/instances, /_sim/terminate, /_sim/wan (POST)`,
      'Press Ctrl-C to stop.',
      '',
    ];
    stdout.write(lines.join('\n'));
  }

  await new Promise<void>((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      io.signal?.removeEventListener('abort', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
    if (io.signal?.aborted) done();
    else io.signal?.addEventListener('abort', done);
  });
  logger.info('simulator stopping');
  await sim.close();
  return 0;
}
