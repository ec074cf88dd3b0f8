// The memory test's child process (run by memory.test.ts): trains a small MLP
// by hand for many steps (forward, backward, SGD under noGrad, gradients zeroed
// by `p.grad = null` for some parameters and in place for the others), each
// step in a scope, and prints one JSON line with RSS samples and tensor counts.
//
//   node build/test/train-child.js --steps 10000
import * as keel from 'keel';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const STEPS = Number(option('steps', '10000'));
// --leak keeps one gradient handle per step: the parent checks that its
// RSS criterion sees such a leak
const LEAK = process.argv.includes('--leak');
const WARMUP = Number(option('warmup', '1000'));
const MB = 1024 * 1024;

keel.manualSeed(0);
const tensorsAtStart = keel.memory().tensors;

// data: 1024 points in 32-d, labels from a fixed random linear "teacher"
const IN = 32;
const HIDDEN = 64;
const CLASSES = 4;
const BATCH = 64;
const N = 1024;
const [xs, ys] = keel.scope(() => {
  const x = keel.randn([N, IN]);
  const teacher = keel.randn([IN, CLASSES]);
  return [x, x.matmul(teacher).argmax(1)];
});
const params = keel.scope(() => ({
  w1: keel.randn([HIDDEN, IN]).mul(1 / Math.sqrt(IN)).requiresGrad_(),
  b1: keel.zeros([HIDDEN], { requiresGrad: true }),
  w2: keel.randn([CLASSES, HIDDEN]).mul(1 / Math.sqrt(HIDDEN)).requiresGrad_(),
  b2: keel.zeros([CLASSES], { requiresGrad: true }),
}));
const tensorsWithModel = keel.memory().tensors;
const lr = 0.1;

function step(i: number): number {
  return keel.scope(() => {
    const start = (i * BATCH) % N;
    const x = xs.narrow(0, start, BATCH);
    const y = ys.narrow(0, start, BATCH);
    const h = keel.ops.linear(x, params.w1, params.b1).relu();
    const logits = keel.ops.linear(h, params.w2, params.b2);
    const loss = keel.ops.crossEntropyLoss(logits, y);
    loss.backward();
    if (LEAK) params.w1.grad!.clone().keep();
    keel.noGrad(() => {
      for (const p of Object.values(params)) p.sub_(p.grad!.mul(lr));
    });
    // both ways of zeroing: drop the gradient, or zero it in place
    params.w1.grad = null;
    params.b1.grad = null;
    params.w2.grad!.zero_();
    params.b2.grad!.zero_();
    return loss.item();
  });
}

const rss: Record<string, number> = {};
const heap: Record<string, number> = {};
const counts: Record<string, number> = {};
let firstLoss = 0;
let lastLoss = 0;
const started = Date.now();
for (let i = 1; i <= STEPS; i++) {
  const loss = step(i);
  if (i === 1) firstLoss = loss;
  lastLoss = loss;
  if (i === WARMUP || i % 2000 === 0 || i === STEPS) {
    const m = process.memoryUsage();
    rss[i] = Math.round(m.rss / MB * 10) / 10;
    heap[i] = Math.round(m.heapTotal / MB * 10) / 10;
    counts[i] = keel.memory().tensors;
  }
}
const ms = Date.now() - started;
keel.dispose([xs, ys]);
keel.dispose(params);
process.stdout.write(JSON.stringify({
  steps: STEPS, warmup: WARMUP, ms, firstLoss, lastLoss, rssMB: rss, heapTotalMB: heap, tensorsAtSamples: counts,
  tensorsAtStart, tensorsWithModel, tensorsAtEnd: keel.memory().tensors, bytesAtEnd: keel.memory().bytes,
}) + '\n');
