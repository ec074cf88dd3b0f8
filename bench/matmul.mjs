#!/usr/bin/env node
// Matmul throughput: 512² and 2048² float32 `a.matmul(b)` in Keel against the
// same call in a plain libtorch C++ loop (bench/native/matmul_loop.cc, built
// here with g++ against the libtorch in build/libtorch.json) and against
// PyTorch-Python. Each contender runs in its own process at the same thread
// count; GFLOP/s = 2n³ / median seconds per call.
//   node bench/matmul.mjs [--quick] [--threads 1,2]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ROOT, THREAD_NOTE, Worker, fmt, pauseFor, libtorchConfig, machine, median, nodeWorker, now, pairedRatio, parseArgs, pinKeelThreads,
  pythonWorker, pytorchVersion, ratio, roundRobin, serve, table, threadCounts, writeResults,
} from './lib/harness.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const args = parseArgs();
const SIZES = [512, 2048];
const ROUNDS = args.quick ? 3 : 9;
const MIN_SECONDS = args.quick ? 0.05 : 0.4;

/** Keel's side: {n, iters} → seconds for `iters` calls of a.matmul(b) (each result disposed). */
async function keelWorker(threads) {
  const keel = await import('../dist/index.js');
  pinKeelThreads(keel, threads);
  keel.manualSeed(0);
  const inputs = new Map();
  await serve(({ n, iters }) => {
    if (!inputs.has(n)) inputs.set(n, [keel.randn([n, n], { dtype: 'float32' }), keel.randn([n, n], { dtype: 'float32' })]);
    const [a, b] = inputs.get(n);
    const t0 = now();
    for (let i = 0; i < iters; i++) a.matmul(b).dispose();
    return { seconds: (now() - t0) / 1e9, threads: keel.getNumThreads() };
  });
}

const PY = `
torch.manual_seed(0)
inputs = {}
def handle(req):
    n, iters = req['n'], req['iters']
    if n not in inputs:
        inputs[n] = (torch.randn(n, n, dtype=torch.float32), torch.randn(n, n, dtype=torch.float32))
    a, b = inputs[n]
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        torch.matmul(a, b)
    return {'seconds': (time.perf_counter_ns() - t0) / 1e9, 'threads': torch.get_num_threads()}
`;

/** Builds bench/native/matmul_loop.cc into build/bench/ once per source and libtorch. */
function buildCppLoop() {
  const cfg = libtorchConfig();
  const src = join(ROOT, 'bench', 'native', 'matmul_loop.cc');
  const outDir = join(ROOT, 'build', 'bench');
  const bin = join(outDir, 'matmul_loop');
  const stampFile = `${bin}.stamp`;
  const stamp = createHash('sha256').update(readFileSync(src)).update(JSON.stringify(cfg)).digest('hex');
  if (existsSync(bin) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return bin;
  mkdirSync(outDir, { recursive: true });
  const base = [
    '-std=c++17', '-O2', '-w', ...cfg.includes.map((i) => `-I${i}`), src, '-o', bin,
    `-L${cfg.lib}`, `-Wl,-rpath,${cfg.lib}`, '-Wl,--no-as-needed', '-ltorch', '-ltorch_cpu', '-lc10', '-Wl,--as-needed',
  ];
  console.error(`bench: compiling ${src} against ${cfg.lib} (once; cached in ${outDir})`);
  // the C++ ABI libtorch was built with is not recorded: try the compiler's default, then the old ABI (pip wheels)
  let r;
  for (const abi of [[], ['-D_GLIBCXX_USE_CXX11_ABI=0']]) {
    r = spawnSync('g++', [...abi, ...base], { encoding: 'utf8' });
    if (r.status === 0) {
      writeFileSync(stampFile, stamp);
      return bin;
    }
  }
  throw new Error(`g++ could not build ${src}:\n${r?.error?.message ?? r?.stderr}`);
}

async function main() {
  if (args.worker === 'keel') return keelWorker(args.threads[0]);
  const info = await machine();
  const torch = pytorchVersion();
  const bin = buildCppLoop();
  const runs = [];
  for (const threads of threadCounts(args)) {
    const workers = {
      keel: nodeWorker(SCRIPT, 'keel', threads),
      cpp: new Worker('C++ libtorch', bin, [String(threads)], threads),
      ...(torch ? { pytorch: pythonWorker(PY, threads) } : {}),
    };
    const run = { threads, sizes: {} };
    try {
      for (const n of SIZES) {
        // warm up each, then size the loop from the C++ floor so every contender runs the same calls
        for (const w of Object.values(workers)) await w.request({ n, iters: 1 });
        const one = (await workers.cpp.request({ n, iters: 1 })).seconds;
        const iters = Math.max(1, Math.round(MIN_SECONDS / one));
        const seconds = await roundRobin(workers, ROUNDS, () => ({ n, iters }), { pauseMs: pauseFor(threads) });
        const perCall = Object.fromEntries(Object.entries(seconds).map(([k, v]) => [k, v.map((s) => s / iters)]));
        const gflops = Object.fromEntries(Object.entries(perCall).map(([k, v]) => [k, (2 * n ** 3) / median(v) / 1e9]));
        run.sizes[n] = {
          iters,
          gflops,
          keelOverCpp: pairedRatio(perCall.cpp, perCall.keel),
          keelOverPytorch: perCall.pytorch ? pairedRatio(perCall.pytorch, perCall.keel) : null,
          secondsPerCall: perCall,
        };
      }
    } finally {
      for (const w of Object.values(workers)) await w.close();
    }
    runs.push(run);
  }

  const rows = [];
  for (const run of runs) {
    for (const n of SIZES) {
      const r = run.sizes[n];
      rows.push([String(run.threads), `${n}²`, fmt(r.gflops.keel), fmt(r.gflops.cpp), fmt(r.gflops.pytorch), ratio(r.keelOverCpp), ratio(r.keelOverPytorch)]);
    }
  }
  const out = [];
  out.push(`# matmul: float32 n×n a.matmul(b), GFLOP/s = 2n³ / median time per call over ${ROUNDS} rounds of ≥ ${MIN_SECONDS}s${args.quick ? ' (--quick)' : ''}`);
  out.push(`machine: ${info.cpu}, ${info.cores} cores; Node ${info.node}; libtorch ${info.libtorch}; BLAS ${info.blasKind} (${info.blas}); PyTorch ${torch ?? 'unavailable'}`);
  out.push(THREAD_NOTE);
  out.push('ratios: throughput ratio, median over rounds of the per-round ratio (contenders take turns each round)');
  out.push('');
  out.push(table(['threads', 'size', 'Keel GFLOP/s', 'C++ libtorch GFLOP/s', 'PyTorch GFLOP/s', 'Keel ÷ C++', 'Keel ÷ PyTorch'], rows));
  out.push('');
  out.push('goal: Keel ÷ C++ ≥ 0.95×');
  console.log(out.join('\n'));
  const file = writeResults('matmul', { bench: 'matmul', quick: args.quick, sizes: SIZES, rounds: ROUNDS, minSeconds: MIN_SECONDS, machine: info, threadNote: THREAD_NOTE, runs });
  console.log(`\nwrote ${file}`);
}

await main();
