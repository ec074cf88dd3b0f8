// `keel repro stable [--quick] [--out DIR]` (wired into `keel repro` by src/cli).
import '../../index.js'; // installs the Tensor methods and default threads when loaded alone
import { defaultConfig, runStable } from './run.js';

export async function run(args: string[]): Promise<number> {
  let quick = false;
  let out = 'runs/repro-stable';
  let maxDepth: number | null = null;
  let iters: number | null = null;
  let noFmnist = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--quick') quick = true;
    else if (a === '--out') {
      if (i + 1 >= args.length) { console.error('--out needs a directory'); return 2; }
      out = args[++i];
    } else if (a === '--max-depth' || a === '--iters') {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 4) { console.error(`${a} needs an integer ≥ 4`); return 2; }
      if (a === '--max-depth') maxDepth = v; else iters = v;
    } else if (a === '--no-fmnist') noFmnist = true;
    else if (a === '--help' || a === '-h') {
      console.log('keel repro stable [--quick] [--out DIR] [--max-depth N] [--iters K] [--no-fmnist]: Haber & Ruthotto (2017) stable architectures — growth at init vs depth (dense, and conv on Fashion-MNIST states), multi-level training on swiss roll, peaks, ellipses and a Fashion-MNIST subset (depth ≤ N), eigenvalues (exact for dense blocks, Arnoldi Ritz values for conv blocks); --iters K sets the 2-D sets\' steps per level; writes DIR/results.json and SVG plots');
      return 0;
    } else rest.push(a);
  }
  if (rest.length) { console.error(`keel repro stable: unknown arguments ${rest.join(' ')}`); return 2; }
  const cfg = defaultConfig(quick, out);
  if (maxDepth !== null) {
    // training depths 4, 8, … up to maxDepth; the growth-at-init sweep reaches it too
    cfg.trainDepths = [];
    for (let d = 4; d <= maxDepth; d *= 2) cfg.trainDepths.push(d);
    cfg.initDepths = [...new Set([...cfg.initDepths.filter((d) => d <= maxDepth), cfg.trainDepths.at(-1)!])].sort((x, y) => x - y);
    if (!cfg.initDepths.some((d) => d >= 256)) cfg.initDepths.push(256);
    if (cfg.fmnist) {
      // Fashion-MNIST levels up to maxDepth too (their steps per level with them)
      const keep = cfg.fmnist.depths.map((d) => d <= maxDepth);
      cfg.fmnist.depths = cfg.fmnist.depths.filter((_, i) => keep[i]);
      cfg.fmnist.iters = cfg.fmnist.iters.filter((_, i) => keep[i]);
    }
    if (cfg.convInit) cfg.convInit.depths = cfg.convInit.depths.filter((d) => d <= maxDepth);
  }
  if (iters !== null) cfg.itersPerLevel = iters;
  if (noFmnist) cfg.fmnist = null;
  await runStable(cfg);
  return 0;
}
