// Checkpoints: tensors as safetensors plus a JSON manifest, in
// DIR/checkpoints/. Each file is written atomically and the manifest last: a
// checkpoint exists only once its manifest does, and the manifest records the
// size of its tensor file, so a run killed mid-write leaves the previous
// checkpoint as the latest one. The last K are kept.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../core/tensor.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadFile, saveFile } from '../io/safetensors.js';

export interface CheckpointContent {
  /** Every tensor of the state, by dotted name ('model.fc.weight', 'optimizer.state.0.exp_avg', ...). */
  tensors: Record<string, Tensor>;
  /** Everything else, JSON-able (step, epoch, hyper-parameters, data position, ...). */
  state: Record<string, unknown>;
}

interface Manifest {
  format: 'keel-checkpoint-1';
  step: number;
  tensorsFile: string;
  tensorsBytes: number;
  state: Record<string, unknown>;
}

const NAME = /^step-(\d{9})\.json$/;

function stem(step: number): string {
  if (!Number.isInteger(step) || step < 0 || step > 999_999_999) throw new RangeError(`checkpoint step must be an integer in [0, 1e9), got ${step}`);
  return `step-${String(step).padStart(9, '0')}`;
}

/** Writes the checkpoint of `step` and deletes all but the newest `keep`. */
export function saveCheckpoint(dir: string, step: number, content: CheckpointContent, keep = 3): string {
  mkdirSync(dir, { recursive: true });
  const base = stem(step);
  const tensorsFile = `${base}.safetensors`;
  saveFile(content.tensors, join(dir, tensorsFile));
  const manifest: Manifest = {
    format: 'keel-checkpoint-1',
    step,
    tensorsFile,
    tensorsBytes: statSync(join(dir, tensorsFile)).size,
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

/** Steps of the complete checkpoints in dir, oldest first. */
export function listCheckpoints(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => NAME.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export function latestCheckpoint(dir: string): number | undefined {
  const all = listCheckpoints(dir);
  return all.length > 0 ? all[all.length - 1] : undefined;
}

/** Reads the checkpoint of `step` (default: the latest) back. */
export function loadCheckpoint(dir: string, step = latestCheckpoint(dir)): CheckpointContent & { step: number } {
  if (step === undefined) throw new Error(`no checkpoint in ${dir}`);
  const path = join(dir, `${stem(step)}.json`);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch (e) {
    throw new Error(`checkpoint ${path} cannot be read: ${(e as Error).message}`);
  }
  if (manifest.format !== 'keel-checkpoint-1') throw new Error(`checkpoint ${path}: unknown format ${String(manifest.format)}`);
  const tensorsPath = join(dir, manifest.tensorsFile);
  if (!existsSync(tensorsPath)) throw new Error(`checkpoint ${path}: its tensors file ${tensorsPath} is missing`);
  const size = statSync(tensorsPath).size;
  if (size !== manifest.tensorsBytes) {
    throw new Error(`checkpoint ${path}: ${tensorsPath} has ${size} bytes, the manifest says ${manifest.tensorsBytes}`);
  }
  return { step: manifest.step, tensors: loadFile(tensorsPath), state: manifest.state };
}
