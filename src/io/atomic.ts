// Atomic writes: a temporary file in the same folder is written, fsynced and
// renamed over the target, then the folder is fsynced, so a crash (even
// SIGKILL mid-write) leaves either the old file or the new one, never a torn one.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Writes all of `bytes` at the file position of fd. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
  }
}

/** Makes a rename inside `dir` durable; best effort where folders cannot be fsynced. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* not every platform can fsync a folder */
  }
}

/**
 * Calls `write(fd)` on a fresh temporary file beside `path`, then fsyncs and
 * renames it over `path`. On any failure the temporary file is removed and
 * the error is rethrown with the path named.
 */
export function writeAtomic(path: string, write: (fd: number) => void): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* never created, or already renamed */
    }
    throw new Error(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  fsyncDir(dir);
}

/** Writes a whole file atomically. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeAtomic(path, (fd) => writeAll(fd, bytes));
}
