/** The real command runner (no shell), and how a command is shown in `--dry-run` output. */
import { spawn } from 'node:child_process';
import type { CommandRunner } from './types.js';

export const runCommand: CommandRunner = (argv, opts = {}) =>
  new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      stdio: opts.inherit ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += String(d);
    });
    child.stderr?.on('data', (d) => {
      stderr += String(d);
    });
    child.once('error', (e) => resolve({ code: 127, stdout, stderr: `${stderr}${e.message}\n` }));
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });

/** POSIX shell quoting, so a printed command can be pasted as it is. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(argv: string[]): string {
  return argv.map(shellWord).join(' ');
}
