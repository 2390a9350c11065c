/**
 * Runs the soak's scenarios in order and sums them up. The last line is the one the issue fixes:
 * `soak: <GB> GB over <n> connections, <k> WebSocket kills, <l> lost, <c> corrupted, longest stall <s> s`.
 */
import { runDecoderProperties } from './fuzz.js';
import type { ConnResult } from './measure.js';
import {
  bulk,
  faithful,
  freeze,
  lossyFaithful,
  quirks,
  recycles,
  type ScenarioResult,
  type SoakOptions,
  SoakWorld,
  slowReader,
} from './scenarios.js';

export interface SoakSummary {
  bytes: number;
  connections: number;
  kills: number;
  lost: number;
  corrupted: number;
  longestStallMs: number;
  failures: string[];
  line: string;
  scenarios: ScenarioResult[];
}

type Scenario = (w: SoakWorld, o: SoakOptions) => Promise<ScenarioResult>;

export const ALL_SCENARIOS: Record<string, Scenario> = {
  bulk,
  recycles,
  slowReader,
  freeze,
  faithful,
  quirks,
  lossyFaithful,
};

export async function runSoak(o: SoakOptions, only?: string[]): Promise<SoakSummary> {
  const scenarios: ScenarioResult[] = [];
  const failures: string[] = [];
  const world = await SoakWorld.start(o);
  try {
    for (const [name, run] of Object.entries(ALL_SCENARIOS)) {
      if (only && !only.includes(name)) continue;
      const started = Date.now();
      const r = await run(world, o);
      scenarios.push(r);
      o.log(describeScenario(r, Date.now() - started));
      failures.push(...r.failures.map((f) => `${r.name}: ${f}`));
    }
  } finally {
    await world.stop();
  }
  const fuzzCases = o.tiny ? 4_000 : 100_000;
  const fuzz = runDecoderProperties(fuzzCases, o.seed);
  o.log(`decoders: ${fuzz.cases} fast-check cases, ${fuzz.failures.length} failed`);
  failures.push(...fuzz.failures);

  const all = scenarios.flatMap((s) => s.results);
  const counted = scenarios.filter((s) => s.countsStall).flatMap((s) => s.results);
  const bytes = all.reduce((n, r) => n + r.sent + r.received, 0);
  const lost = all.filter((r) => r.lost > 0).length;
  const corrupted = all.filter((r) => r.corrupted || r.received > r.expected).length;
  const longestStallMs = Math.max(0, ...counted.map((r) => r.longestStallMs));
  const kills = scenarios.reduce((n, s) => n + s.kills, 0);
  for (const r of all)
    if (r.lost > 0 || r.error) failures.push(`${r.name}: ${r.error ?? `${r.lost} bytes lost`}`);
  const line = `soak: ${(bytes / 1e9).toFixed(2)} GB over ${all.length} connections, ${kills} WebSocket kills, ${lost} lost, ${corrupted} corrupted, longest stall ${(longestStallMs / 1000).toFixed(2)} s`;
  return {
    bytes,
    connections: all.length,
    kills,
    lost,
    corrupted,
    longestStallMs,
    failures,
    line,
    scenarios,
  };
}

function describeScenario(s: ScenarioResult, ms: number): string {
  const rs: ConnResult[] = s.results;
  const bytes = rs.reduce((n, r) => n + r.sent + r.received, 0);
  const stall = Math.max(0, ...rs.map((r) => r.longestStallMs));
  const bad = rs.filter((r) => r.lost > 0 || r.corrupted).length;
  return [
    `${s.name}: ${(bytes / 1e6).toFixed(1)} MB over ${rs.length} connections in ${(ms / 1000).toFixed(1)} s`,
    `${s.kills} kills`,
    `${bad} bad`,
    `longest stall ${(stall / 1000).toFixed(2)} s${s.countsStall ? '' : ' (not counted)'}`,
    ...s.notes,
    ...(s.failures.length ? [`FAILED: ${s.failures.join('; ')}`] : []),
  ].join(', ');
}
