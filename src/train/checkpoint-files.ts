// Checkpoint file names (DIR/checkpoints/step-NNNNNNNNN.json and .safetensors)
// and the listing of complete ones, apart from checkpoint.ts so that what
// only looks at a run folder (the run-folder lock, `keel train --nproc`'s
// agent) does not load libtorch.
import { existsSync, readdirSync } from 'node:fs';

const NAME = /^step-(\d{9})\.json$/;

/** step-NNNNNNNNN, the stem of a checkpoint's two files. */
export function stem(step: number): string {
  if (!Number.isInteger(step) || step < 0 || step > 999_999_999) throw new RangeError(`checkpoint step must be an integer in [0, 1e9), got ${step}`);
  return `step-${String(step).padStart(9, '0')}`;
}

/** Steps of the complete checkpoints in dir (those whose manifest landed), oldest first. */
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
