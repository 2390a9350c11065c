/**
 * Tunnels added over the API, kept in `$XDG_STATE_HOME/ssmtun/tunnels.json` (0600, replaced atomically)
 * so a daemon restart loses nothing. The file holds the request bodies as given (config-file keys) and
 * they are validated again on load, by the same rules as the config file.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { stateDir } from './paths.js';

export interface StoredTunnels {
  version: 1;
  tunnels: Record<string, Record<string, unknown>>;
}

export function defaultStateFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(stateDir(env), 'tunnels.json');
}

export class StateFileError extends Error {
  readonly code = 'STATE_FILE_INVALID';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

export function readState(file: string): StoredTunnels {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, tunnels: {} };
    throw e;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new StateFileError(
      `${file} is not valid JSON: ${(e as Error).message}`,
      `fix or delete it (it holds the tunnels added with the API): rm '${file}'`,
    );
  }
  const d = doc as Partial<StoredTunnels>;
  if (d?.version !== 1 || typeof d.tunnels !== 'object' || d.tunnels === null || Array.isArray(d.tunnels)) {
    throw new StateFileError(
      `${file} is not an ssmtun state file (version 1)`,
      `move it away: mv '${file}' '${file}.bak'`,
    );
  }
  return { version: 1, tunnels: d.tunnels };
}

export function writeState(file: string, state: StoredTunnels): void {
  writeFileAtomic(file, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}
