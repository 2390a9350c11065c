/**
 * `npm run bench [-- options]`: the simulator and the daemon each in their own process, a bench server
 * (echo / sink / source) and a throw-away PostgreSQL on loopback; every figure measured for a direct
 * TCP connection and through each client in the same runs (interleaved), with the simulator's agent
 * pacing off and on. See docs/bench.md. This file parses the flags and runs the parts (parts/) in
 * order in each section; rig.ts starts what they measure, report.ts renders the results.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Options, parseOptions, USAGE } from './options.js';
import { PARTS } from './parts/index.js';
import type { Ctx } from './parts/part.js';
import { loadAverage } from './procfs.js';
import { type Report, type Row, renderSvg, renderTable, type Section, toJson } from './report.js';
import { startRig, warmUp } from './rig.js';
import type { SectionName } from './setup.js';
import { log } from './util.js';

const SECTION_TITLES: Record<SectionName, string> = {
  unpaced: 'agent pacing OFF (simulator runs flat out; the targets apply here)',
  paced: 'agent pacing ON (1 ms sleep per 1024-byte Output, like the real agent)',
};

/** One section: each selected part in order, then their summaries, then the stress parts. */
async function measureSection(ctx: Ctx, section: SectionName, opening: Map<string, Row[]>): Promise<Section> {
  await warmUp(ctx, section);
  const figures: Row[] = [];
  const summaries: Row[] = [];
  const stress: Row[] = [];
  for (const part of PARTS) {
    if (!ctx.opts.parts.has(part.name)) continue;
    if (!part.preparesClients) {
      for (const c of ctx.clients) await c.beforePart?.(section);
    }
    const { rows, summary } = await part.measure(ctx, section);
    (part.stress ? stress : figures).push(...(opening.get(part.name) ?? []), ...rows);
    summaries.push(...(summary ?? []));
  }
  return { name: section, title: SECTION_TITLES[section], rows: [...figures, ...summaries, ...stress] };
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

  const notes: string[] = [];
  const rig = await startRig(opts, notes);
  const { ctx } = rig;
  try {
    const selected = PARTS.filter((p) => opts.parts.has(p.name));
    // Figures measured once (e.g. idle RSS) open their part's rows in the first section only.
    const opening = new Map<string, Row[]>();
    for (const part of selected) if (part.before) opening.set(part.name, await part.before(ctx));

    const sections: Section[] = [];
    for (const s of opts.sections) {
      sections.push(await measureSection(ctx, s, s === opts.sections[0] ? opening : new Map()));
    }
    for (const part of selected) notes.push(...(part.notes?.(ctx) ?? []));
    // A section none of the selected parts measured anything in (e.g. --only wan) is left out.
    const shown = sections.filter((s) => s.rows.length > 0);
    if (ctx.clients.some((c) => c.kind === 'cmd')) {
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
      clients: ctx.clients.map((c) => c.name),
      sections: shown,
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
    await rig.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
