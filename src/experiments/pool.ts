// A process pool for experiment grids: N child processes (child_process.fork of
// pool-child.js), each importing one worker module and running one libtorch
// thread, fed serialisable work items over IPC.
//
//   const results = await runPool(items, { worker: new URL('./my-worker.js', import.meta.url), jobs: 2 });
//
// The worker module exports `runItem(item)` (sync or async; any other name via
// `exportName`); its return value travels back by structured clone (typed
// arrays, Maps and nested objects survive; functions and class identities do
// not). Module-level state in the worker (a data cache) lives as long as its
// child. Results come back in the items' order, one per item:
//
//   { ok: true, value, wallMs }   the worker returned
//   { ok: false, error, wallMs }  it threw (the message and stack), or its
//                                 child died while running the item (exit code
//                                 or signal, with the tail of the child's
//                                 stderr); a fresh child takes the rest
//
// Small models train faster on one libtorch thread per process than on all
// cores in one process (less synchronisation per op), so the children run
// with 1 thread by default and the pool gets its speedup from processes.
// Progress goes to stderr as items finish. Children are killed when the pool
// ends, when the parent exits, and on SIGINT / SIGTERM (after which the pool
// rejects); a child whose parent dies exits when its IPC channel closes.
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createProgress, itemLine } from '../train/progress.js';

export type PoolResult<R> =
  | { ok: true; value: R; wallMs: number }
  | { ok: false; error: string; wallMs: number };

export interface PoolOptions<I, R> {
  /** the worker module (path or file: URL) exporting `exportName` */
  worker: string | URL;
  /** the worker's function name (default 'runItem') */
  exportName?: string;
  /** child processes (default: available cores; never more than the items) */
  jobs?: number;
  /** libtorch threads per child (default 1) */
  threads?: number;
  /** a short name of an item for progress lines and error messages (default: its index) */
  label?: (item: I, index: number) => string;
  /** what to add to the progress line of a finished item (e.g. its accuracy) */
  describe?: (value: R, item: I) => string;
  /** where progress lines go (default: stderr); null for silence */
  log?: ((line: string) => void) | null;
  /** the prefix of progress lines (default 'pool'; '' for none: '[3/40] …') */
  name?: string;
  /** the progress bar's label (default '[name]') */
  barLabel?: string;
  /** items of the same grid done before this pool (a resumed grid): the lines count from there */
  before?: number;
  /**
   * a progress bar (src/train/progress.ts) under the item lines, which then go
   * to stderr above it (default: when stderr is a TTY and log is not null)
   */
  progress?: boolean;
  /** called as each item finishes, in completion order (e.g. to save partial results) */
  onResult?: (result: PoolResult<R>, index: number) => void;
  /** extra environment for the children */
  env?: Record<string, string>;
}

/** Messages between the pool and its children. */
export type ToChild = { type: 'run'; index: number; item: unknown };
export type FromChild =
  | { type: 'ready' }
  | { type: 'done'; index: number; value: unknown; wallMs: number }
  | { type: 'failed'; index: number; error: string; wallMs: number }
  | { type: 'fatal'; error: string };

const CHILD = fileURLToPath(new URL('./pool-child.js', import.meta.url));
const TAIL = 4000;

/** Runs every item through the worker in `jobs` child processes; results in input order. */
export function runPool<I, R>(items: readonly I[], options: PoolOptions<I, R>): Promise<PoolResult<R>[]> {
  const jobs = options.jobs ?? availableParallelism();
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`runPool: jobs must be a positive integer, got ${jobs}`);
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`runPool: threads must be a positive integer, got ${threads}`);
  const worker = options.worker instanceof URL ? fileURLToPath(options.worker) : options.worker.startsWith('file:') ? fileURLToPath(options.worker) : options.worker;
  const exportName = options.exportName ?? 'runItem';
  const label = options.label ?? ((_: I, i: number) => `item ${i}`);
  const name = options.name ?? 'pool';
  const before = options.before ?? 0;
  // one progress display: a bar with rate and ETA on a TTY, the item lines above it
  const bar = (options.progress ?? (options.log !== null && process.stderr.isTTY === true)) && items.length > 0
    ? createProgress({ total: before + items.length, label: options.barLabel ?? `[${name}]`, start: before, every: 0 })
    : undefined;
  const log = bar ? (s: string) => bar.log(s) : options.log === undefined ? (s: string) => process.stderr.write(`${s}\n`) : options.log;
  const n = items.length;
  const results: (PoolResult<R> | undefined)[] = new Array(n);
  if (n === 0) return Promise.resolve([]);

  return new Promise<PoolResult<R>[]>((resolveAll, rejectAll) => {
    const t0 = performance.now();
    let next = 0;
    let finished = 0;
    let failed = 0;
    let settled = false;
    let everReady = false;
    let startFailures = 0;
    const live = new Set<ChildProcess>();

    const record = (index: number, r: PoolResult<R>): void => {
      if (results[index] !== undefined) return;
      results[index] = r;
      finished++;
      if (!r.ok) failed++;
      try {
        options.onResult?.(r, index);
      } catch (e) {
        log?.(`[${name || 'pool'}] onResult threw for ${label(items[index], index)}: ${(e as Error).message}`);
      }
      if (log) {
        const what = r.ok ? (options.describe ? options.describe(r.value, items[index]) : '') : `FAILED: ${r.error.split('\n')[0]}`;
        log(itemLine({ ...(name ? { name } : {}), done: before + finished, total: before + n, doneHere: finished, label: label(items[index], index), seconds: r.wallMs / 1000, what, elapsed: (performance.now() - t0) / 1000, failed }));
      }
      bar?.update(before + finished);
      if (finished === n) finish();
    };

    const killAll = (): void => {
      for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      live.clear();
    };
    const onExit = (): void => killAll();
    const onSignal = (signal: NodeJS.Signals): void => {
      killAll();
      cleanup();
      if (!settled) {
        settled = true;
        rejectAll(new Error(`runPool: interrupted by ${signal} after ${finished}/${n} items`));
      }
      // no one else listens: behave as the default handler would
      if (process.listenerCount(signal) === 0) process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    const cleanup = (): void => {
      bar?.stop();
      process.off('exit', onExit);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    const finish = (): void => {
      if (settled) return;
      settled = true;
      for (const c of live) if (c.connected) c.disconnect();
      killAll();
      cleanup();
      resolveAll(results as PoolResult<R>[]);
    };
    process.on('exit', onExit);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const spawn = (): void => {
      if (settled || next >= n) return;
      const child = fork(CHILD, [worker, exportName, String(threads)], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        serialization: 'advanced',
        env: { ...process.env, KEEL_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), ...options.env },
      });
      live.add(child);
      let tail = '';
      let current: { index: number; start: number } | null = null;
      let ready = false;
      let fatal: string | null = null;
      const keep = (chunk: Buffer): void => {
        const s = chunk.toString('utf8');
        process.stderr.write(s);
        tail = (tail + s).slice(-TAIL);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);

      const give = (): void => {
        if (settled || next >= n) {
          current = null;
          if (child.connected) child.disconnect();
          return;
        }
        const index = next++;
        current = { index, start: performance.now() };
        child.send({ type: 'run', index, item: items[index] } satisfies ToChild);
      };

      child.on('message', (m: FromChild) => {
        if (m.type === 'ready') {
          ready = true;
          everReady = true;
          give();
        } else if (m.type === 'fatal') {
          fatal = m.error;
        } else if (m.type === 'done' || m.type === 'failed') {
          current = null;
          record(m.index, m.type === 'done' ? { ok: true, value: m.value as R, wallMs: m.wallMs } : { ok: false, error: `${label(items[m.index], m.index)} threw: ${m.error}`, wallMs: m.wallMs });
          give();
        }
      });
      child.on('error', (e) => {
        // could not be spawned or sent to: treated as its exit below
        tail = (tail + `\n${e.message}`).slice(-TAIL);
      });
      child.on('exit', (code, signal) => {
        live.delete(child);
        if (settled) return;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        const last = tail.trim().split('\n').slice(-6).join('\n');
        if (!ready) {
          // the worker module could not start; if no child ever could (or too many
          // cannot), every child would do the same: the items not yet given out fail
          const error = `runPool: the worker ${worker} could not start (child exited with ${how})${fatal ? `: ${fatal}` : ''}${last ? `\n${last}` : ''}`;
          if (!everReady || ++startFailures > jobs + 2) {
            const from = next;
            next = n;
            for (let i = from; i < n; i++) record(i, { ok: false, error, wallMs: 0 });
            return;
          }
          spawn();
          return;
        }
        if (current !== null) {
          const { index, start } = current;
          current = null;
          record(index, { ok: false, error: `child process exited with ${how} while running ${label(items[index], index)}${last ? `; its last output:\n${last}` : ''}`, wallMs: performance.now() - start });
        }
        spawn();
      });
    };

    for (let j = 0; j < Math.min(jobs, n); j++) spawn();
  });
}
