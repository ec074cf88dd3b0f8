// `keel repro stable [--quick] [--out DIR] [--resume] [--jobs N]` (declared in src/cli/program.ts).
import '../../index.js'; // installs the Tensor methods and default threads when loaded alone
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { runStudy } from '../study.js';
import { writeCharts } from './charts.js';
import { defaultConfig } from './run.js';
import { study } from './study.js';

/** `keel repro stable [options]` (the whole command line: src/cli/program.ts); returns the exit code. */
export async function run(args: string[]): Promise<number> {
  return (await import('../../cli/main.js')).main(['repro', 'stable', ...args]);
}

/** `keel repro stable` with its parsed options; returns the exit code. */
export async function runFromOptions(o: Record<string, unknown>): Promise<number> {
  const quick = o.quick === true;
  const out = o.out as string;
  const maxDepth = (o.maxDepth as number | undefined) ?? null;
  const iters = (o.iters as number | undefined) ?? null;
  const noFmnist = o.fmnist === false;
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
  const t0 = Date.now();
  const results = await runStudy(study, cfg, {
    out, resume: o.resume === true,
    ...(o.jobs !== undefined ? { jobs: o.jobs as number } : {}),
    ...(o.progress === false ? { progress: false } : {}),
  });
  results.files = [...(await writeCharts(results, out)), 'results.json'];
  writeFileAtomic(join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(study.report(results));
  console.log(`\nwrote ${results.files.length} files to ${out} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}
