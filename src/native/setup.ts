// Where the addon lives and what to run when it is missing: shared by the
// loader (binding.ts) and `keel doctor`, which must not load the addon to say it.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The exact command that installs libtorch (and the fast BLAS) on Debian; scripts/build-native.mjs prints the same. */
export const LIBTORCH_FIX = 'sudo apt-get install -y libtorch-dev libopenblas0-pthread';

/** The package's root folder: the repo, or node_modules/keel when installed as a dependency. */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** What to run when the addon is missing or does not load, for this layout. */
export function addonFix(root: string = packageRoot()): string {
  const installed = root.split(/[\\/]/).includes('node_modules');
  const rebuild = installed
    ? 'then rebuild the addon with `npm rebuild keel` (npm may ask first: `npm install-scripts approve keel`)'
    : `then build the addon with \`npm run build:native\` in ${root}`;
  return `fix: install libtorch if it is missing:  ${LIBTORCH_FIX}\n     ${rebuild}`;
}
