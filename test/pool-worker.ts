// A worker module for test/pool.test.ts: what runItem does is chosen by the item.
import { existsSync, writeFileSync } from 'node:fs';
import * as keel from 'keel';

export interface PoolTestItem {
  kind: 'square' | 'throw' | 'exit' | 'threads' | 'tensor' | 'hang';
  x: number;
  /** milliseconds to wait first (so items finish out of order) */
  delay?: number;
  /** a file to wait for before finishing (written by another item's `signal`) */
  waitFor?: string;
  /** a file to write once this item is done */
  signal?: string;
}

export async function runItem(item: PoolTestItem): Promise<unknown> {
  if (item.delay) await new Promise((r) => setTimeout(r, item.delay));
  if (item.waitFor) {
    const deadline = Date.now() + 120_000;
    while (!existsSync(item.waitFor)) {
      if (Date.now() > deadline) throw new Error(`waited 120 s for ${item.waitFor}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  if (item.signal) writeFileSync(item.signal, 'done');
  switch (item.kind) {
    case 'square': return { x: item.x, y: item.x * item.x, pid: process.pid };
    case 'throw': throw new RangeError(`bad item x=${item.x}`);
    case 'exit': process.exit(3);
    // eslint-disable-next-line no-fallthrough
    case 'hang':
      // announce this child's pid (the pool forwards children's output to stderr), then never finish
      process.stdout.write(`pool-worker pid ${process.pid}\n`);
      return new Promise(() => setInterval(() => {}, 1000));
    case 'threads': return { threads: keel.getNumThreads(), pid: process.pid };
    case 'tensor': return keel.scope(() => keel.tensor([item.x, 2 * item.x], { dtype: 'float64' }).data());
  }
}
