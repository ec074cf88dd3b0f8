// keel.losses against torch.nn.functional (PyTorch 1.13, /usr/bin/python3),
// in float64: the loss values and the gradients with respect to the input
// (and to the target where PyTorch defines one), for every reduction and
// option. One Python subprocess runs every case.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as keel from 'keel';
import { assertClose } from './helpers/assert.js';
import { runTorch, torchAvailable } from './helpers/torch.js';
import { uniformPM1 } from './helpers/random.js';

const noTorch = torchAvailable() ? false : 'needs /usr/bin/python3 with torch';
const L = keel.losses;
type Tensor = keel.Tensor;

const next = uniformPM1(4242);
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const randn = (shape: number[], scale = 2) => Array.from({ length: numel(shape) }, () => next() * scale);
const uniform01 = (shape: number[]) => Array.from({ length: numel(shape) }, () => 0.02 + 0.96 * (next() * 0.5 + 0.5));
const classes = (n: number, c: number, ignore?: number) =>
  Array.from({ length: n }, (_, i) => (ignore !== undefined && i % 4 === 1 ? ignore : Math.floor((next() * 0.5 + 0.5) * c) % c));

interface Case {
  name: string;
  x: { v: number[]; s: number[] };
  t: { v: number[]; s: number[]; int?: boolean; grad?: boolean };
  w?: { v: number[]; s: number[] };
  pw?: { v: number[]; s: number[] };
  ts: (x: Tensor, t: Tensor, w?: Tensor, pw?: Tensor) => Tensor;
  /** Python, with x, t, w, pw and F in scope */
  py: string;
}

const softTargets = (n: number, c: number) => {
  const raw = uniform01([n, c]);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = raw.slice(i * c, (i + 1) * c);
    const sum = row.reduce((a, b) => a + b, 0);
    out.push(...row.map((v) => v / sum));
  }
  return out;
};

const CASES: Case[] = [];
{
  const N = 8;
  const C = 5;
  const logits = { v: randn([N, C]), s: [N, C] };
  const idx = { v: classes(N, C), s: [N], int: true };
  const idxIgnore = { v: classes(N, C, -100), s: [N], int: true };
  const idx2 = { v: classes(N, C, 2), s: [N], int: true };
  const weight = { v: uniform01([C]).map((v) => v * 2), s: [C] };
  for (const r of ['mean', 'sum', 'none'] as const) {
    CASES.push({ name: `crossEntropy ${r}`, x: logits, t: idxIgnore, ts: (x, t) => L.crossEntropy(x, t, { reduction: r }), py: `F.cross_entropy(x, t, reduction='${r}')` });
    CASES.push({
      name: `crossEntropy weight + labelSmoothing 0.2 + ignoreIndex 2, ${r}`,
      x: logits, t: idx2, w: weight,
      ts: (x, t, w) => L.crossEntropy(x, t, { weight: w, labelSmoothing: 0.2, ignoreIndex: 2, reduction: r }),
      py: `F.cross_entropy(x, t, weight=w, label_smoothing=0.2, ignore_index=2, reduction='${r}')`,
    });
    CASES.push({ name: `nllLoss weight ${r}`, x: logits, t: idxIgnore, w: weight, ts: (x, t, w) => L.nllLoss(x.logSoftmax(1), t, { weight: w, reduction: r }), py: `F.nll_loss(F.log_softmax(x, 1), t, weight=w, reduction='${r}')` });
  }
  CASES.push({ name: 'crossEntropy labelSmoothing 0.1', x: logits, t: idx, ts: (x, t) => L.crossEntropy(x, t, { labelSmoothing: 0.1 }), py: 'F.cross_entropy(x, t, label_smoothing=0.1)' });
  CASES.push({
    name: 'crossEntropy class probabilities + labelSmoothing 0.1 + weight',
    x: logits, t: { v: softTargets(N, C), s: [N, C], grad: true }, w: weight,
    ts: (x, t, w) => L.crossEntropy(x, t, { labelSmoothing: 0.1, weight: w }),
    py: 'F.cross_entropy(x, t, label_smoothing=0.1, weight=w)',
  });
  CASES.push({ name: 'crossEntropy unbatched', x: { v: randn([C]), s: [C] }, t: { v: [3], s: [], int: true }, ts: (x, t) => L.crossEntropy(x, t), py: 'F.cross_entropy(x, t)' });
  // K-dimensional (dense prediction): [N, C, H, W] against [N, H, W]
  const dense = { v: randn([2, 3, 4, 5]), s: [2, 3, 4, 5] };
  const denseT = { v: classes(40, 3, 1), s: [2, 4, 5], int: true };
  const w3 = { v: [0.5, 1.5, 2.0], s: [3] };
  CASES.push({ name: 'crossEntropy 4-d, weight, ignoreIndex 1, smoothing', x: dense, t: denseT, w: w3, ts: (x, t, w) => L.crossEntropy(x, t, { weight: w, ignoreIndex: 1, labelSmoothing: 0.05 }), py: 'F.cross_entropy(x, t, weight=w, ignore_index=1, label_smoothing=0.05)' });
  CASES.push({ name: 'crossEntropy 4-d none', x: dense, t: denseT, ts: (x, t) => L.crossEntropy(x, t, { reduction: 'none' }), py: "F.cross_entropy(x, t, reduction='none')" });
  CASES.push({ name: 'nllLoss 4-d weight sum', x: dense, t: denseT, w: w3, ts: (x, t, w) => L.nllLoss(x.logSoftmax(1), t, { weight: w, reduction: 'sum', ignoreIndex: 1 }), py: "F.nll_loss(F.log_softmax(x, 1), t, weight=w, reduction='sum', ignore_index=1)" });

  const a = { v: randn([3, 4, 2]), s: [3, 4, 2] };
  const b = { v: randn([3, 4, 2]), s: [3, 4, 2], grad: true };
  for (const r of ['mean', 'sum', 'none'] as const) {
    CASES.push({ name: `mseLoss ${r}`, x: a, t: b, ts: (x, t) => L.mseLoss(x, t, { reduction: r }), py: `F.mse_loss(x, t, reduction='${r}')` });
    CASES.push({ name: `l1Loss ${r}`, x: a, t: b, ts: (x, t) => L.l1Loss(x, t, { reduction: r }), py: `F.l1_loss(x, t, reduction='${r}')` });
    for (const beta of [1, 0.5, 0]) {
      CASES.push({ name: `smoothL1Loss beta ${beta} ${r}`, x: a, t: b, ts: (x, t) => L.smoothL1Loss(x, t, { beta, reduction: r }), py: `F.smooth_l1_loss(x, t, beta=${beta.toFixed(1)}, reduction='${r}')` });
    }
    for (const delta of [1, 2.5, 0.3]) {
      CASES.push({ name: `huberLoss delta ${delta} ${r}`, x: a, t: b, ts: (x, t) => L.huberLoss(x, t, { delta, reduction: r }), py: `F.huber_loss(x, t, delta=${delta}, reduction='${r}')` });
    }
  }
  CASES.push({
    name: 'mseLoss broadcast [3, 1] against [3, 4]',
    x: { v: randn([3, 1]), s: [3, 1] }, t: { v: randn([3, 4]), s: [3, 4], grad: true },
    ts: (x, t) => L.mseLoss(x, t), py: 'F.mse_loss(x, t)',
  });

  const probs = { v: uniform01([6, 3]), s: [6, 3] };
  const labels = { v: uniform01([6, 3]).map((v) => (v > 0.5 ? 1 : v < 0.2 ? 0 : v)), s: [6, 3] };
  const cw = { v: [0.3, 1.0, 2.2], s: [3] };
  const logits2 = { v: [...randn([5, 3], 3), 40, -40, 60], s: [6, 3] };
  const posWeight = { v: [3.0, 0.5, 1.5], s: [3] };
  for (const r of ['mean', 'sum', 'none'] as const) {
    CASES.push({ name: `binaryCrossEntropy ${r}`, x: probs, t: labels, ts: (x, t) => L.binaryCrossEntropy(x, t, { reduction: r }), py: `F.binary_cross_entropy(x, t, reduction='${r}')` });
    CASES.push({ name: `binaryCrossEntropy per-class weight ${r}`, x: probs, t: labels, w: cw, ts: (x, t, w) => L.binaryCrossEntropy(x, t, { weight: w, reduction: r }), py: `F.binary_cross_entropy(x, t, weight=w, reduction='${r}')` });
    CASES.push({ name: `binaryCrossEntropyWithLogits ${r}`, x: logits2, t: { ...labels, grad: true }, ts: (x, t) => L.binaryCrossEntropyWithLogits(x, t, { reduction: r }), py: `F.binary_cross_entropy_with_logits(x, t, reduction='${r}')` });
    CASES.push({
      name: `binaryCrossEntropyWithLogits weight + posWeight ${r}`,
      x: logits2, t: { ...labels, grad: true }, w: cw, pw: posWeight,
      ts: (x, t, w, pw) => L.binaryCrossEntropyWithLogits(x, t, { weight: w, posWeight: pw, reduction: r }),
      py: `F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction='${r}')`,
    });
  }
}

const PY = `
import torch.nn.functional as F
import warnings
warnings.filterwarnings('ignore')
out = []
for c in inp:
    x = T(c['x']['v']).reshape(c['x']['s']).requires_grad_()
    tv = c['t']
    if tv.get('int'):
        t = torch.tensor(tv['v'], dtype=torch.int64).reshape(tv['s'])
    else:
        t = T(tv['v']).reshape(tv['s']).requires_grad_(bool(tv.get('grad')))
    w = T(c['w']['v']).reshape(c['w']['s']) if c.get('w') else None
    pw = T(c['pw']['v']).reshape(c['pw']['s']) if c.get('pw') else None
    y = eval(c['py'])
    u = torch.cos(torch.arange(y.numel(), dtype=torch.float64)).reshape(y.shape) + 1.5
    (y * u).sum().backward()
    out.append({'y': L(y.reshape(-1)), 'shape': list(y.shape), 'gx': L(x.grad.reshape(-1)),
                'gt': L(t.grad.reshape(-1)) if t.grad is not None else None})
`;

interface Ref {
  y: number[];
  shape: number[];
  gx: number[];
  gt: number[] | null;
}

describe('losses match torch.nn.functional in float64: values and gradients', { skip: noTorch }, () => {
  let ref: Ref[] = [];
  before(() => {
    ref = runTorch<Ref[]>(
      PY,
      CASES.map((c) => ({ x: c.x, t: c.t, w: c.w, pw: c.pw, py: c.py })),
    );
  });

  CASES.forEach((c, i) => {
    test(c.name, () => {
      keel.scope(() => {
        const x = keel.tensor(c.x.v, { dtype: 'float64', shape: c.x.s }).requiresGrad_(true);
        const t = c.t.int
          ? keel.tensor(c.t.v, { dtype: 'int64', shape: c.t.s })
          : keel.tensor(c.t.v, { dtype: 'float64', shape: c.t.s }).requiresGrad_(Boolean(c.t.grad));
        const w = c.w ? keel.tensor(c.w.v, { dtype: 'float64', shape: c.w.s }) : undefined;
        const pw = c.pw ? keel.tensor(c.pw.v, { dtype: 'float64', shape: c.pw.s }) : undefined;
        const y = c.ts(x, t, w, pw);
        const r = ref[i];
        assert.deepEqual(y.shape, r.shape, 'loss shape');
        assertClose(Array.from(y.data() as Float64Array), r.y, { rtol: 1e-12, atol: 1e-14, what: `${c.name}: loss` });
        const n = y.numel();
        const u = keel.arange(n, undefined, 1, { dtype: 'float64' }).cos().add(1.5).reshape(y.shape);
        y.mul(u).sum().backward();
        assertClose(Array.from(x.grad!.data() as Float64Array), r.gx, { rtol: 1e-12, atol: 1e-14, what: `${c.name}: d/dinput` });
        if (r.gt !== null) {
          assert.ok(t.grad, `${c.name}: PyTorch has a target gradient, Keel none`);
          assertClose(Array.from(t.grad!.data() as Float64Array), r.gt, { rtol: 1e-12, atol: 1e-14, what: `${c.name}: d/dtarget` });
        }
      });
    });
  });
});

describe('loss argument checks', () => {
  test('integer targets of other widths are accepted; float class indices are refused with a hint', () => {
    keel.scope(() => {
      const x = keel.tensor([[1, 2, 3], [3, 2, 1]]);
      const want = L.crossEntropy(x, keel.tensor([2, 0], { dtype: 'int64' })).item();
      assert.equal(L.crossEntropy(x, keel.tensor([2, 0], { dtype: 'int32' })).item(), want);
      assert.throws(() => L.crossEntropy(x, keel.tensor([2, 0])), /integer tensor \(int64\).*\.long\(\)/);
      assert.throws(() => L.nllLoss(x, keel.tensor([2, 0])), /int64/);
    });
  });

  test('bad reductions, shapes and options are refused', () => {
    keel.scope(() => {
      const x = keel.tensor([0.2, 0.7]);
      assert.throws(() => L.mseLoss(x, x, { reduction: 'avg' as never }), /reduction must be/);
      assert.throws(() => L.binaryCrossEntropy(x, keel.tensor([[1, 0]])), /must equal input shape/);
      assert.throws(() => L.binaryCrossEntropyWithLogits(x, keel.tensor([1])), /must equal input shape/);
      assert.throws(() => L.huberLoss(x, x, { delta: 0 }), /delta/);
      assert.throws(() => L.smoothL1Loss(x, x, { beta: -1 }), /beta/);
      assert.throws(() => L.crossEntropy(keel.tensor([[1, 2]]), keel.tensor([0], { dtype: 'int64' }), { labelSmoothing: 1.5 }), /labelSmoothing/);
      assert.throws(() => L.crossEntropy(keel.tensor([[1, 2]]), keel.tensor([5], { dtype: 'int64' })), /out of bounds|Target 5/);
    });
  });

  test('losses free their temporaries', () => {
    const x = keel.randn([4, 3]).keep();
    const t = keel.tensor([0, 1, 2, 1], { dtype: 'int32' }).keep();
    const before = keel.memory().tensors;
    for (let i = 0; i < 5; i++) L.crossEntropy(x, t).dispose();
    L.mseLoss(x, keel.randn([1, 3]).keep()).dispose();
    assert.equal(keel.memory().tensors, before + 1); // the kept [1, 3] target
    keel.dispose([x, t]);
  });
});
