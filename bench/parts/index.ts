/**
 * The bench's parts, in the order they run in each section and appear in the table. Adding one is a
 * file in this folder exporting a BenchPart, plus its line here; `--only` and the usage text follow.
 */
import { latency } from './latency.js';
import { open } from './open.js';
import { overrun } from './overrun.js';
import type { BenchPart } from './part.js';
import { pgbench } from './pgbench.js';
import { resources } from './resources.js';
import { throughput } from './throughput.js';
import { pool, wan } from './wan.js';

export const PARTS: readonly BenchPart[] = [
  throughput,
  latency,
  pgbench,
  open,
  resources,
  pool,
  wan,
  overrun,
];

export const PART_NAMES: readonly string[] = PARTS.map((p) => p.name);
