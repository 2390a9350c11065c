/**
 * Summarises V8 .cpuprofile files (from `--daemon-node-args "--cpu-prof --cpu-prof-dir=DIR"`): self
 * time per function and per file, highest first.
 *   npx tsx bench/profile.ts DIR_OR_FILE... [--top N]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function files(args: string[]): string[] {
  return args.flatMap((a) =>
    statSync(a).isDirectory()
      ? readdirSync(a)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => path.join(a, f))
      : [a],
  );
}

function shortUrl(url: string): string {
  const i = url.search(/\/(src|dist|node_modules)\//);
  if (url.startsWith('node:')) return url;
  return i >= 0 ? url.slice(i + 1) : url || '(native)';
}

function main(): void {
  const argv = process.argv.slice(2);
  const topAt = argv.indexOf('--top');
  const top = topAt >= 0 ? Number(argv[topAt + 1]) : 25;
  const inputs = argv.filter((_, i) => i !== topAt && i !== topAt + 1);
  if (inputs.length === 0) {
    process.stderr.write('usage: npx tsx bench/profile.ts DIR_OR_FILE... [--top N]\n');
    process.exit(2);
  }
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (const file of files(inputs)) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < p.samples.length; i++) {
      const n = nodes.get(p.samples[i]);
      const us = p.timeDeltas[i] ?? 0;
      if (!n) continue;
      const cf = n.callFrame;
      const where = shortUrl(cf.url);
      const fn = `${cf.functionName || '(anonymous)'}  ${where}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
      byFn.set(fn, (byFn.get(fn) ?? 0) + us);
      byFile.set(where, (byFile.get(where) ?? 0) + us);
      total += us;
    }
  }
  const print = (title: string, m: Map<string, number>) => {
    process.stdout.write(`\n${title} (self time, of ${(total / 1e6).toFixed(2)} s sampled)\n`);
    for (const [k, us] of [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(
        `${((us / total) * 100).toFixed(1).padStart(6)}%  ${(us / 1e3).toFixed(0).padStart(7)} ms  ${k}\n`,
      );
    }
  };
  print('functions', byFn);
  print('files', byFile);
}

main();
