/**
 * Files the daemon owns (API key, pgpass block, state) are replaced, never edited in place: a temp file
 * in the same directory with the final mode from the first byte, fsync, then rename. A reader sees the old
 * or the new file, never half of one, and a secret is never readable by others even for a moment.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

/** Resolves symlinks first so a pgpass symlinked into a dotfiles repo stays a symlink. */
function target(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

export function writeFileAtomic(file: string, data: string | Buffer, mode: number, dirMode = 0o700): void {
  const dest = target(file);
  mkdirSync(path.dirname(dest), { recursive: true, mode: dirMode });
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    // open() applies the umask; the mode must be exactly what was asked (0600 for secrets, 0644 for CAs).
    fchmodSync(fd, mode);
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, dest);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
