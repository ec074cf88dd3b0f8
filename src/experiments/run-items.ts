// The grid machinery every study shares: work items run in a process pool
// (runPool, jobs ≥ 1, one libtorch thread per child) or one after another in
// this process (jobs = 0), with the same display either way: a bar on a TTY
// and a line per finished item (itemLine, src/train/progress.ts). Results come
// back in the items' order; onResult sees each as it finishes (to save).
import { createProgress, itemLine } from '../train/progress.js';
import { runPool, type PoolResult } from './pool.js';

export interface RunItemsOptions<I, R> {
  /** child processes; 0 runs every item in this process */
  jobs: number;
  /** the worker module for the pool (exports `runItem`) */
  worker: URL;
  /** the in-process runner (default: the worker module's runItem) */
  here?: (item: I) => R | Promise<R>;
  /** the lines' prefix: '[name] 3/40 …'; '' for '[3/40] …' */
  name: string;
  /** the bar's label (default '[name]') */
  barLabel?: string;
  label: (item: I) => string;
  /** what to say of a finished item */
  describe?: (value: R, item: I) => string;
  onResult?: (r: PoolResult<R>, index: number) => void;
  /** where lines go (default stderr) */
  log?: (line: string) => void;
  /** the bar on a TTY (default true) */
  progress?: boolean;
  /** items of the grid done before (a resumed grid): lines and bar count from there */
  before?: number;
  /** in this process, whether the k-th finished item gets a line (default: every one; fast items may want fewer) */
  lineFor?: (item: I, k: number, n: number) => boolean;
}

export async function runItems<I, R>(items: readonly I[], o: RunItemsOptions<I, R>): Promise<PoolResult<R>[]> {
  const before = o.before ?? 0;
  if (o.jobs >= 1) {
    if (items.length === 0) return [];
    return runPool<I, R>(items, {
      worker: o.worker, jobs: Math.min(o.jobs, items.length), name: o.name, before, label: (it) => o.label(it),
      ...(o.barLabel !== undefined ? { barLabel: o.barLabel } : {}),
      ...(o.describe ? { describe: o.describe } : {}),
      ...(o.onResult ? { onResult: o.onResult } : {}),
      ...(o.log ? { log: o.log } : {}),
      ...(o.progress === false ? { progress: false } : {}),
    });
  }
  const run = o.here ?? ((await import(o.worker.href)) as { runItem: (item: I) => R | Promise<R> }).runItem;
  const total = before + items.length;
  const bar = o.progress !== false && process.stderr.isTTY && items.length > 0
    ? createProgress({ total, label: o.barLabel ?? `[${o.name}]`, start: before, every: 0 }) : undefined;
  const log = bar ? (l: string) => bar.log(l) : o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const out: PoolResult<R>[] = [];
  const t0 = performance.now();
  let failed = 0;
  try {
    for (const [i, it] of items.entries()) {
      const s = performance.now();
      let r: PoolResult<R>;
      try {
        r = { ok: true, value: await run(it), wallMs: performance.now() - s };
      } catch (e) {
        r = { ok: false, error: `${o.label(it)} threw: ${(e as Error).stack ?? String(e)}`, wallMs: performance.now() - s };
        failed++;
      }
      out.push(r);
      o.onResult?.(r, i);
      if (o.lineFor === undefined || o.lineFor(it, i + 1, items.length)) {
        log(itemLine({
          ...(o.name ? { name: o.name } : {}), done: before + i + 1, total, doneHere: i + 1, label: o.label(it), seconds: r.wallMs / 1000,
          what: r.ok ? (o.describe ? o.describe(r.value, it) : '') : `FAILED: ${r.error.split('\n')[0]}`, elapsed: (performance.now() - t0) / 1000, failed,
        }));
      }
      bar?.update(before + i + 1);
    }
  } finally {
    bar?.stop();
  }
  return out;
}
