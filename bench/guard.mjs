#!/usr/bin/env node
// The NaN guard's cost on healthy steps, against PyTorch's anomaly mode.
//   Keel:    a LeNet-5 training step (forward, cross-entropy, zero_grad,
//            backward, AdamW step, loss read) plain vs through
//            `guard.stepSync(computeLoss)` with its defaults (fused loss +
//            gradient check, updated-parameter check with the pre-step copy,
//            forward watch for sigmoid saturation, gradient-norm statistics).
//   PyTorch: the same step plain vs inside `torch.autograd.detect_anomaly()`
//            (forward and backward), the usual way to hunt a NaN in PyTorch.
// Each side runs in its own process and alternates its plain and checked
// step, step by step, so load from elsewhere hits both alike; the overhead is
// the median over all pairs of the per-pair ratio.
//   node bench/guard.mjs [--quick] [--threads 1,2] [--batch 128,32]
import { fileURLToPath } from 'node:url';
import {
  THREAD_NOTE, fmt, machine, median, nodeWorker, now, parseArgs, pauseFor, pinKeelThreads, pythonWorker, ratio,
  serve, table, threadCounts, writeResults,
} from './lib/harness.mjs';
import { TORCH_LENET5 } from './lib/reference-models.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const args = parseArgs();
const ROUNDS = args.quick ? 3 : 9;
const MIN_SECONDS = args.quick ? 0.3 : 1.5;
const bi = args.rest.indexOf('--batch');
const BATCHES = bi >= 0 ? args.rest[bi + 1].split(',').map(Number) : [128, 32];
// the default policy (raise: no pre-update copy) at each batch, and skip (copies the
// parameters and optimizer state before each update so that it can undo one) at the first
const CASES = [...BATCHES.map((b) => [b, 'raise']), [BATCHES[0], 'skip']];

async function keelWorker(threads) {
  const keel = await import('../dist/index.js');
  pinKeelThreads(keel, threads);
  const setups = new Map();
  function setup(guarded, batch, policy = 'raise') {
    const key = `${guarded}/${batch}/${policy}`;
    let s = setups.get(key);
    if (s) return s;
    keel.manualSeed(0);
    const m = new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 });
    const x = keel.randn([batch, 1, 28, 28]).keep();
    const y = keel.randint(0, 10, [batch]).keep();
    const opt = new keel.optim.AdamW(m.parameters(), { lr: 1e-3, weightDecay: 1e-2 });
    const guard = guarded ? new keel.Guard({ model: m, optimizer: opt, policy }) : null;
    s = { m, x, y, opt, guard };
    setups.set(key, s);
    return s;
  }
  function step({ m, x, y, opt, guard }) {
    if (guard) return guard.stepSync(() => keel.losses.crossEntropy(m.call(x), y)).loss;
    return keel.scope(() => {
      const loss = keel.losses.crossEntropy(m.call(x), y);
      opt.zeroGrad(true);
      loss.backward();
      opt.step();
      return loss.item();
    });
  }
  // interleaved: plain and guarded steps alternate (order flipped every pair), each timed
  // on its own, so that load from elsewhere hits both alike; per-pair ratios come back
  await serve(({ batch, iters, policy }) => {
    const a = setup(false, batch);
    const b = setup(true, batch, policy);
    const ratios = [];
    let plain = 0;
    let guarded = 0;
    for (let i = 0; i < iters; i++) {
      const order = i % 2 === 0 ? [a, b] : [b, a];
      const t = [0, 0];
      for (const s of order) {
        const t0 = now();
        const loss = step(s);
        if (!Number.isFinite(loss)) throw new Error(`non-finite loss ${loss}`);
        t[s === a ? 0 : 1] = (now() - t0) / 1e9;
      }
      plain += t[0];
      guarded += t[1];
      ratios.push(t[1] / t[0]);
    }
    return { plain, other: guarded, ratios, tensors: keel.memory().tensors };
  });
}

const PY = `
import math
import torch.nn as nn
import torch.nn.functional as F

${TORCH_LENET5}
import warnings
warnings.filterwarnings('ignore')
setups = {}
def setup(anomaly, batch):
    key = (anomaly, batch)
    if key not in setups:
        torch.manual_seed(0)
        m = LeNet5()
        x = torch.randn(batch, 1, 28, 28)
        y = torch.randint(0, 10, (batch,))
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-2)
        setups[key] = (m, x, y, opt)
    return setups[key]

def step(m, x, y, opt, anomaly):
    if anomaly:
        with torch.autograd.detect_anomaly():
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
    else:
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
    opt.step()
    return loss.item()

def handle(req):
    a = setup(False, req['batch'])
    b = setup(True, req['batch'])
    plain = 0.0
    other = 0.0
    ratios = []
    for i in range(req['iters']):
        t = [0.0, 0.0]
        for anomaly in ((False, True) if i % 2 == 0 else (True, False)):
            t0 = time.perf_counter_ns()
            last = step(*(b if anomaly else a), anomaly)
            t[1 if anomaly else 0] = (time.perf_counter_ns() - t0) / 1e9
            if not math.isfinite(last):
                raise RuntimeError('non-finite loss')
        plain += t[0]
        other += t[1]
        ratios.append(t[1] / t[0])
    return {'plain': plain, 'other': other, 'ratios': ratios}
`;

/** Sizes each side's loop to ≥ MIN_SECONDS, then ROUNDS rounds taking turns; per-round sums and every per-pair ratio. */
async function measure(contenders, batch, pauseMs, policy) {
  const iters = {};
  for (const [name, w] of Object.entries(contenders)) {
    await w.request({ batch, iters: 2, policy });
    const r = await w.request({ batch, iters: 2, policy });
    iters[name] = Math.max(4, Math.round(MIN_SECONDS / ((r.plain + r.other) / 2)));
  }
  const out = Object.fromEntries(Object.keys(contenders).map((k) => [k, { plainMs: [], otherMs: [], roundRatios: [], pairRatios: [] }]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, w] of Object.entries(contenders)) {
      if (pauseMs > 0) await new Promise((ok) => setTimeout(ok, pauseMs));
      const r = await w.request({ batch, iters: iters[name], policy });
      const o = out[name];
      o.plainMs.push((r.plain / iters[name]) * 1e3);
      o.otherMs.push((r.other / iters[name]) * 1e3);
      o.roundRatios.push(r.other / r.plain);
      o.pairRatios.push(...r.ratios);
    }
  }
  return out;
}

async function main() {
  if (args.worker === 'keel') return keelWorker(args.threads[0]);
  const info = await machine();
  const torch = info.pytorch;
  const threads = threadCounts(args);
  const results = [];
  for (const n of threads) {
    const keelW = nodeWorker(SCRIPT, 'keel', n, 'Keel');
    const pyW = torch ? pythonWorker(PY, n) : null;
    try {
      for (const [batch, policy] of CASES) {
        process.stderr.write(`[${n} thread${n > 1 ? 's' : ''}] LeNet-5 batch ${batch}, guard policy ${policy}: timing...\n`);
        const m = await measure({ keel: keelW, ...(pyW ? { pytorch: pyW } : {}) }, batch, pauseFor(n), policy);
        results.push({
          batch, policy, threads: n,
          msPerStep: {
            keel: median(m.keel.plainMs), keelGuard: median(m.keel.otherMs),
            pytorch: m.pytorch ? median(m.pytorch.plainMs) : null, pytorchAnomaly: m.pytorch ? median(m.pytorch.otherMs) : null,
          },
          guardOverPlain: median(m.keel.pairRatios),
          guardOverPlainByRound: median(m.keel.roundRatios),
          anomalyOverPlain: m.pytorch ? median(m.pytorch.pairRatios) : null,
          anomalyOverPlainByRound: m.pytorch ? median(m.pytorch.roundRatios) : null,
          pairs: m.keel.pairRatios.length,
          samples: m,
        });
      }
    } finally {
      await keelW.close();
      if (pyW) await pyW.close();
    }
  }
  const header = ['LeNet-5 step', 'guard policy', 'threads', 'Keel ms/step', 'Keel + guard', 'guard overhead', 'PyTorch ms/step', 'PyTorch + detect_anomaly', 'detect_anomaly overhead'];
  const pct = (r) => (r == null ? 'n/a' : `${((r - 1) * 100).toFixed(1)} % (${ratio(r)})`);
  const rows = results.map((r) => [
    `batch ${r.batch}`, r.policy, String(r.threads), fmt(r.msPerStep.keel), fmt(r.msPerStep.keelGuard), `${pct(r.guardOverPlain)}; by round ${ratio(r.guardOverPlainByRound)}`,
    fmt(r.msPerStep.pytorch), fmt(r.msPerStep.pytorchAnomaly), `${pct(r.anomalyOverPlain)}; by round ${ratio(r.anomalyOverPlainByRound)}`,
  ]);
  const out = [];
  out.push(`# NaN guard on healthy steps vs torch.autograd.detect_anomaly; ms per step, median over ${ROUNDS} rounds of ≥ ${MIN_SECONDS}s${args.quick ? ' (--quick)' : ''}`);
  out.push(`machine: ${info.cpu}, ${info.cores} cores; Node ${info.node}; libtorch ${info.libtorch}; BLAS ${info.blasKind}; PyTorch ${torch ?? 'unavailable'} (/usr/bin/python3)`);
  out.push(THREAD_NOTE);
  out.push('step: forward, cross-entropy, zero_grad(set_to_none), backward, AdamW(lr 1e-3, wd 1e-2) step, loss read; fixed random batch. Goal: guard overhead ≤ 3 %');
  out.push('each side alternates its plain and checked step (order flipped every pair), each step timed alone; overhead = median over all pairs of checked ÷ plain; "by round" = median over rounds of the ratio of per-round sums');
  out.push('');
  out.push(table(header, rows));
  console.log(out.join('\n'));
  const file = writeResults('guard', { bench: 'guard', quick: args.quick, rounds: ROUNDS, minSeconds: MIN_SECONDS, machine: info, threadNote: THREAD_NOTE, results });
  console.log(`\nwrote ${file}`);
}

await main();
