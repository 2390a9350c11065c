/**
 * The compiled CLI (what `npm pack` ships and the service unit runs), built once per test run into
 * .test-dist/ so tests never depend on a stale dist/ of the developer's.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, '.test-dist');

let building: Promise<string> | undefined;

/** Absolute path of the compiled entry script (cli/index.js). */
export function compiledCli(): Promise<string> {
  building ??= promisify(execFile)(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      OUT,
    ],
    { cwd: ROOT },
  ).then(() => path.join(OUT, 'cli', 'index.js'));
  return building;
}
