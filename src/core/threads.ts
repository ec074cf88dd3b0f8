// Threads: libtorch picks half the cores by default (hardware_concurrency >> 1,
// which is 1 on this 2-core machine); Keel uses all of them unless told
// otherwise by KEEL_NUM_THREADS or setNumThreads().
import { availableParallelism } from 'node:os';
import { native } from '../native/binding.js';

function threadsFromEnv(): number | undefined {
  const raw = process.env.KEEL_NUM_THREADS;
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`KEEL_NUM_THREADS must be a positive integer, got '${raw}'`);
  }
  return n;
}

/** Where the thread count came from: 'KEEL_NUM_THREADS', 'all cores' or 'setNumThreads'. */
export let threadSource = 'all cores';

export function applyDefaultThreads(): void {
  const fromEnv = threadsFromEnv();
  threadSource = fromEnv === undefined ? 'all cores' : 'KEEL_NUM_THREADS';
  native.setNumThreads(fromEnv ?? availableParallelism());
}

/** Intra-op threads libtorch uses. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  native.setNumThreads(n);
  threadSource = 'setNumThreads';
}

export function getNumThreads(): number {
  return native.getNumThreads();
}
