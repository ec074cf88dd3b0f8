// `keel train --resume DIR`: the folder a resumed run writes into, checked
// the same way by the single-process run and by the --nproc agent.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RunFolderError } from '../train/run-folder.js';
import { UsageError } from './errors.js';

/** The resumed run's folder and its config.json; refuses a folder that is not a run, --overwrite, and an --out elsewhere. */
export function resumeFolder(o: Record<string, unknown>): { dir: string; configPath: string } {
  const dir = resolve(o.resume as string);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UsageError(`--resume ${dir}: no config.json there (not a keel train output folder)`);
  if (o.overwrite) throw new RunFolderError('--resume and --overwrite exclude each other');
  if (o.out !== undefined && resolve(o.out as string) !== dir) throw new RunFolderError(`--resume ${dir} writes into ${dir}; --out ${o.out as string} differs`);
  return { dir, configPath };
}
