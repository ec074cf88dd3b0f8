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
// Models (Keel): an MLP 784-256-256-10 at batch 64 with SGD and with AdamW,
// LeNet-5 at batch 32 and 128 (AdamW), ResNet-18 at batch 32 (AdamW); each
// under the guard policies raise and skip, and — where the user already
// computes the gradient norm — plain step + clipGradNorm(1) vs the guard with
// clipGradNorm: 1 (the guard must reuse its norm: goal ≤ 1 %). PyTorch's
// detect_anomaly runs beside LeNet-5 (raise) only.
//   node bench/guard.mjs [--quick] [--threads 1,2] [--models mlp-sgd,lenet-32,...] [--no-torch] [--processes N]
// --processes N runs each side in N processes, round r in process r mod N, and
// reports the spread of the per-process overheads (a process whose steps run
// slow, as the MLP's sometimes do, shows instead of hiding in a median).
// KEEL_DIST=/path/to/dist times another build of Keel; KEEL_BEFORE=/path/to/dist
// adds that build as a second Keel contender taking turns with this one, round
// by round (a before/after comparison under the same load).
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  Processes, THREAD_NOTE, fmt, machine, median, nodeWorker, now, parseArgs, pauseFor, perProcess, pinKeelThreads, processCount, pythonWorker, ratio,
  serve, table, threadCounts, writeResults,
} from './lib/harness.mjs';
import { TORCH_LENET5 } from './lib/reference-models.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const args = parseArgs();
const PROCESSES = processCount(args);
const ROUNDS = Math.max(args.quick ? 3 : 9, PROCESSES);
const MIN_SECONDS = args.quick ? 0.3 : 1.5;
const MODELS = {
  'mlp-sgd': { label: 'MLP 784-256-256-10, batch 64, SGD', model: 'mlp', batch: 64, opt: 'sgd' },
  'mlp-adamw': { label: 'MLP 784-256-256-10, batch 64, AdamW', model: 'mlp', batch: 64, opt: 'adamw' },
  'lenet-32': { label: 'LeNet-5, batch 32, AdamW', model: 'lenet', batch: 32, opt: 'adamw', torch: true },
  'lenet-128': { label: 'LeNet-5, batch 128, AdamW', model: 'lenet', batch: 128, opt: 'adamw', torch: true },
  'resnet-32': { label: 'ResNet-18, batch 32, AdamW', model: 'resnet', batch: 32, opt: 'adamw', rounds: 5, minIters: 2 },
};
const mi = args.rest.indexOf('--models');
const MODEL_KEYS = mi >= 0 ? args.rest[mi + 1].split(',') : Object.keys(MODELS);
for (const k of MODEL_KEYS) if (!MODELS[k]) throw new Error(`--models: unknown ${k} (${Object.keys(MODELS).join(', ')})`);
const NO_TORCH = args.rest.includes('--no-torch');
// every model under raise (the default: no pre-update copy) and skip (copies the parameters and
// optimizer state before each update so that it can undo one); clip: both sides clip the gradient norm
const CASES = [];
for (const k of MODEL_KEYS) for (const policy of ['raise', 'skip']) CASES.push({ key: k, policy, clip: false });
for (const k of MODEL_KEYS) if (k === 'mlp-sgd' || k === 'lenet-32') CASES.push({ key: k, policy: 'raise', clip: true });

async function keelWorker(threads, dist) {
  const keel = await import(dist ? pathToFileURL(`${dist}/index.js`).href : '../dist/index.js');
  pinKeelThreads(keel, threads);
  const setups = new Map();
  function setup(guarded, key, policy, clip) {
    const id = `${guarded}/${key}/${policy}/${clip}`;
    let s = setups.get(id);
    if (s) return s;
    const spec = MODELS[key];
    keel.manualSeed(0);
    let m;
    let x;
    if (spec.model === 'mlp') {
      m = new keel.nn.zoo.MLP({ inFeatures: 784, numClasses: 10, hidden: [256, 256] });
      x = keel.randn([spec.batch, 784]).keep();
    } else if (spec.model === 'lenet') {
      m = new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 });
      x = keel.randn([spec.batch, 1, 28, 28]).keep();
    } else {
      m = new keel.nn.zoo.ResNet18({ inChannels: 3, numClasses: 10 });
      x = keel.randn([spec.batch, 3, 32, 32]).keep();
    }
    m.train();
    const y = keel.randint(0, 10, [spec.batch]).keep();
    const opt = spec.opt === 'sgd'
      ? new keel.optim.SGD(m.parameters(), { lr: 1e-2 })
      : new keel.optim.AdamW(m.parameters(), { lr: 1e-3, weightDecay: 1e-2 });
    const guard = guarded ? new keel.Guard({ model: m, optimizer: opt, policy, ...(clip ? { clipGradNorm: 1 } : {}) }) : null;
    s = { m, x, y, opt, guard, clip, params: m.parameters() };
    setups.set(id, s);
    return s;
  }
  function step({ m, x, y, opt, guard, clip, params }) {
    if (guard) return guard.stepSync(() => keel.losses.crossEntropy(m.call(x), y)).loss;
    return keel.scope(() => {
      const loss = keel.losses.crossEntropy(m.call(x), y);
      opt.zeroGrad(true);
      loss.backward();
      if (clip) keel.optim.clipGradNorm(params, 1);
      opt.step();
      return loss.item();
    });
  }
  // interleaved: plain and guarded steps alternate (order flipped every pair), each timed
  // on its own, so that load from elsewhere hits both alike; per-pair ratios come back
  await serve(({ key, iters, policy, clip }) => {
    const a = setup(false, key, 'raise', clip);
    const b = setup(true, key, policy, clip);
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
async function measure(contenders, c, pauseMs) {
  const batch = MODELS[c.key].batch;
  const { key, policy, clip } = c;
  const iters = {};
  for (const [name, w] of Object.entries(contenders)) {
    await w.request({ key, batch, iters: 2, policy, clip });
    const r = await w.request({ key, batch, iters: 2, policy, clip });
    iters[name] = Math.max(MODELS[key].minIters ?? 4, Math.round(MIN_SECONDS / ((r.plain + r.other) / 2)));
  }
  const out = Object.fromEntries(Object.keys(contenders).map((k) => [k, { plainMs: [], otherMs: [], roundRatios: [], pairRatios: [] }]));
  const rounds = args.quick ? ROUNDS : Math.max(MODELS[key].rounds ?? ROUNDS, PROCESSES);
  for (let round = 0; round < rounds; round++) {
    for (const [name, w] of Object.entries(contenders)) {
      if (pauseMs > 0) await new Promise((ok) => setTimeout(ok, pauseMs));
      const r = await w.request({ key, batch, iters: iters[name], policy, clip, round });
      const o = out[name];
      o.plainMs.push((r.plain / iters[name]) * 1e3);
      o.otherMs.push((r.other / iters[name]) * 1e3);
      o.roundRatios.push(r.other / r.plain);
      o.pairRatios.push(...r.ratios);
    }
  }
  return out;
}

/** [25th, 50th, 75th] percentiles (linear between order statistics). */
function quartiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => {
    const i = q * (s.length - 1);
    const lo = Math.floor(i);
    return lo + 1 < s.length ? s[lo] + (s[lo + 1] - s[lo]) * (i - lo) : s[lo];
  };
  return [at(0.25), at(0.5), at(0.75)];
}

async function main() {
  if (args.worker === 'keel') return keelWorker(args.threads[0], process.env.KEEL_DIST);
  if (args.worker === 'keel-before') return keelWorker(args.threads[0], process.env.KEEL_BEFORE);
  const info = await machine();
  const torch = info.pytorch;
  const threads = threadCounts(args);
  const results = [];
  for (const n of threads) {
    const keelW = new Processes(Array.from({ length: PROCESSES }, () => nodeWorker(SCRIPT, 'keel', n, 'Keel')));
    const beforeW = process.env.KEEL_BEFORE ? nodeWorker(SCRIPT, 'keel-before', n, 'Keel (before)') : null;
    const pyW = torch && !NO_TORCH && MODEL_KEYS.some((k) => MODELS[k].torch) ? pythonWorker(PY, n) : null;
    try {
      for (const c of CASES) {
        const spec = MODELS[c.key];
        const withTorch = pyW && spec.torch && c.policy === 'raise' && !c.clip;
        process.stderr.write(`[${n} thread${n > 1 ? 's' : ''}] ${spec.label}, guard policy ${c.policy}${c.clip ? ', clipGradNorm' : ''}: timing...\n`);
        const m = await measure({ keel: keelW, ...(beforeW ? { before: beforeW } : {}), ...(withTorch ? { pytorch: pyW } : {}) }, c, pauseFor(n));
        results.push({
          model: c.key, label: spec.label, batch: spec.batch, policy: c.policy, clip: c.clip, threads: n,
          msPerStep: {
            keel: median(m.keel.plainMs), keelGuard: median(m.keel.otherMs),
            pytorch: m.pytorch ? median(m.pytorch.plainMs) : null, pytorchAnomaly: m.pytorch ? median(m.pytorch.otherMs) : null,
          },
          guardOverPlain: median(m.keel.pairRatios),
          guardOverPlainByRound: median(m.keel.roundRatios),
          beforeGuardOverPlain: m.before ? median(m.before.pairRatios) : null,
          beforeGuardOverPlainByRound: m.before ? median(m.before.roundRatios) : null,
          anomalyOverPlain: m.pytorch ? median(m.pytorch.pairRatios) : null,
          anomalyOverPlainByRound: m.pytorch ? median(m.pytorch.roundRatios) : null,
          pairs: m.keel.pairRatios.length,
          processes: PROCESSES,
          // per process (round r in process r mod N): the median of its rounds' checked ÷ plain
          guardOverPlainPerProcess: perProcess(m.keel.roundRatios, PROCESSES),
          // per round: plain and checked ms and their ratio; the thousands of per-pair ratios only as quartiles
          samples: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, {
            plainMs: v.plainMs, otherMs: v.otherMs, roundRatios: v.roundRatios, pairs: v.pairRatios.length, pairRatioQuartiles: quartiles(v.pairRatios),
          }])),
        });
      }
    } finally {
      await keelW.close();
      if (beforeW) await beforeW.close();
      if (pyW) await pyW.close();
    }
  }
  const before = Boolean(process.env.KEEL_BEFORE);
  const header = ['model, step', 'guard policy', 'threads', 'Keel ms/step', 'Keel + guard', 'guard overhead', ...(PROCESSES > 1 ? [`per process (${PROCESSES}), by round`] : []),
    ...(before ? ['before: guard overhead'] : []), 'PyTorch ms/step', 'PyTorch + detect_anomaly', 'detect_anomaly overhead'];
  const pctRange = (rs) => { const p = rs.map((r) => (r - 1) * 100); return `${Math.min(...p).toFixed(1)} … ${Math.max(...p).toFixed(1)} %`; };
  const pct = (r) => (r == null ? 'n/a' : `${((r - 1) * 100).toFixed(1)} % (${ratio(r)})`);
  const rows = results.map((r) => [
    r.label, r.clip ? `${r.policy}, both clip (guard reuses its norm)` : r.policy, String(r.threads), fmt(r.msPerStep.keel), fmt(r.msPerStep.keelGuard), `${pct(r.guardOverPlain)}; by round ${ratio(r.guardOverPlainByRound)}`,
    ...(PROCESSES > 1 ? [pctRange(r.guardOverPlainPerProcess)] : []),
    ...(before ? [`${pct(r.beforeGuardOverPlain)}; by round ${ratio(r.beforeGuardOverPlainByRound)}`] : []),
    fmt(r.msPerStep.pytorch), fmt(r.msPerStep.pytorchAnomaly), `${pct(r.anomalyOverPlain)}; by round ${ratio(r.anomalyOverPlainByRound)}`,
  ]);
  const out = [];
  out.push(`# NaN guard on healthy steps vs torch.autograd.detect_anomaly; ms per step, median over ${ROUNDS} rounds of ≥ ${MIN_SECONDS}s${PROCESSES > 1 ? `, each side in ${PROCESSES} processes` : ''}${args.quick ? ' (--quick)' : ''}`);
  out.push(`machine: ${info.cpu}, ${info.cores} cores; Node ${info.node}; libtorch ${info.libtorch}; BLAS ${info.blasKind}; PyTorch ${torch ?? 'unavailable'} (/usr/bin/python3)`);
  out.push(THREAD_NOTE);
  out.push('step: forward, cross-entropy, zero_grad(set_to_none), backward, [clipGradNorm(1),] SGD(lr 1e-2) or AdamW(lr 1e-3, wd 1e-2) step, loss read; fixed random batch, training mode. Goal: guard overhead ≤ 3 % (≤ 1 % when both sides clip)');
  if (before) out.push(`before: ${process.env.KEEL_BEFORE}, a second Keel process taking turns with this build round by round`);
  out.push('each side alternates its plain and checked step (order flipped every pair), each step timed alone; overhead = median over all pairs of checked ÷ plain; "by round" = median over rounds of the ratio of per-round sums');
  out.push('');
  out.push(table(header, rows));
  console.log(out.join('\n'));
  const oi = args.rest.indexOf('--out');
  const file = writeResults(oi >= 0 ? args.rest[oi + 1] : 'guard', { bench: 'guard', quick: args.quick, before: process.env.KEEL_BEFORE ?? null, rounds: ROUNDS, minSeconds: MIN_SECONDS, machine: info, threadNote: THREAD_NOTE, results });
  console.log(`\nwrote ${file}`);
}

await main();
