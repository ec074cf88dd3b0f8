// Run by test/pool.test.ts: a pool of two children that never finish; the test
// sends this process SIGINT and checks that the children are gone.
const { runPool } = (await import(new URL('../../dist/experiments/pool.js', import.meta.url).href)) as typeof import('../dist/experiments/pool.js');
await runPool([{ kind: 'hang', x: 0 }, { kind: 'hang', x: 1 }], { worker: new URL('./pool-worker.js', import.meta.url), jobs: 2, log: null });
