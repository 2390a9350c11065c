/**
 * The results model and its three renderings: a plain-text table (stdout), JSON (--json) and an SVG
 * bar chart (--chart FILE, hand-written, no dependencies).
 */
import type { SectionName } from './setup.js';
import { fmt, median } from './util.js';

export type Better = 'higher' | 'lower';
/** How a client's figure relates to the direct one: a ratio, an added amount (latency), or not at all. */
export type RatioKind = 'ratio' | 'added' | 'none';

export interface Target {
  text: string;
  ok(value: number, direct: number | undefined): boolean;
}

export interface Cell {
  runs: number[];
  value?: number;
  error?: string;
  /** Why there is no figure, shown in place of one (e.g. a feature this build does not have). */
  note?: string;
}

export interface Row {
  key: string;
  label: string;
  unit: string;
  better: Better;
  ratio: RatioKind;
  target?: Target;
  cells: Record<string, Cell>;
}

export interface Section {
  name: SectionName;
  title: string;
  rows: Row[];
}

export interface Machine {
  cores: number;
  loadStart: string;
  loadEnd: string;
  node: string;
  platform: string;
}

export interface Report {
  mode: 'quick' | 'full';
  runs: number;
  runtime: string;
  machine: Machine;
  clients: string[];
  sections: Section[];
  seconds: number;
  notes: string[];
}

export function row(
  key: string,
  label: string,
  unit: string,
  better: Better,
  ratio: RatioKind,
  target?: Target,
): Row {
  return { key, label, unit, better, ratio, target, cells: {} };
}

/** Adds one run's figure (or failure) for a client. */
export function record(r: Row, client: string, value: number | Error | undefined): void {
  r.cells[client] ??= { runs: [] };
  const cell = r.cells[client];
  if (value instanceof Error) cell.error = value.message;
  else if (value !== undefined && Number.isFinite(value)) cell.runs.push(value);
  cell.value = cell.runs.length ? median(cell.runs) : undefined;
}

/** A cell with no figure and the reason instead ("n/a (...)"), neither a result nor a failure. */
export function recordNote(r: Row, client: string, note: string): void {
  r.cells[client] ??= { runs: [] };
  r.cells[client].note = note;
}

export const atLeast = (n: number, unitText = ''): Target => ({
  text: `>= ${n}${unitText}`,
  ok: (v) => v >= n,
});
export const atMost = (n: number, unitText = ''): Target => ({
  text: `<= ${n}${unitText}`,
  ok: (v) => v <= n,
});
export const addedAtMost = (n: number, unitText: string): Target => ({
  text: `+<= ${n}${unitText}`,
  ok: (v, d) => d !== undefined && v - d <= n,
});
export const ratioAtLeast = (pct: number): Target => ({
  text: `>= ${pct}% direct`,
  ok: (v, d) => d !== undefined && d > 0 && (v / d) * 100 >= pct,
});

function ratioText(r: Row, v: number, d: number | undefined): string {
  if (r.ratio === 'none' || d === undefined || !Number.isFinite(d) || d === 0) return '';
  if (r.ratio === 'added') {
    const a = v - d;
    return `(${a >= 0 ? '+' : ''}${fmt(a)})`;
  }
  if (r.better === 'higher') return `(${fmt((v / d) * 100)}%)`;
  return `(x${fmt(v / d)})`;
}

function cellText(r: Row, client: string): string {
  const c = r.cells[client];
  if (!c) return 'n/a';
  if (c.value === undefined) return c.error ? 'FAIL' : c.note ? `n/a (${c.note})` : 'n/a';
  const d = client === 'direct' ? undefined : r.cells.direct?.value;
  const parts = [fmt(c.value)];
  const rt = ratioText(r, c.value, d);
  if (rt) parts.push(rt);
  if (r.target && client !== 'direct') parts.push(r.target.ok(c.value, d) ? 'ok' : 'MISS');
  return parts.join(' ');
}

export function renderTable(rep: Report): string {
  const cols = rep.clients;
  const lines: string[][] = [];
  const head = ['', 'target', ...cols];
  for (const s of rep.sections) {
    lines.push([`# ${s.title}`]);
    for (const r of s.rows) {
      lines.push([`  ${r.label} (${r.unit})`, r.target?.text ?? '', ...cols.map((c) => cellText(r, c))]);
    }
  }
  const widths = head.map((h, i) =>
    Math.max(h.length, ...lines.filter((l) => l.length > 1).map((l) => (l[i] ?? '').length)),
  );
  const pad = (l: string[]) =>
    l.length === 1
      ? l[0]
      : l.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  const m = rep.machine;
  const out = [
    `ssmtun bench (${rep.mode}, ${Math.round(rep.seconds)} s): ${m.cores} cores, load average ${m.loadStart} at start, ${m.loadEnd} at end; node ${m.node}, ${m.platform}; daemon from ${rep.runtime}`,
    `each figure is the median of ${rep.runs} runs; (...) = ratio to the direct connection measured in the same runs: % of direct throughput/tps, x direct time, +ms over direct; ok/MISS = target met or not`,
    '',
    pad(head),
    ...lines.map(pad),
  ];
  if (rep.notes.length) out.push('', ...rep.notes.map((n) => `note: ${n}`));
  const errors: string[] = [];
  for (const s of rep.sections) {
    for (const r of s.rows) {
      for (const [client, c] of Object.entries(r.cells)) {
        if (c.error) errors.push(`${s.name} / ${r.label} / ${client}: ${c.error}`);
      }
    }
  }
  if (errors.length) out.push('', 'errors:', ...errors.map((e) => `  ${e}`));
  return `${out.join('\n')}\n`;
}

export function toJson(rep: Report): unknown {
  return {
    mode: rep.mode,
    runs: rep.runs,
    runtime: rep.runtime,
    seconds: Math.round(rep.seconds),
    machine: rep.machine,
    clients: rep.clients,
    notes: rep.notes,
    sections: rep.sections.map((s) => ({
      name: s.name,
      title: s.title,
      rows: s.rows.map((r) => {
        const d = r.cells.direct?.value;
        return {
          key: r.key,
          label: r.label,
          unit: r.unit,
          better: r.better,
          target: r.target?.text ?? null,
          values: Object.fromEntries(
            Object.entries(r.cells).map(([client, c]) => {
              const isDirect = client === 'direct';
              const ratio =
                !isDirect && c.value !== undefined && d !== undefined && d !== 0 && r.ratio !== 'none'
                  ? r.ratio === 'added'
                    ? { added: c.value - d }
                    : { ratio: c.value / d }
                  : {};
              return [
                client,
                {
                  value: c.value ?? null,
                  runs: c.runs,
                  ...ratio,
                  ...(r.target && !isDirect && c.value !== undefined
                    ? { meetsTarget: r.target.ok(c.value, d) }
                    : {}),
                  ...(c.error ? { error: c.error } : {}),
                },
              ];
            }),
          ),
        };
      }),
    })),
  };
}

const COLORS = ['#8c8c8c', '#2f6fdf', '#e07b24', '#3aa55d', '#9b4fd1', '#c43d3d'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** One group of bars per figure, each on its own linear scale, the target as a dashed red line. */
export function renderSvg(rep: Report): string {
  const x0 = 20;
  const barW = 600;
  const width = x0 + barW + 170;
  const barH = 12;
  const parts: string[] = [];
  let y = 20;
  const m = rep.machine;
  parts.push(
    `<text x="10" y="${y}" font-size="15" font-weight="bold">ssmtun bench (${rep.mode}): ${m.cores} cores, load ${esc(m.loadStart)}, node ${esc(m.node)}</text>`,
  );
  y += 20;
  rep.clients.forEach((c, i) => {
    const x = 10 + i * 150;
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    parts.push(`<text x="${x + 16}" y="${y}" font-size="12">${esc(c)}</text>`);
  });
  parts.push(
    `<text x="${width - 10}" y="${y}" font-size="11" text-anchor="end" fill="#c43d3d">dashed line: target</text>`,
  );
  y += 10;
  for (const s of rep.sections) {
    y += 22;
    parts.push(`<text x="10" y="${y}" font-size="14" font-weight="bold">${esc(s.title)}</text>`);
    y += 6;
    for (const r of s.rows) {
      const present = rep.clients
        .map((c, i) => ({ c, i, v: r.cells[c]?.value }))
        .filter((e): e is { c: string; i: number; v: number } => e.v !== undefined);
      const targetValue = r.target ? Number(/[\d.]+/.exec(r.target.text)?.[0]) : Number.NaN;
      const absTarget =
        r.target !== undefined &&
        Number.isFinite(targetValue) &&
        !r.target.text.includes('%') &&
        !r.target.text.startsWith('+');
      // Only figures with something to compare against: the direct connection or a target.
      const comparable = (r.ratio !== 'none' && r.cells.direct?.value !== undefined) || absTarget;
      if (present.length === 0 || !comparable) continue;
      const scale = Math.max(...present.map((e) => e.v), absTarget ? targetValue : 0) * 1.05 || 1;
      y += 16;
      parts.push(
        `<text x="10" y="${y}" font-size="12">${esc(`${r.label.trim()} (${r.unit})`)}${r.target ? ` <tspan fill="#c43d3d">target ${esc(r.target.text)}</tspan>` : ''}</text>`,
      );
      const top = y + 4;
      let by = top;
      for (const e of present) {
        const w = Math.max(1, (e.v / scale) * barW);
        parts.push(
          `<rect x="${x0}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[e.i % COLORS.length]}"/>`,
        );
        parts.push(
          `<text x="${(x0 + w + 4).toFixed(1)}" y="${by + barH - 2}" font-size="10">${esc(cellText(r, e.c))}</text>`,
        );
        by += barH + 2;
      }
      if (absTarget) {
        const tx = (x0 + (targetValue / scale) * barW).toFixed(1);
        parts.push(
          `<line x1="${tx}" y1="${top - 2}" x2="${tx}" y2="${by}" stroke="#c43d3d" stroke-dasharray="3,2"/>`,
        );
      }
      y = by + 4;
    }
  }
  y += 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif" role="img">\n<title>ssmtun bench (${rep.mode})</title>\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
