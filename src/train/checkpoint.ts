// Checkpoints: tensors as safetensors plus a JSON manifest, in
// DIR/checkpoints/. Each file is written atomically and the manifest last: a
// checkpoint exists only once its manifest does, and the manifest records the
// size of its tensor file, so a run killed mid-write leaves the previous
// checkpoint as the latest one. The last K are kept.
//
// Hostile by default: the manifest records the SHA-256 of its tensors file
// and is validated against its schema before anything is believed (a step
// that is a non-negative integer and matches the file name, optimizer and
// scheduler state of the right types, a tensors file named plainly inside the
// folder); `loadLatestIntact` falls back past damaged checkpoints, naming them.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../core/tensor.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadFile, saveFile } from '../io/safetensors.js';
import { latestCheckpoint, listCheckpoints, stem } from './checkpoint-files.js';

export { latestCheckpoint, listCheckpoints } from './checkpoint-files.js';

export interface CheckpointContent {
  /** Every tensor of the state, by dotted name ('model.fc.weight', 'optimizer.state.0.exp_avg', ...). */
  tensors: Record<string, Tensor>;
  /** Everything else, JSON-able (step, epoch, hyper-parameters, data position, ...). */
  state: Record<string, unknown>;
}

interface Manifest {
  format: 'keel-checkpoint-2';
  step: number;
  tensorsFile: string;
  tensorsBytes: number;
  /** SHA-256 of the tensors file's bytes, hex. */
  tensorsSha256: string;
  state: Record<string, unknown>;
}

/** A checkpoint that failed its checks: the message says which check, for the user. */
export class CheckpointError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`checkpoint ${path}: ${reason}`);
    this.name = 'CheckpointError';
    this.reason = reason;
  }
  readonly reason: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a parsed manifest's shape; returns the first problem, or undefined. */
export function manifestProblem(m: unknown, expectedStep?: number): string | undefined {
  if (!isObject(m)) return 'the manifest is not a JSON object';
  if (m.format === 'keel-checkpoint-1') return 'written by an older Keel without a checksum (format keel-checkpoint-1); it cannot be verified';
  if (m.format !== 'keel-checkpoint-2') return `unknown format ${JSON.stringify(m.format)}`;
  if (typeof m.step !== 'number' || !Number.isInteger(m.step) || m.step < 0 || m.step > 999_999_999) return `step must be a non-negative integer below 1e9, got ${JSON.stringify(m.step)}`;
  if (expectedStep !== undefined && m.step !== expectedStep) return `step ${m.step} does not match the file name's step ${expectedStep}`;
  if (typeof m.tensorsFile !== 'string' || !/^step-\d{9}\.safetensors$/.test(m.tensorsFile)) return `tensorsFile must be a plain step-NNNNNNNNN.safetensors name inside the checkpoint folder, got ${JSON.stringify(m.tensorsFile)}`;
  if (m.tensorsFile !== `${stem(m.step)}.safetensors`) return `tensorsFile ${m.tensorsFile} is not this step's (${stem(m.step)}.safetensors)`;
  if (typeof m.tensorsBytes !== 'number' || !Number.isInteger(m.tensorsBytes) || m.tensorsBytes < 8) return `tensorsBytes must be an integer ≥ 8, got ${JSON.stringify(m.tensorsBytes)}`;
  if (typeof m.tensorsSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.tensorsSha256)) return `tensorsSha256 must be 64 hex digits, got ${JSON.stringify(m.tensorsSha256)}`;
  if (!isObject(m.state)) return 'state must be an object';
  const st = m.state;
  if (st.step !== undefined && st.step !== m.step) return `state.step ${JSON.stringify(st.step)} differs from step ${m.step}`;
  if (st.epoch !== undefined && (typeof st.epoch !== 'number' || !Number.isInteger(st.epoch) || st.epoch < 0)) return `state.epoch must be a non-negative integer, got ${JSON.stringify(st.epoch)}`;
  if (st.optimizer !== undefined) {
    if (!isObject(st.optimizer)) return 'state.optimizer must be an object';
    if (!isObject(st.optimizer.state)) return 'state.optimizer.state must be an object';
    if (!Array.isArray(st.optimizer.paramGroups) || !st.optimizer.paramGroups.every((g) => isObject(g) && (g.lr === undefined || (typeof g.lr === 'number' && Number.isFinite(g.lr))))) {
      return 'state.optimizer.paramGroups must be a list of objects with a finite lr';
    }
  }
  if (st.scheduler !== undefined && st.scheduler !== null && !isObject(st.scheduler)) return 'state.scheduler must be an object or null';
  if (st.data !== undefined && !isObject(st.data)) return 'state.data must be an object';
  return undefined;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}


/** Writes the checkpoint of `step` and deletes all but the newest `keep`. */
export function saveCheckpoint(dir: string, step: number, content: CheckpointContent, keep = 3): string {
  mkdirSync(dir, { recursive: true });
  const base = stem(step);
  const tensorsFile = `${base}.safetensors`;
  saveFile(content.tensors, join(dir, tensorsFile));
  // the checksum of the bytes that landed on disk
  const bytes = readFileSync(join(dir, tensorsFile));
  const manifest: Manifest = {
    format: 'keel-checkpoint-2',
    step,
    tensorsFile,
    tensorsBytes: bytes.byteLength,
    tensorsSha256: sha256(bytes),
    state: content.state,
  };
  const path = join(dir, `${base}.json`);
  writeFileAtomic(path, `${JSON.stringify(manifest, null, 1)}\n`);
  prune(dir, keep);
  return path;
}

function prune(dir: string, keep: number): void {
  const steps = listCheckpoints(dir);
  for (const step of steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)))) {
    for (const ext of ['.json', '.safetensors']) {
      try {
        unlinkSync(join(dir, `${stem(step)}${ext}`));
      } catch {
        /* already gone */
      }
    }
  }
  // tensor files whose manifest never landed (a killed write)
  const manifests = new Set(listCheckpoints(dir).map(stem));
  for (const f of readdirSync(dir)) {
    const m = /^(step-\d{9})\.safetensors$/.exec(f);
    if (m && !manifests.has(m[1])) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        /* racing cleanup */
      }
    }
  }
}


/**
 * Deletes the checkpoints after `step` (a rollback went back past them: a
 * resume must not go forward to the abandoned states). The manifest goes
 * first, so a half-removed checkpoint is never taken for a complete one.
 */
export function removeCheckpointsAfter(dir: string, step: number): number[] {
  const newer = listCheckpoints(dir).filter((s) => s > step);
  for (const s of newer) {
    for (const ext of ['.json', '.safetensors']) {
      try {
        unlinkSync(join(dir, `${stem(s)}${ext}`));
      } catch {
        /* already gone */
      }
    }
  }
  return newer;
}

/** Reads the checkpoint of `step` (default: the latest) back, or throws a CheckpointError saying what is wrong with it. */
export function loadCheckpoint(dir: string, step = latestCheckpoint(dir)): CheckpointContent & { step: number } {
  if (step === undefined) throw new Error(`no checkpoint in ${dir}`);
  const path = join(dir, `${stem(step)}.json`);
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CheckpointError(path, `the manifest cannot be read: ${(e as Error).message}`);
  }
  const problem = manifestProblem(manifest, step);
  if (problem !== undefined) throw new CheckpointError(path, problem);
  const m = manifest as Manifest;
  const tensorsPath = join(dir, m.tensorsFile);
  if (!existsSync(tensorsPath)) throw new CheckpointError(path, `its tensors file ${m.tensorsFile} is missing`);
  const size = statSync(tensorsPath).size;
  if (size !== m.tensorsBytes) throw new CheckpointError(path, `${m.tensorsFile} has ${size} bytes, the manifest says ${m.tensorsBytes} (truncated or replaced)`);
  const bytes = readFileSync(tensorsPath);
  if (sha256(bytes) !== m.tensorsSha256) throw new CheckpointError(path, `${m.tensorsFile} fails its SHA-256 check (its bytes changed after it was written)`);
  let tensors: Record<string, Tensor>;
  try {
    tensors = loadFile(tensorsPath);
  } catch (e) {
    throw new CheckpointError(path, `${m.tensorsFile} cannot be read: ${(e as Error).message}`);
  }
  return { step: m.step, tensors, state: m.state };
}

export interface SkippedCheckpoint {
  step: number;
  reason: string;
}

/**
 * Tries the checkpoints newest first and hands the first intact one to
 * `restore` (which may itself throw to reject it); returns its step and the
 * ones skipped with why. Throws when checkpoints exist and none is intact.
 */
export function restoreLatestIntact<R>(dir: string, restore: (c: CheckpointContent & { step: number }) => R): { step: number; result: R; skipped: SkippedCheckpoint[] } | { step: undefined; skipped: SkippedCheckpoint[] } {
  const skipped: SkippedCheckpoint[] = [];
  const steps = listCheckpoints(dir).reverse();
  for (const step of steps) {
    let c: CheckpointContent & { step: number };
    try {
      c = loadCheckpoint(dir, step);
    } catch (e) {
      skipped.push({ step, reason: e instanceof CheckpointError ? e.reason : (e as Error).message });
      continue;
    }
    try {
      return { step, result: restore(c), skipped };
    } catch (e) {
      skipped.push({ step, reason: `its state does not fit this run: ${(e as Error).message}` });
    } finally {
      for (const t of Object.values(c.tensors)) t.dispose();
    }
  }
  if (steps.length > 0) {
    throw new Error(`no intact checkpoint in ${dir}: ${skipped.map((s) => `step ${s.step}: ${s.reason}`).join('; ')}`);
  }
  return { step: undefined, skipped };
}
