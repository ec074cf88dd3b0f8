#!/usr/bin/env node
// The same models in Keel and in TensorFlow.js (wasm backend, the fastest one
// that installs here: tfjs-node downloads a binary at install time):
//   mlp train  784-256-256-10 ReLU MLP, batch 128: forward, softmax cross-entropy,
//              backward, SGD step
//   cnn infer  conv 1→8 3×3, ReLU, max-pool 2, conv 8→16 3×3, ReLU, max-pool 2,
//              linear 400→10, batch 64 of 28×28: forward only
//   cnn train  the same CNN, forward + backward + SGD step. tfjs-backend-wasm
//              has no Conv2DBackpropFilter kernel, so TF.js's pure-JS cpu
//              backend stands in, labelled as such.
// PyTorch-Python runs the same models for reference. TF.js's wasm backend runs
// one thread in Node (no SharedArrayBuffer workers), so the TF.js ratios are
// taken with every contender at 1 thread; Keel and PyTorch are also compared
// at every core.
//   node bench/tfjs.mjs [--quick]
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import {
  THREAD_NOTE, fmt, machine, median, nodeWorker, now, pairedRatio, parseArgs, pauseFor, pinKeelThreads, pythonWorker, ratio, roundRobin,
  serve, table, writeResults,
} from './lib/harness.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const args = parseArgs();
const ROUNDS = args.quick ? 3 : 7;
const MIN_SECONDS = args.quick ? 0.1 : 1.0;
const LR = 0.01;
const TASKS = [
  { model: 'mlp', mode: 'train', label: 'MLP 784-256-256-10, batch 128: train step' },
  { model: 'cnn', mode: 'infer', label: 'CNN (2 conv + linear), batch 64: forward' },
  { model: 'cnn', mode: 'train', label: 'CNN (2 conv + linear), batch 64: train step' },
];

// ---------------------------------------------------------------- Keel side

async function keelWorker(threads) {
  const keel = await import('../dist/index.js');
  pinKeelThreads(keel, threads);
  keel.manualSeed(0);
  const param = (shape, fanIn) => keel.noGrad(() => keel.randn(shape).mul_(Math.sqrt(2 / fanIn)).requiresGrad_());
  const zeros = (shape) => keel.zeros(shape).requiresGrad_();

  const mlp = {
    params: [param([256, 784], 784), zeros([256]), param([256, 256], 256), zeros([256]), param([10, 256], 256), zeros([10])],
    x: keel.randn([128, 784]),
    y: keel.randint(0, 10, [128]),
    forward(x) {
      const [w1, b1, w2, b2, w3, b3] = this.params;
      const h = keel.ops.linear(x, w1, b1).relu();
      return keel.ops.linear(keel.ops.linear(h, w2, b2).relu(), w3, b3);
    },
  };
  const cnn = {
    params: [param([8, 1, 3, 3], 9), zeros([8]), param([16, 8, 3, 3], 72), zeros([16]), param([10, 400], 400), zeros([10])],
    x: keel.randn([64, 1, 28, 28]),
    y: keel.randint(0, 10, [64]),
    forward(x) {
      const [c1, cb1, c2, cb2, w, b] = this.params;
      const h1 = keel.ops.maxPool2d(keel.ops.conv2d(x, c1, cb1).relu(), [2, 2]);
      const h2 = keel.ops.maxPool2d(keel.ops.conv2d(h1, c2, cb2).relu(), [2, 2]);
      return keel.ops.linear(h2.flatten(1), w, b);
    },
  };
  const models = { mlp, cnn };

  function trainStep(m) {
    return keel.scope(() => {
      const loss = keel.ops.crossEntropyLoss(m.forward(m.x), m.y);
      loss.backward();
      keel.noGrad(() => {
        for (const p of m.params) {
          p.sub_(p.grad, LR);
          p.grad = null;
        }
      });
      return loss.item();
    });
  }
  function infer(m) {
    return keel.scope(() => keel.noGrad(() => m.forward(m.x).sum().item()));
  }

  await serve(({ model, mode, iters }) => {
    const m = models[model];
    const step = mode === 'train' ? trainStep : infer;
    const t0 = now();
    let last = 0;
    for (let i = 0; i < iters; i++) last = step(m);
    if (!Number.isFinite(last)) throw new Error(`${model} ${mode}: non-finite result ${last}`);
    return { seconds: (now() - t0) / 1e9, tensors: keel.memory().tensors };
  });
}

// ---------------------------------------------------------------- TF.js side

async function tfjsWorker(backend) {
  const tf = await import('@tensorflow/tfjs');
  if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend '${backend}' did not initialise`);
  await tf.ready();
  const param = (shape, fanIn) => tf.variable(tf.randomNormal(shape, 0, Math.sqrt(2 / fanIn), 'float32', 1));
  const zeros = (shape) => tf.variable(tf.zeros(shape));
  const oneHot = (n) => tf.oneHot(tf.randomUniform([n], 0, 10, 'int32', 2), 10).asType('float32');

  const mlp = {
    params: [param([784, 256], 784), zeros([256]), param([256, 256], 256), zeros([256]), param([256, 10], 256), zeros([10])],
    x: tf.randomNormal([128, 784], 0, 1, 'float32', 3),
    y: oneHot(128),
    forward(x) {
      const [w1, b1, w2, b2, w3, b3] = this.params;
      const h = tf.fused.matMul({ a: x, b: w1, bias: b1, activation: 'relu' });
      const h2 = tf.fused.matMul({ a: h, b: w2, bias: b2, activation: 'relu' });
      return tf.fused.matMul({ a: h2, b: w3, bias: b3 });
    },
  };
  const cnn = {
    // NHWC, TF.js's native layout
    params: [param([3, 3, 1, 8], 9), zeros([8]), param([3, 3, 8, 16], 72), zeros([16]), param([400, 10], 400), zeros([10])],
    x: tf.randomNormal([64, 28, 28, 1], 0, 1, 'float32', 4),
    y: oneHot(64),
    forward(x) {
      const [c1, cb1, c2, cb2, w, b] = this.params;
      const h1 = tf.maxPool(tf.fused.conv2d({ x, filter: c1, strides: 1, pad: 'valid', bias: cb1, activation: 'relu' }), 2, 2, 'valid');
      const h2 = tf.maxPool(tf.fused.conv2d({ x: h1, filter: c2, strides: 1, pad: 'valid', bias: cb2, activation: 'relu' }), 2, 2, 'valid');
      return tf.fused.matMul({ a: tf.reshape(h2, [h2.shape[0], 400]), b: w, bias: b });
    },
  };
  const models = { mlp, cnn };
  const optimizer = tf.train.sgd(LR);

  function trainStep(m) {
    const cost = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(m.y, m.forward(m.x)), true, m.params);
    const v = cost.dataSync()[0];
    cost.dispose();
    return v;
  }
  function infer(m) {
    return tf.tidy(() => tf.sum(m.forward(m.x)).dataSync()[0]);
  }

  await serve(({ model, mode, iters }) => {
    const m = models[model];
    const step = mode === 'train' ? trainStep : infer;
    const t0 = now();
    let last = 0;
    for (let i = 0; i < iters; i++) last = step(m);
    if (!Number.isFinite(last)) throw new Error(`${model} ${mode}: non-finite result ${last}`);
    return { seconds: (now() - t0) / 1e9, tensors: tf.memory().numTensors, backend: tf.getBackend() };
  });
}

// ---------------------------------------------------------------- PyTorch side, for reference

const PY = `
import math
F = torch.nn.functional
torch.manual_seed(0)
LR = ${LR}
def param(shape, fan_in):
    return (torch.randn(*shape) * math.sqrt(2 / fan_in)).requires_grad_()
def zeros(n):
    return torch.zeros(n, requires_grad=True)
class MLP:
    params = [param((256, 784), 784), zeros(256), param((256, 256), 256), zeros(256), param((10, 256), 256), zeros(10)]
    x = torch.randn(128, 784)
    y = torch.randint(0, 10, (128,))
    def forward(self, x):
        w1, b1, w2, b2, w3, b3 = self.params
        return F.linear(F.relu(F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)), w3, b3)
class CNN:
    params = [param((8, 1, 3, 3), 9), zeros(8), param((16, 8, 3, 3), 72), zeros(16), param((10, 400), 400), zeros(10)]
    x = torch.randn(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    def forward(self, x):
        c1, cb1, c2, cb2, w, b = self.params
        h1 = F.max_pool2d(F.relu(F.conv2d(x, c1, cb1)), [2, 2])
        h2 = F.max_pool2d(F.relu(F.conv2d(h1, c2, cb2)), [2, 2])
        return F.linear(h2.flatten(1), w, b)
models = {'mlp': MLP(), 'cnn': CNN()}
def train_step(m):
    loss = F.cross_entropy(m.forward(m.x), m.y)
    loss.backward()
    with torch.no_grad():
        for p in m.params:
            p.sub_(p.grad, alpha=LR)
            p.grad = None
    return loss.item()
def infer(m):
    with torch.no_grad():
        return m.forward(m.x).sum().item()
def handle(req):
    m = models[req['model']]
    step = train_step if req['mode'] == 'train' else infer
    t0 = time.perf_counter_ns()
    for _ in range(req['iters']):
        last = step(m)
    return {'seconds': (time.perf_counter_ns() - t0) / 1e9}
`;

// ---------------------------------------------------------------- driver

/** Warms each contender up, sizes its loop to ≥ MIN_SECONDS, then measures in turns; ms per step. */
async function measure(contenders, task, pauseMs) {
  const { model, mode } = task;
  const iters = {};
  for (const [name, w] of Object.entries(contenders)) {
    await w.request({ model, mode, iters: 1 });
    const one = (await w.request({ model, mode, iters: 1 })).seconds;
    iters[name] = Math.max(1, Math.round(MIN_SECONDS / one));
  }
  const seconds = await roundRobin(contenders, ROUNDS, (name) => ({ model, mode, iters: iters[name] }), { pauseMs });
  return Object.fromEntries(Object.entries(seconds).map(([k, v]) => [k, v.map((s) => (s / iters[k]) * 1e3)]));
}

async function main() {
  if (args.worker === 'keel') return keelWorker(args.threads[0]);
  if (args.worker === 'tfjs-wasm') return tfjsWorker('wasm');
  if (args.worker === 'tfjs-cpu') return tfjsWorker('cpu');

  try {
    await import('@tensorflow/tfjs');
    await import('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    console.log(`bench/tfjs: skipped, TensorFlow.js is not installed (${e.message.split('\n')[0]}); run \`npm ci\` (the devDependencies bring @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm)`);
    return;
  }
  const info = await machine();
  const cores = availableParallelism();
  const torch = info.pytorch;
  const results = TASKS.map((t) => ({ ...t }));

  // 1 thread: Keel, TF.js, PyTorch, in turns
  const one = {
    keel: nodeWorker(SCRIPT, 'keel', 1, 'Keel'),
    wasm: nodeWorker(SCRIPT, 'tfjs-wasm', 1, 'TF.js wasm'),
    cpu: nodeWorker(SCRIPT, 'tfjs-cpu', 1, 'TF.js cpu'),
    pytorch: torch ? pythonWorker(PY, 1) : null,
  };
  try {
    for (const r of results) {
      // TF.js wasm cannot train a conv net (no Conv2DBackpropFilter kernel): probe, then fall back to its cpu backend
      r.tfjsBackend = 'wasm';
      try {
        await one.wasm.request({ model: r.model, mode: r.mode, iters: 1 });
      } catch (e) {
        r.tfjsNote = String(e.message).split('\n').find((l) => /Kernel/.test(l))?.replace(/^.*?Error: /, '') ?? String(e.message);
        r.tfjsBackend = 'cpu';
      }
      const ms = await measure({ keel: one.keel, tfjs: one[r.tfjsBackend], ...(one.pytorch ? { pytorch: one.pytorch } : {}) }, r, 0);
      r.oneThread = {
        msPerStep: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)])),
        keelSpeedupOverTfjs: 1 / pairedRatio(ms.keel, ms.tfjs),
        keelOverPytorchTime: ms.pytorch ? pairedRatio(ms.keel, ms.pytorch) : null,
        samplesMs: ms,
      };
    }
  } finally {
    for (const w of Object.values(one)) if (w) await w.close();
  }

  // every core: Keel and PyTorch only (TF.js wasm has no threads in Node)
  if (cores > 1) {
    const all = { keel: nodeWorker(SCRIPT, 'keel', cores, 'Keel'), ...(torch ? { pytorch: pythonWorker(PY, cores) } : {}) };
    try {
      for (const r of results) {
        const ms = await measure(all, r, pauseFor(cores));
        r.allThreads = {
          threads: cores,
          msPerStep: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)])),
          keelOverPytorchTime: ms.pytorch ? pairedRatio(ms.keel, ms.pytorch) : null,
          samplesMs: ms,
        };
      }
    } finally {
      for (const w of Object.values(all)) await w.close();
    }
  }

  const rows = results.map((r) => [
    r.label,
    fmt(r.oneThread.msPerStep.keel),
    `${fmt(r.oneThread.msPerStep.tfjs)} (${r.tfjsBackend})`,
    ratio(r.oneThread.keelSpeedupOverTfjs),
    fmt(r.oneThread.msPerStep.pytorch),
    ratio(r.oneThread.keelOverPytorchTime),
    ...(r.allThreads ? [fmt(r.allThreads.msPerStep.keel), fmt(r.allThreads.msPerStep.pytorch), ratio(r.allThreads.keelOverPytorchTime)] : []),
  ]);
  const header = ['model', 'Keel ms', 'TF.js ms', 'Keel speed-up over TF.js', 'PyTorch ms', 'Keel ÷ PyTorch time'];
  if (cores > 1) header.push(`Keel ms, ${cores} thr`, `PyTorch ms, ${cores} thr`, `Keel ÷ PyTorch, ${cores} thr`);
  const out = [];
  out.push(`# Keel vs TensorFlow.js (and PyTorch): ms per step, median over ${ROUNDS} rounds of ≥ ${MIN_SECONDS}s${args.quick ? ' (--quick)' : ''}`);
  out.push(`machine: ${info.cpu}, ${info.cores} cores; Node ${info.node}; libtorch ${info.libtorch}; BLAS ${info.blasKind}; TF.js ${(await import('@tensorflow/tfjs')).version.tfjs}; PyTorch ${torch ?? 'unavailable'}`);
  out.push(`threads: 1 for every contender in the first columns (TF.js wasm runs one thread in Node); the last columns: Keel and PyTorch at ${cores}. ` + THREAD_NOTE.replace(/^threads: /, ''));
  out.push('ratios: median over rounds of the per-round ratio (contenders take turns); speed-up = TF.js time ÷ Keel time');
  out.push('');
  out.push(table(header, rows));
  for (const r of results) if (r.tfjsNote) out.push(`\nnote (${r.label}): TF.js wasm cannot run it (${r.tfjsNote}); TF.js's cpu backend (pure JS) stands in.`);
  console.log(out.join('\n'));
  const file = writeResults('tfjs', { bench: 'tfjs', quick: args.quick, rounds: ROUNDS, minSeconds: MIN_SECONDS, machine: info, threadNote: THREAD_NOTE, results });
  console.log(`\nwrote ${file}`);
}

await main();
