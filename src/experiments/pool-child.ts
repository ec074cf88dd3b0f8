// The child side of runPool (pool.ts): `node pool-child.js WORKER EXPORT THREADS`.
// Imports the worker module, sets libtorch's thread count, says 'ready', then
// runs each item it is sent and answers with the value or the error. It exits
// when the pool closes the IPC channel (also when the pool's process dies).
import { pathToFileURL } from 'node:url';
import type { FromChild, ToChild } from './pool.js';

const [workerPath, exportName, threadsArg] = process.argv.slice(2);

function send(m: FromChild): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(m, undefined, undefined, () => resolve());
  });
}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.stack && e.stack.includes(e.message) ? e.stack : `${e.message}\n${e.stack ?? ''}`;
  return String(e);
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('pool-child: must be started by runPool (no IPC channel)');
  process.on('disconnect', () => process.exit(0));
  let fn: (item: unknown) => unknown;
  try {
    const threads = Number(threadsArg);
    if (Number.isInteger(threads) && threads >= 1) {
      const keel = await import('../index.js');
      keel.setNumThreads(threads);
    }
    const mod = (await import(pathToFileURL(workerPath).href)) as Record<string, unknown>;
    const f = mod[exportName];
    if (typeof f !== 'function') throw new TypeError(`the worker module ${workerPath} exports no function '${exportName}' (it exports: ${Object.keys(mod).join(', ') || 'nothing'})`);
    fn = f as (item: unknown) => unknown;
  } catch (e) {
    await send({ type: 'fatal', error: describeError(e) });
    process.exit(1);
  }
  // one item at a time: the pool sends the next only after an answer
  process.on('message', async (m: ToChild) => {
    if (m.type !== 'run') return;
    const t0 = performance.now();
    let value: unknown;
    try {
      value = await fn(m.item);
    } catch (e) {
      await send({ type: 'failed', index: m.index, error: describeError(e), wallMs: performance.now() - t0 });
      return;
    }
    try {
      await send({ type: 'done', index: m.index, value, wallMs: performance.now() - t0 });
    } catch (e) {
      await send({ type: 'failed', index: m.index, error: `its result cannot be sent to the pool (not structured-cloneable): ${(e as Error).message}`, wallMs: performance.now() - t0 });
    }
  });
  await send({ type: 'ready' });
}

main().catch(async (e) => {
  process.stderr.write(`pool-child: ${describeError(e)}\n`);
  process.exit(1);
});
