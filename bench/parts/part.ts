/**
 * What a bench part is (throughput, latency, ...: the names --only takes) and what it gets: the
 * running rig (simulator, bench server, PostgreSQL, clients) and a helper that runs one measurement
 * for every client, interleaved by run. A part's rows land in the table in the order of PARTS
 * (parts/index.ts); see BenchPart for where its summary rows go.
 */
import type { PgCluster } from '../../src/sim/postgres.js';
import type { Client } from '../clients.js';
import type { Options, Plan } from '../options.js';
import { type Row, record } from '../report.js';
import type { BenchServer } from '../server.js';
import type { SectionName, SimProcess } from '../setup.js';
import { log } from '../util.js';

export interface Ctx {
  opts: Options;
  plan: Plan;
  sim: SimProcess;
  server: BenchServer;
  pg?: PgCluster;
  clients: Client[];
}

export interface PartRows {
  /** The part's own figures. */
  rows: Row[];
  /** Shown after every part's own rows, e.g. the CPU each client spent during this part's runs. */
  summary?: Row[];
}

export interface BenchPart {
  /** The name `--only` takes. */
  readonly name: string;
  /** A stress run: its rows come after every other part's rows and summaries. */
  readonly stress?: boolean;
  /** The part calls Client.beforePart itself (e.g. after changing the network), not the runner. */
  readonly preparesClients?: boolean;
  /** Once, before the first section; the rows it returns open this part's rows in the first section. */
  before?(ctx: Ctx): Promise<Row[]>;
  /** The part's measurements in one section (agent pacing off or on). */
  measure(ctx: Ctx, section: SectionName): Promise<PartRows>;
  /** Notes for the report's footer, after every section has run. */
  notes?(ctx: Ctx): string[];
}

/** Runs one measurement for every client that can take it, `runs` times, interleaved by run. */
export async function eachRun(
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
