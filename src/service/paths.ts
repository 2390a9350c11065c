/**
 * The absolute paths a service file needs. A login service gets no shell profile, so nothing may be
 * looked up on PATH at start: node, the script and the credential helpers are all resolved now.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { ServiceError } from './types.js';

/** The compiled entry script of this installation; refuses a source checkout that was never built. */
export function resolveScript(entry: string | undefined): string {
  if (!entry) throw new ServiceError('SCRIPT_NOT_FOUND', 'cannot tell where the ssmtun script is');
  let real = realpathSync(entry);
  if (real.endsWith('.ts')) {
    // Running from source (tsx): the service must run the compiled copy next to it.
    const built = path.join(path.dirname(real), '..', '..', 'dist', 'cli', 'index.js');
    if (!existsSync(built)) {
      throw new ServiceError(
        'NOT_BUILT',
        `ssmtun runs from source (${real}) and has no compiled copy at ${built}`,
        'install the package (npm pack && npm install -g ./ssmtun-*.tgz) and run its ssmtun, or run npm run build first',
      );
    }
    real = path.resolve(built);
  }
  return real;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isExecutable(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function firstWord(command: string): string {
  const m = /^\s*(?:"([^"]+)"|'([^']+)'|(\S+))/.exec(command);
  return m ? (m[1] ?? m[2] ?? m[3]) : '';
}

/** Directories of the programs named by `credential_process` in the AWS config (aws-vault, granted, ...). */
export function credentialHelperDirs(env: NodeJS.ProcessEnv, home: string, searchPath: string[]): string[] {
  const file = env.AWS_CONFIG_FILE || path.join(home, '.aws', 'config');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const dirs: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*credential_process\s*=\s*(.+)$/.exec(line);
    if (!m) continue;
    let program = firstWord(m[1]).replace(/^~(?=\/)/, home);
    if (!path.isAbsolute(program)) {
      const found = searchPath.map((d) => path.join(d, program)).find(isExecutable);
      if (!found) continue;
      program = found;
    }
    dirs.push(path.dirname(program));
  }
  return dirs;
}

const SYSTEM_PATH = ['/usr/local/bin', '/usr/bin', '/bin'];

/**
 * PATH for the service: node's own directory, the credential helpers' directories, the user's PATH as
 * it is now (absolute, existing directories only) and the system directories, without duplicates.
 */
export function servicePath(
  env: NodeJS.ProcessEnv,
  home: string,
  nodePath: string,
  extraSystem: string[] = [],
): string {
  const current = (env.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d) && isDir(d));
  const dirs = [
    path.dirname(nodePath),
    ...credentialHelperDirs(env, home, current),
    ...current,
    ...extraSystem,
    ...SYSTEM_PATH,
  ];
  return [...new Set(dirs.map((d) => path.resolve(d)))].join(':');
}
