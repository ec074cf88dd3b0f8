#!/usr/bin/env node
// Small-op overhead: 1e5 × `a.add(a)` on a 4-element float32 tensor, in Keel
// (explicit dispose per result; one scope around the loop; the raw
// keel.ops.add; the bare addon call, boxed and unboxed; a bare N-API call) against PyTorch's own
// Python loop (time.perf_counter_ns around the loop). Each contender runs in
// its own process at the same thread count, taking turns round after round;
// medians over rounds.
//   node bench/overhead.mjs [--quick] [--threads 1,2] [--baseline <dist folder>] [--rounds n]
// --baseline times another build of Keel (its dist/, with its build/keel.node
// beside it) in the same rounds: a before/after comparison on one machine state.
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import {
  THREAD_NOTE, fmt, pauseFor, machine, median, nodeWorker, now, pairedRatio, parseArgs, pinKeelThreads, pythonWorker, pytorchVersion, ratio,
  roundRobin, serve, table, threadCounts, writeResults,
} from './lib/harness.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const args = parseArgs();
const N = args.quick ? 10_000 : 100_000;
const ri = args.rest.indexOf('--rounds');
const REPS = ri >= 0 ? Number(args.rest[ri + 1]) : args.quick ? 3 : 9;
const bi = args.rest.indexOf('--baseline');
const BASELINE = bi >= 0 ? resolve(args.rest[bi + 1]) : null;
const BASELINE_VARIANTS = ['a.add(a); r.dispose()', 'keel.scope(() => loop of a.add(a))', 'addon floor: native.call(add) + native.free'];

/** Keel's side: {variant, n} → seconds for n ops of that variant. */
async function keelWorker(threads) {
  const dist = process.env.KEEL_DIST ? pathToFileURL(process.env.KEEL_DIST).href + '/' : new URL('../dist/', import.meta.url).href;
  const keel = await import(dist + 'index.js');
  const { native } = await import(dist + 'native/binding.js');
  pinKeelThreads(keel, threads);
  const a = keel.tensor([1, 2, 3, 4], { dtype: 'float32' });
  const op = native.resolveOp('add', 'Tensor');
  const id = a.id;
  const add = keel.ops.add;
  const variants = {
    'a.add(a); r.dispose()': (n) => {
      for (let i = 0; i < n; i++) a.add(a).dispose();
    },
    'keel.scope(() => loop of a.add(a))': (n) => {
      keel.scope(() => {
        for (let i = 0; i < n; i++) a.add(a);
      });
    },
    'keel.ops.add(a, a); r.dispose()': (n) => {
      for (let i = 0; i < n; i++) add(a, a).dispose();
    },
    'addon floor: native.call(add) + native.free': (n) => {
      for (let i = 0; i < n; i++) native.free(native.call(op, id, id, undefined));
    },
    'addon floor, unboxed: native.binary(add) + native.free': (n) => {
      if (!native.binary) throw new Error('this addon has no unboxed entries');
      for (let i = 0; i < n; i++) native.free(native.binary(0, id, id));
    },
    'N-API floor: native.numel(h)': (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += native.numel(id);
      if (s !== 4 * n) throw new Error('numel');
    },
  };
  const before = keel.memory().tensors;
  await serve(({ variant, n }) => {
    if (variant === 'leak check') return { leaked: keel.memory().tensors - before };
    const fn = variants[variant];
    if (!fn) throw new Error(`no variant '${variant}'`);
    const t0 = now();
    fn(n);
    return { seconds: (now() - t0) / 1e9 };
  });
}

const KEEL_VARIANTS = [
  'a.add(a); r.dispose()',
  'keel.scope(() => loop of a.add(a))',
  'keel.ops.add(a, a); r.dispose()',
  'addon floor: native.call(add) + native.free',
  'addon floor, unboxed: native.binary(add) + native.free',
  'N-API floor: native.numel(h)',
];

const PY = `
a = torch.tensor([1., 2., 3., 4.], dtype=torch.float32)
def add_method(n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        a.add(a)
    return time.perf_counter_ns() - t0
def plus(n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        a + a
    return time.perf_counter_ns() - t0
def empty_loop(n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        pass
    return time.perf_counter_ns() - t0
variants = {'a.add(a)': add_method, 'a + a': plus, 'empty Python loop': empty_loop}
def handle(req):
    return {'seconds': variants[req['variant']](req['n']) / 1e9}
`;
const PY_VARIANTS = ['a.add(a)', 'a + a', 'empty Python loop'];

async function main() {
  if (args.worker === 'keel') return keelWorker(args.threads[0]);
  const info = await machine();
  const torch = pytorchVersion();
  const runs = [];
  for (const threads of threadCounts(args)) {
    const keelW = nodeWorker(SCRIPT, 'keel', threads);
    const pyW = torch ? pythonWorker(PY, threads) : null;
    let baseW = null;
    if (BASELINE) {
      process.env.KEEL_DIST = BASELINE;
      baseW = nodeWorker(SCRIPT, 'keel', threads, 'Keel baseline');
      delete process.env.KEEL_DIST;
    }
    const contenders = {};
    for (const v of KEEL_VARIANTS) contenders[`Keel: ${v}`] = keelW;
    if (baseW) for (const v of BASELINE_VARIANTS) contenders[`Keel baseline: ${v}`] = baseW;
    if (pyW) for (const v of PY_VARIANTS) contenders[`PyTorch: ${v}`] = pyW;
    const variantOf = (name) => name.slice(name.indexOf(': ') + 2);
    let run;
    try {
      // warm up: JIT, the op handle, the allocator
      for (const [name, w] of Object.entries(contenders)) await w.request({ variant: variantOf(name), n: Math.min(N, 20_000) });
      const seconds = await roundRobin(contenders, REPS, (name) => ({ variant: variantOf(name), n: N }), { pauseMs: pauseFor(threads) });
      const us = Object.fromEntries(Object.entries(seconds).map(([k, v]) => [k, v.map((s) => (s / N) * 1e6)]));
      const ref = us['PyTorch: a.add(a)'];
      const { leaked } = await keelW.request({ variant: 'leak check' });
      run = {
        threads,
        leakedTensors: leaked,
        usPerOp: Object.fromEntries(Object.entries(us).map(([k, v]) => [k, median(v)])),
        overPytorch: ref ? Object.fromEntries(Object.entries(us).map(([k, v]) => [k, pairedRatio(v, ref)])) : null,
        // fastest round ÷ PyTorch's fastest: load only ever adds time, so on a shared machine this is the steadier figure
        minOverPytorch: ref ? Object.fromEntries(Object.entries(us).map(([k, v]) => [k, Math.min(...v) / Math.min(...ref)])) : null,
        samples: us,
      };
    } finally {
      await keelW.close();
      if (baseW) await baseW.close();
      if (pyW) await pyW.close();
    }
    runs.push(run);
  }

  const out = [];
  out.push(`# overhead: ${N.toExponential(0)} × a.add(a), 4-element float32, median over ${REPS} rounds${args.quick ? ' (--quick)' : ''}`);
  out.push(`machine: ${info.cpu}, ${info.cores} cores; Node ${info.node}; libtorch ${info.libtorch}; BLAS ${info.blasKind}; PyTorch ${torch ?? 'unavailable'}`);
  out.push(THREAD_NOTE);
  if (BASELINE) out.push(`baseline: ${BASELINE}`);
  out.push('ratio: median over rounds of the per-round ratio to PyTorch a.add(a) (every variant takes its turn each round); fastest ÷ fastest: each one\'s fastest round over PyTorch a.add(a)\'s');
  out.push('');
  const rows = [];
  for (const run of runs) {
    for (const [name, us] of Object.entries(run.usPerOp)) {
      rows.push([String(run.threads), name, fmt(us), run.overPytorch ? ratio(run.overPytorch[name]) : 'n/a', run.minOverPytorch ? ratio(run.minOverPytorch[name]) : 'n/a']);
    }
  }
  out.push(table(['threads', 'what', 'µs/op', '÷ PyTorch a.add(a)', 'fastest ÷ fastest'], rows));
  out.push('');
  for (const run of runs) {
    if (run.leakedTensors !== 0) out.push(`WARNING: ${run.leakedTensors} tensors were left alive by the Keel loops (${run.threads} threads)`);
  }
  out.push('goal (issue 18 §1): Keel a.add(a) + dispose() ≤ 0.8× PyTorch a.add(a); inside keel.scope ≤ 1.0×');
  console.log(out.join('\n'));
  const file = writeResults('overhead', { bench: 'overhead', quick: args.quick, n: N, rounds: REPS, machine: info, threadNote: THREAD_NOTE, baseline: BASELINE, runs });
  console.log(`\nwrote ${file}`);
}

await main();
