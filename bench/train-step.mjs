#!/usr/bin/env node
// One training step, Keel vs PyTorch-Python on the same libtorch, and SING's
// step overhead over AdamW:
//   LeNet-5    batch 128 of 28×28×1 (keel.nn.zoo.LeNet5)
//   ResNet-18  batch 32 of 32×32×3, CIFAR-style 3×3 stem (keel.nn.zoo.ResNet18, width 64)
//   MLP        784-256-256-10, batch 64 (keel.nn.zoo.MLP), with AdamW and with SGD (lr 1e-2)
// A step is: forward, cross-entropy, zero_grad (set to None), backward,
// optimizer step, loss.item() — the same in both, in training mode (BatchNorm
// batch statistics), on a fixed random batch (the data loader is not timed).
// Optimizer AdamW(lr 1e-3, weight decay 1e-2) (SGD lr 1e-2 on the mlp-sgd
// row), each side's default: PyTorch 1.13 on CPU its single-tensor path
// (foreach is off by default there), Keel its multi-tensor (_foreach) path,
// bitwise the numbers of its single-tensor one. The
// PyTorch models are written out below with the same architecture; their
// parameter names and shapes are checked equal to Keel's before any timing.
// SING overhead: Keel's SING (the authors' recipe, Lookahead on) vs Keel's
// AdamW on the same model, taking turns in one process.
//   node bench/train-step.mjs [--quick] [--threads 1,2] [--models lenet5,resnet18,mlp,mlp-sgd] [--processes N]
// --processes N runs each contender in N processes, round r in process r mod N,
// and prints the spread of the per-process medians (a process stuck slow shows).
// A second table splits each step into forward (with the loss), backward (with
// zero_grad) and the optimizer step (with the loss read), both sides alike.
// The cost of noticing Ctrl-C between steps: keel.train.fit (synchronous)
// against keel.train.fitAsync (one clock read a step, a setImmediate yield
// once ≥ 50 ms passed), taking turns in one process, on LeNet-5 and on a
// tiny MLP whose step is almost only the loop's own overhead:
//   node bench/train-step.mjs --interrupt-check [--quick]
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import {
  Processes, THREAD_NOTE, fmt, machine, median, nodeWorker, now, pairedRatio, parseArgs, pauseFor, perProcess, pinKeelThreads, processCount,
  pythonWorker, ratio, roundRobin, spread,
  serve, table, threadCounts, writeResults,
} from './lib/harness.mjs';
import { TORCH_LENET5, TORCH_RESNET18 } from './lib/reference-models.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const args = parseArgs();
// each contender in this many processes, used in turn (round r → process r mod n)
const PROCESSES = processCount(args);
const ROUNDS = Math.max(args.quick ? 3 : 9, PROCESSES);
const MIN_SECONDS = args.quick ? 0.3 : 1.5;
// optim: the baseline both sides run (SING is timed against Keel's AdamW on the AdamW models)
const MODELS = {
  lenet5: { label: 'LeNet-5, batch 128, 28×28×1', batch: 128, input: [1, 28, 28], optim: 'adamw' },
  resnet18: { label: 'ResNet-18, batch 32, 32×32×3', batch: 32, input: [3, 32, 32], optim: 'adamw' },
  mlp: { label: 'MLP 784-256-256-10, batch 64, AdamW', batch: 64, input: [784], optim: 'adamw' },
  'mlp-sgd': { label: 'MLP 784-256-256-10, batch 64, SGD', batch: 64, input: [784], optim: 'sgd' },
};
const mi = args.rest.indexOf('--models');
const MODEL_KEYS = mi >= 0 ? args.rest[mi + 1].split(',') : Object.keys(MODELS);
for (const k of MODEL_KEYS) if (!MODELS[k]) throw new Error(`--models: unknown ${k} (${Object.keys(MODELS).join(', ')})`);

// ---------------------------------------------------------------- Keel side

async function keelWorker(threads) {
  const keel = await import('../dist/index.js');
  pinKeelThreads(keel, threads);
  const setups = new Map();
  function setup(model, optim) {
    const key = `${model}/${optim}`;
    let s = setups.get(key);
    if (s) return s;
    keel.manualSeed(0);
    const spec = MODELS[model];
    const m = model === 'lenet5' ? new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 })
      : model === 'resnet18' ? new keel.nn.zoo.ResNet18({ inChannels: 3, numClasses: 10 })
        : new keel.nn.zoo.MLP({ inFeatures: 784, numClasses: 10, hidden: [256, 256] });
    m.train();
    const x = keel.randn([spec.batch, ...spec.input]).keep();
    const y = keel.randint(0, 10, [spec.batch]).keep();
    const opt = optim === 'sing'
      ? new keel.optim.SING(m.parameters(), { lr: 1e-3, weightDecay: 1e-3 })
      : optim === 'sgd' ? new keel.optim.SGD(m.parameters(), { lr: 1e-2 })
        : new keel.optim.AdamW(m.parameters(), { lr: 1e-3, weightDecay: 1e-2 });
    s = { m, x, y, opt };
    setups.set(key, s);
    return s;
  }
  // phases[0..2] += the forward (with the loss), the backward (with zero_grad), the optimizer step (with the loss read), in ns
  function step({ m, x, y, opt }, phases) {
    return keel.scope(() => {
      const t0 = now();
      const loss = keel.losses.crossEntropy(m.call(x), y);
      const t1 = now();
      opt.zeroGrad(true);
      loss.backward();
      const t2 = now();
      opt.step();
      const last = loss.item();
      phases[0] += t1 - t0;
      phases[1] += t2 - t1;
      phases[2] += now() - t2;
      return last;
    });
  }
  await serve(({ cmd, model, optim, iters }) => {
    if (cmd === 'params') {
      const { m } = setup(model, 'adamw');
      return { params: m.namedParameters().map(([name, p]) => [name, p.shape]) };
    }
    const s = setup(model, optim);
    const phases = [0, 0, 0];
    const t0 = now();
    let last = 0;
    for (let i = 0; i < iters; i++) last = step(s, phases);
    if (!Number.isFinite(last)) throw new Error(`${model} ${optim}: non-finite loss ${last}`);
    return { seconds: (now() - t0) / 1e9, phases: phases.map((ns) => ns / 1e9), tensors: keel.memory().tensors };
  });
}

// ---------------------------------------------------------------- PyTorch side

const PY = `
import math
import torch.nn as nn
import torch.nn.functional as F

${TORCH_LENET5}
${TORCH_RESNET18}
class MLP(nn.Module):
    # as keel.nn.zoo.MLP({ inFeatures: 784, numClasses: 10, hidden: [256, 256] })
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    def forward(self, x):
        return self.layers(self.flatten(x))

SPECS = {'lenet5': (128, (1, 28, 28)), 'resnet18': (32, (3, 32, 32)), 'mlp': (64, (784,)), 'mlp-sgd': (64, (784,))}
setups = {}
def setup(model):
    if model not in setups:
        torch.manual_seed(0)
        batch, shape = SPECS[model]
        m = LeNet5() if model == 'lenet5' else ResNet18() if model == 'resnet18' else MLP()
        m.train()
        x = torch.randn(batch, *shape)
        y = torch.randint(0, 10, (batch,))
        if model == 'mlp-sgd':
            opt = torch.optim.SGD(m.parameters(), lr=1e-2)
        else:
            opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-2)
        setups[model] = (m, x, y, opt)
    return setups[model]

# phases[0..2] += the forward (with the loss), the backward (with zero_grad), the optimizer step (with the loss read), in ns
def step(m, x, y, opt, phases):
    t0 = time.perf_counter_ns()
    loss = F.cross_entropy(m(x), y)
    t1 = time.perf_counter_ns()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t2 = time.perf_counter_ns()
    opt.step()
    last = loss.item()
    phases[0] += t1 - t0
    phases[1] += t2 - t1
    phases[2] += time.perf_counter_ns() - t2
    return last

def handle(req):
    if req.get('cmd') == 'params':
        m = setup(req['model'])[0]
        return {'params': [[n, list(p.shape)] for n, p in m.named_parameters()]}
    s = setup(req['model'])
    phases = [0, 0, 0]
    t0 = time.perf_counter_ns()
    for _ in range(req['iters']):
        last = step(*s, phases)
    if not math.isfinite(last):
        raise RuntimeError('non-finite loss')
    return {'seconds': (time.perf_counter_ns() - t0) / 1e9, 'phases': [ns / 1e9 for ns in phases]}
`;

// ---------------------------------------------------------------- driver

/** Warms each contender up, sizes its loop to ≥ MIN_SECONDS, then measures in turns; ms per step per round. */
async function measure(contenders, makeReq, pauseMs) {
  const iters = {};
  for (const [name, w] of Object.entries(contenders)) {
    await w.request({ ...makeReq(name), iters: 2 });
    const one = (await w.request({ ...makeReq(name), iters: 1 })).seconds;
    iters[name] = Math.max(2, Math.round(MIN_SECONDS / one));
  }
  const res = await roundRobin(contenders, ROUNDS, (name) => ({ ...makeReq(name), iters: iters[name] }), { pauseMs, collect: (r) => r });
  const perStep = (k, s) => (s / iters[k]) * 1e3;
  return {
    ms: Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.map((r) => perStep(k, r.seconds))])),
    // per round: [forward, backward, optimizer] ms a step
    phasesMs: Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.map((r) => r.phases.map((s) => perStep(k, s)))])),
  };
}

const PHASES = ['forward', 'backward', 'optimizer'];

function sameParams(a, b) {
  const key = (list) => list.map(([n, s]) => `${n}:${s.join('x')}`).join(',');
  return key(a) === key(b);
}

const count = (list) => list.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);

/** fit vs fitAsync, per step, alternating rounds in this process. */
async function interruptCheck() {
  const keel = await import('../dist/index.js');
  const n = (args.threads ?? [1])[0];
  pinKeelThreads(keel, n);
  const rounds = args.quick ? 5 : 11;
  const cases = {
    lenet5: { label: 'LeNet-5, batch 128', make: () => new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 }), input: [1, 28, 28], batch: 128, steps: args.quick ? 20 : 60 },
    tiny: { label: 'MLP 4-8-2, batch 1 (loop overhead)', make: () => new keel.nn.zoo.MLP({ inFeatures: 4, numClasses: 2, hidden: [8] }), input: [4], batch: 1, steps: args.quick ? 2000 : 6000 },
  };
  const rows = [];
  const results = [];
  for (const [name, c] of Object.entries(cases)) {
    keel.manualSeed(0);
    const x = keel.randn([c.batch * 8, ...c.input]).keep();
    const y = keel.randint(0, 2, [c.batch * 8]).keep();
    const data = new keel.data.TensorDataset(x, y);
    const model = c.make();
    const optimizer = new keel.optim.AdamW(model.parameters(), { lr: 1e-3 });
    const options = () => ({
      model, optimizer, loss: (o, t) => keel.losses.crossEntropy(o, t), steps: c.steps, progress: false,
      trainLoader: new keel.data.DataLoader(data, { batchSize: c.batch, shuffle: true, seed: 0, dropLast: true }),
    });
    const ms = { fit: [], fitAsync: [] };
    const controller = new AbortController();
    keel.train.fit(options()); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (const kind of r % 2 === 0 ? ['fit', 'fitAsync'] : ['fitAsync', 'fit']) {
        const t0 = now();
        if (kind === 'fit') keel.train.fit(options());
        else await keel.train.fitAsync({ ...options(), signal: controller.signal });
        ms[kind].push(((now() - t0) / 1e6) / c.steps);
      }
    }
    const perStepUs = (median(ms.fitAsync) - median(ms.fit)) * 1e3;
    const row = { model: name, label: c.label, threads: n, msPerStep: { fit: median(ms.fit), fitAsync: median(ms.fitAsync) }, asyncOverFit: pairedRatio(ms.fitAsync, ms.fit), extraUsPerStep: perStepUs, samplesMs: ms };
    results.push(row);
    rows.push([c.label, String(n), fmt(row.msPerStep.fit, 4), fmt(row.msPerStep.fitAsync, 4), ratio(row.asyncOverFit), perStepUs.toFixed(1)]);
    model.dispose();
    optimizer.dispose();
    keel.dispose([x, y]);
  }
  console.log(`# Noticing Ctrl-C between steps: fit vs fitAsync (signal checked each step, yield every ≥ 50 ms), median of ${rounds} alternating rounds`);
  console.log(table(['model', 'threads', 'fit ms/step', 'fitAsync ms/step', 'fitAsync ÷ fit', 'extra µs/step'], rows));
  const info = await machine();
  const file = writeResults('train-step-interrupt', { bench: 'train-step --interrupt-check', quick: args.quick, rounds, machine: info, results });
  console.log(`\nwrote ${file}`);
}

async function main() {
  if (args.worker === 'keel') return keelWorker(args.threads[0]);
  if (args.rest.includes('--interrupt-check')) return interruptCheck();
  const info = await machine();
  const torch = info.pytorch;
  if (!torch) console.log('bench/train-step: PyTorch (/usr/bin/python3 -c "import torch") is unavailable: Keel-only numbers (SING overhead)');
  const threads = threadCounts(args);
  const results = [];
  const overhead = [];
  const paramCheck = {};

  for (const n of threads) {
    const keelW = new Processes(Array.from({ length: PROCESSES }, () => nodeWorker(SCRIPT, 'keel', n, 'Keel')));
    const pyW = torch ? new Processes(Array.from({ length: PROCESSES }, () => pythonWorker(PY, n))) : null;
    try {
      for (const model of MODEL_KEYS) {
        const spec = MODELS[model];
        // the same architecture, checked before timing
        const kp = (await keelW.request({ cmd: 'params', model })).params;
        if (pyW) {
          const pp = (await pyW.request({ cmd: 'params', model })).params;
          if (!sameParams(kp, pp)) throw new Error(`${model}: Keel's and PyTorch's parameters differ:\nKeel ${JSON.stringify(kp)}\nPyTorch ${JSON.stringify(pp)}`);
          paramCheck[model] = { tensors: kp.length, parameters: count(kp), pytorchParameters: count(pp), namesAndShapesEqual: true };
        } else paramCheck[model] = { tensors: kp.length, parameters: count(kp) };
        process.stderr.write(`[${n} thread${n > 1 ? 's' : ''}] ${spec.label}: ${count(kp).toLocaleString('en-US')} parameters in ${kp.length} tensors${pyW ? ', equal to PyTorch\'s' : ''}; timing...\n`);
        const withSing = spec.optim === 'adamw';
        const contenders = { keel: keelW, ...(pyW ? { pytorch: pyW } : {}), ...(withSing ? { keelSing: keelW } : {}) };
        const { ms, phasesMs } = await measure(contenders, (name) => ({ model, optim: name === 'keelSing' ? 'sing' : spec.optim }), pauseFor(n));
        // each phase: the median over rounds of its ms a step, and Keel ÷ PyTorch paired by round
        const phases = Object.fromEntries(PHASES.map((ph, i) => [ph, {
          ms: Object.fromEntries(Object.entries(phasesMs).map(([k, v]) => [k, median(v.map((r) => r[i]))])),
          keelOverPytorch: phasesMs.pytorch ? pairedRatio(phasesMs.keel.map((r) => r[i]), phasesMs.pytorch.map((r) => r[i])) : null,
        }]));
        const row = {
          model, label: spec.label, threads: n,
          msPerStep: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)])),
          keelOverPytorch: ms.pytorch ? pairedRatio(ms.keel, ms.pytorch) : null,
          singOverAdamw: withSing ? pairedRatio(ms.keelSing, ms.keel) : null,
          processes: PROCESSES,
          perProcessMedianMs: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, perProcess(v, PROCESSES)])),
          phases,
          samplesMs: ms,
          phaseSamplesMs: phasesMs,
        };
        results.push(row);
        if (withSing) overhead.push({ model, threads: n, ratio: row.singOverAdamw });
      }
    } finally {
      await keelW.close();
      if (pyW) await pyW.close();
    }
  }

  const header = ['model', 'threads', 'Keel ms/step', 'PyTorch ms/step', 'Keel ÷ PyTorch', 'Keel SING ms/step', 'SING ÷ AdamW (Keel)'];
  if (PROCESSES > 1) header.push(`per-process medians, Keel / PyTorch (${PROCESSES} processes each)`);
  const rows = results.map((r) => [
    r.label, String(r.threads), fmt(r.msPerStep.keel), fmt(r.msPerStep.pytorch), ratio(r.keelOverPytorch), fmt(r.msPerStep.keelSing), ratio(r.singOverAdamw),
    ...(PROCESSES > 1 ? [`${spread(r.perProcessMedianMs.keel)} / ${r.perProcessMedianMs.pytorch ? spread(r.perProcessMedianMs.pytorch) : "n/a"}`] : []),
  ]);
  const out = [];
  out.push(`# Training step: Keel vs PyTorch-Python, and SING's overhead; ms per step, median over ${ROUNDS} rounds of ≥ ${MIN_SECONDS}s${args.quick ? ' (--quick)' : ''}`);
  out.push(`machine: ${info.cpu}, ${info.cores} cores; Node ${info.node}; libtorch ${info.libtorch}; BLAS ${info.blasKind}; PyTorch ${torch ?? 'unavailable'} (/usr/bin/python3)`);
  out.push(THREAD_NOTE);
  out.push('step: forward, cross-entropy, zero_grad(set_to_none), backward, optimizer step, loss.item(); training mode; fixed random batch. AdamW(lr 1e-3, wd 1e-2), SGD(lr 1e-2) as the row says; SING(lr 1e-3, wd 1e-3, Lookahead on) against AdamW');
  out.push(`architectures checked equal (parameter names and shapes): ${Object.entries(paramCheck).map(([m, c]) => `${m} ${c.parameters.toLocaleString('en-US')} parameters${c.namesAndShapesEqual ? ' = PyTorch' : ''}`).join(', ')}`);
  out.push('ratios: median over rounds of the per-round ratio (contenders take turns). Goals (issue 18): Keel ÷ PyTorch ≤ 0.95×; SING ÷ AdamW ≤ 1.05× on every model');
  out.push('');
  out.push(table(header, rows));
  out.push('');
  out.push('Per phase (ms a step, median over rounds; forward with the loss, backward with zero_grad, optimizer step with the loss read):');
  out.push('');
  out.push(table(['model', 'threads', ...PHASES.flatMap((ph) => [`${ph} Keel / PyTorch`, `${ph} Keel ÷ PyTorch`]), 'SING optimizer'], results.map((r) => [
    r.label, String(r.threads),
    ...PHASES.flatMap((ph) => [`${fmt(r.phases[ph].ms.keel)} / ${fmt(r.phases[ph].ms.pytorch)}`, ratio(r.phases[ph].keelOverPytorch)]),
    fmt(r.phases.optimizer.ms.keelSing),
  ])));
  console.log(out.join('\n'));
  const file = writeResults('train-step', {
    bench: 'train-step', quick: args.quick, rounds: ROUNDS, minSeconds: MIN_SECONDS, machine: info, threadNote: THREAD_NOTE,
    availableParallelism: availableParallelism(), parameters: paramCheck, results, singOverhead: overhead,
  });
  console.log(`\nwrote ${file}`);
}

await main();
