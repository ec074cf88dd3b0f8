// runPool (src/experiments/pool.ts): results in input order whatever the
// completion order, a throwing item becomes an error result naming the item,
// a child that dies (process.exit(3)) is reported and the other items still
// finish, children run one libtorch thread, a worker module that cannot start
// fails every item with the reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PoolResult, PoolOptions } from '../dist/experiments/pool.js';
import type { PoolTestItem } from './pool-worker.js';

const poolPath = new URL('../../dist/experiments/pool.js', import.meta.url).href;
const worker = new URL('./pool-worker.js', import.meta.url);
type RunPool = <I, R>(items: readonly I[], o: PoolOptions<I, R>) => Promise<PoolResult<R>[]>;
const { runPool } = (await import(poolPath)) as { runPool: RunPool };

const label = (it: PoolTestItem, i: number) => `#${i} ${it.kind}(${it.x})`;

test('runPool: results in input order although items finish out of order, across 2 children', async () => {
  // item 0 cannot finish before item 7 has: the other child must run items 1..7
  // while the first holds item 0, so completion order differs from input order
  // however slowly the children start (a timing-only version raced under load)
  const dir = mkdtempSync(join(tmpdir(), 'keel-pool-'));
  const done7 = join(dir, 'item7.done');
  const items: PoolTestItem[] = Array.from({ length: 8 }, (_, i) => ({ kind: 'square', x: i, ...(i === 0 ? { waitFor: done7 } : i === 7 ? { signal: done7 } : {}) }));
  const lines: string[] = [];
  const order: number[] = [];
  const rs = await runPool<PoolTestItem, { x: number; y: number; pid: number }>(items, {
    worker, jobs: 2, label, log: (s) => lines.push(s), onResult: (_, i) => order.push(i), describe: (v) => `y=${v.y}`,
  });
  assert.equal(rs.length, 8);
  rs.forEach((r, i) => {
    assert.ok(r.ok, `item ${i} failed`);
    if (r.ok) assert.deepEqual([r.value.x, r.value.y], [i, i * i]);
  });
  assert.equal(new Set(rs.map((r) => (r.ok ? r.value.pid : 0))).size, 2, 'two child processes shared the work');
  assert.notDeepEqual(order, [...order].sort((a, b) => a - b), 'completion order differs from input order');
  assert.equal(order[7], 0, 'item 0 finished last');
  assert.equal(lines.length, 8);
  assert.match(lines[7], /^\[pool\] 8\/8 #0 square\(0\) \(\d+\.\d s\) y=0/);
  rmSync(dir, { recursive: true, force: true });
});

test('runPool: a throwing item gives an error result naming the item; the others finish', async () => {
  const items: PoolTestItem[] = [{ kind: 'square', x: 1 }, { kind: 'throw', x: 7 }, { kind: 'square', x: 3 }, { kind: 'square', x: 4 }];
  const rs = await runPool<PoolTestItem, { y: number }>(items, { worker, jobs: 2, label, log: null });
  assert.deepEqual(rs.map((r) => r.ok), [true, false, true, true]);
  const bad = rs[1];
  assert.ok(!bad.ok);
  if (!bad.ok) {
    assert.match(bad.error, /^#1 throw\(7\) threw: RangeError: bad item x=7/);
    assert.match(bad.error, /pool-worker/, 'with the stack');
  }
  assert.deepEqual(rs.filter((r) => r.ok).map((r) => (r.ok ? r.value.y : 0)), [1, 9, 16]);
});

test('runPool: a child that exits (code 3) is reported for its item, a fresh child runs the rest', async () => {
  const items: PoolTestItem[] = [
    { kind: 'square', x: 0 }, { kind: 'exit', x: 1 }, { kind: 'square', x: 2 }, { kind: 'exit', x: 3 },
    { kind: 'square', x: 4 }, { kind: 'square', x: 5 }, { kind: 'square', x: 6 },
  ];
  const lines: string[] = [];
  const rs = await runPool<PoolTestItem, { y: number }>(items, { worker, jobs: 2, label, log: (s) => lines.push(s) });
  assert.deepEqual(rs.map((r) => r.ok), [true, false, true, false, true, true, true]);
  for (const i of [1, 3]) {
    const r = rs[i];
    assert.ok(!r.ok);
    if (!r.ok) assert.match(r.error, new RegExp(`child process exited with code 3 while running #${i} exit\\(${i}\\)`));
  }
  assert.deepEqual(rs.map((r) => (r.ok ? r.value.y : -1)), [0, -1, 4, -1, 16, 25, 36]);
  assert.match(lines[lines.length - 1], /7\/7 .*2 failed/);
});

test('runPool: children run 1 libtorch thread by default (threads: 2 when asked); typed arrays come back', async () => {
  const one = await runPool<PoolTestItem, { threads: number }>([{ kind: 'threads', x: 0 }], { worker, log: null });
  assert.ok(one[0].ok && one[0].value.threads === 1);
  const two = await runPool<PoolTestItem, { threads: number }>([{ kind: 'threads', x: 0 }], { worker, threads: 2, log: null });
  assert.ok(two[0].ok && two[0].value.threads === 2);
  const t = await runPool<PoolTestItem, Float64Array>([{ kind: 'tensor', x: 1.5 }], { worker, log: null });
  assert.ok(t[0].ok);
  if (t[0].ok) {
    assert.ok(t[0].value instanceof Float64Array);
    assert.deepEqual([...t[0].value], [1.5, 3]);
  }
});

test('runPool: a worker module without the export fails every item with the reason; bad options throw', async () => {
  const rs = await runPool<PoolTestItem, unknown>([{ kind: 'square', x: 1 }, { kind: 'square', x: 2 }, { kind: 'square', x: 3 }], { worker, exportName: 'nope', jobs: 2, log: null });
  assert.equal(rs.length, 3);
  for (const r of rs) {
    assert.ok(!r.ok);
    if (!r.ok) assert.match(r.error, /could not start .*exports no function 'nope'/s);
  }
  assert.throws(() => runPool([1], { worker, jobs: 0 }), /jobs must be a positive integer, got 0/);
  assert.deepEqual(await runPool([], { worker }), []);
});

test('runPool: SIGINT to the parent kills its children and exits 130', async () => {
  const { spawn } = await import('node:child_process');
  const script = new URL('./pool-sigint-child.js', import.meta.url);
  const p = spawn(process.execPath, [script.pathname], { stdio: ['ignore', 'ignore', 'pipe'] });
  const pids: number[] = [];
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no children announced within 30 s; stderr: ${err}`)), 30_000);
    p.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      for (const m of err.matchAll(/pool-worker pid (\d+)/g)) if (!pids.includes(Number(m[1]))) pids.push(Number(m[1]));
      if (pids.length === 2) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  // alive: exists and is not a zombie (a killed child whose parent is gone may wait to be reaped)
  const { readFileSync } = await import('node:fs');
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  assert.ok(pids.every(alive), 'both children run before the signal');
  p.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
  assert.equal(code, 130);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(pids.filter(alive), [], 'no child survives its parent');
});
