#!/usr/bin/env node
// Cost of the precision policy: one SGD step of an MLP (forward, backward,
// update) and one LeNet-5 step (AdamW, cross-entropy, batch 32) plain against
// the same step inside withPrecision(format), taking turns round after round
// in one process; medians over rounds, as ratios against the plain step (no
// policy: ops take the direct calls) and against the same step under the
// 'fp32' policy (every op intercepted, nothing rounded: the interception's own
// cost). Issue 14's goal: fp16/bf16 ≤ 1.5×, fp8 ≤ 2× the fp32 step.
//   node bench/precision.mjs [--quick] [--threads N]
import * as keel from '../dist/index.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 9;
const ti = process.argv.indexOf('--threads');
if (ti >= 0) keel.setNumThreads(Number(process.argv[ti + 1]));
const SHAPES = [
  { name: 'small 64×16→32→4', batch: 64, sizes: [16, 32, 4], steps: quick ? 50 : 300 },
  { name: 'wide 256×256→512→10', batch: 256, sizes: [256, 512, 10], steps: quick ? 10 : 60 },
  { name: 'LeNet-5, batch 32, AdamW', lenet: true, batch: 32, steps: quick ? 10 : 40 },
];
const MODES = ['plain', 'fp32', 'bf16', 'fp16', 'fp8-e4m3'];

function setupLenet({ batch }) {
  keel.manualSeed(0);
  const model = new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 });
  const opt = new keel.optim.AdamW(model.parameters(), { lr: 1e-3 });
  const x = keel.randn([batch, 1, 28, 28]).keep();
  const y = keel.randint(0, 10, [batch], { dtype: 'int64' }).keep();
  return { model, opt, x, y };
}

function stepLenet({ model, opt, x, y }) {
  keel.scope(() => {
    const loss = keel.losses.crossEntropy(model.call(x), y);
    opt.zeroGrad();
    loss.backward();
    opt.step();
    loss.item();
  });
}

function setup({ batch, sizes }) {
  keel.manualSeed(0);
  const p = {
    w1: keel.randn([sizes[1], sizes[0]]).mul(0.1).requiresGrad_().keep(),
    b1: keel.zeros([sizes[1]]).requiresGrad_().keep(),
    w2: keel.randn([sizes[2], sizes[1]]).mul(0.1).requiresGrad_().keep(),
    b2: keel.zeros([sizes[2]]).requiresGrad_().keep(),
  };
  const x = keel.randn([batch, sizes[0]]).keep();
  const y = keel.randn([batch, sizes[2]]).keep();
  return { p, x, y };
}

function step({ p, x, y }) {
  keel.scope(() => {
    const h = keel.ops.linear(x, p.w1, p.b1).tanh();
    const d = keel.ops.linear(h, p.w2, p.b2).sub(y);
    d.mul(d).mean().backward();
    keel.noGrad(() => {
      for (const t of Object.values(p)) {
        const g = t.grad;
        t.sub_(g.mul(0.01));
        g.zero_();
      }
    });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`libtorch threads ${keel.getNumThreads()}, ${ROUNDS} rounds, median ms per step`);
for (const shape of SHAPES) {
  const state = shape.lenet ? setupLenet(shape) : setup(shape);
  const one = shape.lenet ? stepLenet : step;
  const times = Object.fromEntries(MODES.map((m) => [m, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of MODES) {
      const run = mode === 'plain' ? () => one(state) : () => keel.withPrecision(mode, () => one(state));
      run();
      const t0 = performance.now();
      for (let i = 0; i < shape.steps; i++) run();
      times[mode].push((performance.now() - t0) / shape.steps);
    }
  }
  const plain = median(times.plain);
  const fp32 = median(times.fp32);
  console.log(`\n${shape.name}${' '.repeat(Math.max(1, 30 - shape.name.length))}vs plain   vs 'fp32' policy`);
  for (const mode of MODES) {
    const m = median(times[mode]);
    console.log(`  ${mode.padEnd(9)} ${m.toFixed(3).padStart(8)} ms   ×${(m / plain).toFixed(2).padEnd(8)} ×${(m / fp32).toFixed(2)}`);
  }
}
