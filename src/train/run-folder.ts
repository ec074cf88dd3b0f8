// A run folder (`keel train --out DIR`) has one writer and is never silently
// damaged: a lock file names the process that writes it (a stale one, left by
// a killed run, is detected by its pid), a second run into a folder that
// already holds one is refused, a resume may change only the flags that can
// change mid-run, and what a killed write left behind is removed on the next
// start.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { listCheckpoints } from './checkpoint-files.js';

/** An Error whose message is meant for the user as is; exitCode 2 marks a usage error. */
export class RunFolderError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2 = 2) {
    super(message);
    this.name = 'RunFolderError';
  }
}

export const LOCK_FILE = 'keel.lock';
/** What `keel train` writes into a run folder (--overwrite removes these and nothing else). */
export const RUN_FILES = ['config.json', 'metrics.jsonl', 'model.safetensors', 'summary.json', 'checkpoints'];

interface LockInfo {
  pid: number;
  host: string;
  since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface RunLock {
  readonly path: string;
  /** A note for the user when a stale lock was replaced. */
  readonly staleNote?: string;
  release(): void;
}

/**
 * Takes DIR's lock or throws naming the process that holds it. A lock whose
 * pid is not alive on this host is stale: it is replaced (and said so).
 */
export function acquireLock(dir: string): RunLock {
  const path = join(dir, LOCK_FILE);
  let staleNote: string | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new RunFolderError(`cannot lock ${dir}: ${(e as Error).message}`, 1);
      let held: Partial<LockInfo> = {};
      try {
        held = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>;
      } catch {
        /* torn or foreign: judged stale below only if it names no live pid */
      }
      const pid = typeof held.pid === 'number' && Number.isInteger(held.pid) && held.pid > 0 ? held.pid : undefined;
      if (pid !== undefined && (held.host !== hostname() || alive(pid))) {
        throw new RunFolderError(`${dir} is in use by another keel train (pid ${pid}${held.host !== hostname() ? ` on ${held.host}` : ''}, since ${held.since ?? '?'}); wait for it, or stop it (Ctrl-C saves a checkpoint). If no such process runs, remove ${path}`, 1);
      }
      staleNote = `removed a stale lock (pid ${pid ?? '?'} is not running)`;
      try {
        unlinkSync(path);
      } catch {
        /* another starter removed it first */
      }
      continue;
    }
    const info: LockInfo = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    writeSync(fd, `${JSON.stringify(info)}\n`);
    closeSync(fd);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      process.off('exit', release);
      try {
        const now = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
        if (now.pid === process.pid) unlinkSync(path);
      } catch {
        /* gone already */
      }
    };
    process.on('exit', release);
    return { path, release, ...(staleNote ? { staleNote } : {}) };
  }
  throw new RunFolderError(`cannot lock ${dir}: another process keeps replacing ${path}`, 1);
}

/** What DIR holds of a previous run, or undefined when it holds none. */
export function describeRun(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const parts: string[] = [];
  for (const f of ['config.json', 'metrics.jsonl', 'model.safetensors', 'summary.json']) if (existsSync(join(dir, f))) parts.push(f);
  const ckpts = listCheckpoints(join(dir, 'checkpoints'));
  if (ckpts.length > 0) parts.push(`${ckpts.length} checkpoint${ckpts.length > 1 ? 's' : ''} (last at step ${ckpts[ckpts.length - 1]})`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

/** Refuses to start a fresh run in a folder that holds one, unless `overwrite` (then removes that run's files only). */
export function prepareFreshRun(dir: string, overwrite: boolean): void {
  const held = describeRun(dir);
  if (held === undefined) return;
  if (!overwrite) {
    throw new RunFolderError(`--out ${dir} already holds a run (${held}); continue it with --resume ${dir}, or start afresh with --overwrite`);
  }
  for (const f of RUN_FILES) rmSync(join(dir, f), { recursive: true, force: true });
}

/**
 * Removes what a killed run left: temporary files of atomic writes
 * (`.NAME.PID.HEX.tmp`) in DIR and DIR/checkpoints, and tensors files whose
 * manifest never landed. Call with the lock held. Returns the names removed.
 */
export function removeLeftovers(dir: string): string[] {
  const removed: string[] = [];
  const ckptDir = join(dir, 'checkpoints');
  for (const d of [dir, ckptDir]) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (/^\..+\.\d+\.[0-9a-f]+\.tmp$/.test(f)) {
        rmSync(join(d, f), { force: true });
        removed.push(d === dir ? f : `checkpoints/${f}`);
      }
    }
  }
  if (existsSync(ckptDir)) {
    const manifests = new Set(readdirSync(ckptDir).filter((f) => /^step-\d{9}\.json$/.test(f)).map((f) => f.slice(0, -5)));
    for (const f of readdirSync(ckptDir)) {
      const m = /^(step-\d{9})\.safetensors$/.exec(f);
      if (m && !manifests.has(m[1])) {
        rmSync(join(ckptDir, f), { force: true });
        removed.push(`checkpoints/${f}`);
      }
    }
  }
  return removed;
}

/** The config keys a resume may change, by flag. */
export const RESUMABLE: Record<string, string> = {
  steps: '--steps',
  epochs: '--epochs',
  checkpointEvery: '--checkpoint-every',
  threads: '--threads',
  guard: '--guard',
  healthEvery: '--health-every',
};

function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * Merges the flags given on `--resume` into the run's saved config: those in
 * RESUMABLE apply (returned in `changed` as [old, new]); any other that
 * differs from the saved value is refused, named.
 */
export function mergeResumeFlags<C extends Record<string, unknown>>(saved: C, given: Record<string, unknown>): { config: C; changed: Record<string, [unknown, unknown]> } {
  const config: Record<string, unknown> = { ...saved };
  const changed: Record<string, [unknown, unknown]> = {};
  const refused: string[] = [];
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined || JSON.stringify(saved[key]) === JSON.stringify(value)) continue;
    if (Object.hasOwn(RESUMABLE, key)) {
      changed[key] = [saved[key] ?? null, value];
      config[key] = value;
    } else {
      refused.push(`${flagOf(key)} ${JSON.stringify(value)} (the run has ${saved[key] === undefined ? 'none' : JSON.stringify(saved[key])})`);
    }
  }
  // a new length replaces the old one: --steps alone drops a saved --epochs (else the shorter would still end the run), and vice versa
  for (const [key, other] of [['steps', 'epochs'], ['epochs', 'steps']] as const) {
    if (key in changed && given[other] === undefined && saved[other] !== undefined) {
      changed[other] = [saved[other], null];
      delete config[other];
    }
  }
  if (refused.length > 0) {
    throw new RunFolderError(`--resume cannot change ${refused.join(', ')}; only ${Object.values(RESUMABLE).join(', ')} may change on resume (start a new run with --out for the others)`);
  }
  return { config: config as C, changed };
}
