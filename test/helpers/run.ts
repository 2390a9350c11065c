import { type ChildProcess, type ExecFileOptions, execFile } from 'node:child_process';

export interface ToolResult {
  /** The exit code (1 when it could not run at all). */
  code: number;
  /** Trimmed. */
  stdout: string;
  stderr: string;
}

/**
 * Runs a real client program (psql, mariadb, ...) and resolves however it ends, so a test can assert
 * on a refusal as well as on success. `track` sees the child while it runs (to kill it in cleanup).
 */
export function runTool(
  file: string,
  args: string[],
  opts: ExecFileOptions = {},
  track?: { add(c: ChildProcess): void; delete(c: ChildProcess): void },
): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { encoding: 'utf8', ...opts }, (err, stdout, stderr) => {
      track?.delete(child);
      resolve({
        code: err ? Number((err as { code?: number }).code ?? 1) : 0,
        stdout: String(stdout).trim(),
        stderr: String(stderr),
      });
    });
    track?.add(child);
  });
}
