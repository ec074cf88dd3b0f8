// The optimizers' bound on their next step (optim/update-bound.ts) holds on
// every step, whatever the gradients' scale and however the recursion it
// carries is broken (unannounced steps, a state handed out and changed,
// a loaded state), and the guard's skip uses it: a healthy update is not
// copied, an update that could overflow still is, and is undone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';

const { FINITE_STEP } = keel.optim;

function params(seed: number): keel.Tensor[] {
  keel.manualSeed(seed);
  return [keel.randn([7, 5]), keel.randn([5]), keel.randn([3, 2, 4]).mul(1e3)].map((t) => t.requiresGrad_(true).keep());
}

/** Gradients c (random, scaled by 10^k), set through backward of Σ p·c. */
function setGradients(ps: keel.Tensor[], scale: number): void {
  keel.scope(() => {
    let loss = keel.zeros([]);
    for (const p of ps) loss = loss.add(p.mul(keel.randn(p.shape).mul(scale)).sum());
    loss.backward();
  });
}

function f64(ps: keel.Tensor[]): Float64Array[] {
  return ps.map((p) => Float64Array.from(p.detach().data() as Float32Array));
}

type Bounded = keel.optim.Optimizer;

/** [name, optimizer, c of each parameter (AdamW's p ← c·p before the step; 1 elsewhere)] */
const CONFIGS: [string, (ps: keel.Tensor[]) => Bounded, number[]][] = [
  ['SGD', (ps) => new keel.optim.SGD(ps, { lr: 0.1 }), [1, 1, 1]],
  ['SGD, momentum, dampening, weight decay', (ps) => new keel.optim.SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.2, weightDecay: 1e-2 }), [1, 1, 1]],
  ['SGD, Nesterov, maximize', (ps) => new keel.optim.SGD(ps, { lr: 0.05, momentum: 0.99, nesterov: true, maximize: true }), [1, 1, 1]],
  ['Adam, L2 decay', (ps) => new keel.optim.Adam(ps, { lr: 1e-2, weightDecay: 1e-1 }), [1, 1, 1]],
  ['AdamW', (ps) => new keel.optim.AdamW(ps, { lr: 1e-1, weightDecay: 1 }), [0.9, 0.9, 0.9]],
  ['Adam, AMSGrad, β1 = 0', (ps) => new keel.optim.Adam(ps, { lr: 1e-3, betas: [0, 0.5], amsgrad: true, eps: 1e-12 }), [1, 1, 1]],
  ['AdamW, two groups', (ps) => new keel.optim.AdamW([{ params: ps.slice(0, 2) }, { params: ps.slice(2), lr: 1, betas: [0.5, 0.9] }], {}), [1 - 1e-5, 1 - 1e-5, 0.99]],
];

/**
 * max |Δ| of p' = fl(c·p + Δ), each Δ read back as p' − fl(c·p) less the
 * half ulp p' was rounded by (≤ 2⁻²⁴·|p'|).
 */
function largestStep(before: Float64Array[], after: Float64Array[], decay: number[]): number {
  let moved = 0;
  after.forEach((a, i) => {
    const c = Math.fround(decay[i]);
    a.forEach((v, j) => {
      const decayed = c === 1 ? before[i][j] : Math.fround(before[i][j] * c);
      moved = Math.max(moved, Math.abs(v - decayed) - 2 ** -24 * Math.abs(v));
    });
  });
  return moved;
}

for (const [name, make, decay] of CONFIGS) {
  test(`${name}: every |Δp| of every step is within boundNextStep(‖g‖₂)`, () => {
    const ps = params(3);
    const opt = make(ps);
    for (let step = 0; step < 40; step++) {
      // gradient scales from 1e-30 to 1e15, changing abruptly
      const scale = 10 ** [-30, -3, 0, 2, 15, -8, 1][step % 7];
      opt.zeroGrad(true);
      setGradients(ps, scale);
      const before = f64(ps);
      if (step % 9 === 4) {
        // a step the bound did not announce (updateBound only asks): the next bound reads the state
        opt.updateBound(1e-30);
        opt.step();
        continue;
      }
      if (step % 13 === 6) {
        // the state handed out and changed in place
        for (const t of Object.values(opt.stateDict().tensors)) keel.noGrad(() => t.mul_(1e6));
      }
      const bound = opt.boundNextStep(keel.optim.gradNorm(ps));
      assert.ok(bound !== undefined, `step ${step}: bounded`);
      opt.step();
      const moved = largestStep(before, f64(ps), decay);
      assert.ok(moved <= bound, `step ${step} (gradients ×${scale}): moved ${moved} > bound ${bound}`);
      // before the state is blown up by hand (step 6), no step is near overflow: each is proven
      if (step < 6) assert.ok(bound < FINITE_STEP, `step ${step}: a healthy step is proven (${bound})`);
    }
    // a loaded state is read afresh too (a fresh run: the one above has blown its state up)
    const qs = params(4);
    const fresh = make(qs);
    for (let step = 0; step < 3; step++) {
      fresh.zeroGrad(true);
      setGradients(qs, 1);
      fresh.boundNextStep(keel.optim.gradNorm(qs));
      fresh.step();
    }
    const sd = fresh.stateDict();
    const big = Object.fromEntries(Object.entries(sd.tensors).map(([k, t]) => [k, t.mul(1e3).keep()]));
    fresh.loadStateDict({ ...sd, tensors: big });
    for (const t of Object.values(big)) t.dispose();
    fresh.zeroGrad(true);
    setGradients(qs, 1e-6);
    const before = f64(qs);
    const bound = fresh.boundNextStep(keel.optim.gradNorm(qs));
    assert.ok(bound !== undefined);
    fresh.step();
    const moved = largestStep(before, f64(qs), decay);
    assert.ok(moved <= bound, `after loadStateDict: moved ${moved} > bound ${bound}`);
  });
}

test('updateBound: no bound where the update is not the class\'s own, or cannot be bounded', () => {
  const ps = params(5);
  setGradients(ps, 1);
  const patched = new keel.optim.SGD(ps, { lr: 0.1 });
  const step = patched.step.bind(patched);
  patched.step = (() => step()) as typeof patched.step;
  assert.equal(patched.updateBound(1), undefined, 'a patched step');
  class Custom extends keel.optim.AdamW {}
  assert.equal(new Custom(ps).updateBound(1), undefined, 'a subclass');
  assert.equal(new keel.optim.Adam(ps, { eps: 0 }).updateBound(1), undefined, 'eps = 0');
  assert.equal(new keel.optim.AdamW(ps, { lr: 10, weightDecay: 1 }).updateBound(1), undefined, 'lr·weightDecay > 1');
  assert.equal(new keel.optim.SGD(ps, { lr: 0.1 }).updateBound(Number.NaN), undefined, 'a NaN gradient norm');
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const half = keel.randn([4]).to({ dtype }).requiresGrad_(true).keep();
    assert.equal(new keel.optim.SGD([...ps, half], { lr: 0.1 }).updateBound(1), undefined, `a ${dtype} parameter`);
  }
  assert.ok(new keel.optim.SGD(ps.map((p) => p.detach().to({ dtype: 'float64' }).requiresGrad_(true).keep()), { lr: 0.1 }).updateBound(1)! < FINITE_STEP, 'float64 parameters');
  assert.ok(new keel.optim.SGD(ps, { lr: 1e38 }).updateBound(1e3)! >= FINITE_STEP, 'an lr that can overflow is not proven');
  assert.equal(new keel.optim.RMSprop(ps, { lr: 0.1 }).updateBound(1), undefined, 'an optimizer without a bound');
});

function mlp(seed: number) {
  keel.manualSeed(seed);
  const model = new keel.nn.zoo.MLP({ inFeatures: 8, numClasses: 4, hidden: [16] });
  const x = keel.randn([16, 8]).keep();
  const y = keel.randint(0, 4, [16]).keep();
  return { model, x, y };
}

test('guard skip: healthy updates are proven small and not copied, the same numbers as without the guard; a blow-up is copied and undone', () => {
  for (const make of [
    (m: keel.nn.Module) => new keel.optim.AdamW(m.parameters(), { lr: 1e-2 }),
    (m: keel.nn.Module) => new keel.optim.SGD(m.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 }),
  ]) {
    const a = mlp(2);
    const b = mlp(2);
    const optA = make(a.model);
    const guard = new keel.Guard({ model: a.model, optimizer: optA, policy: 'skip' });
    const optB = make(b.model);
    for (let i = 0; i < 5; i++) {
      assert.equal(guard.stepSync(() => keel.losses.crossEntropy(a.model.call(a.x) as keel.Tensor, a.y)).ok, true);
      keel.scope(() => {
        optB.zeroGrad(true);
        keel.losses.crossEntropy(b.model.call(b.x) as keel.Tensor, b.y).backward();
        optB.step();
      });
    }
    assert.deepEqual(guard.updates, { copied: 0, proven: 5 });
    a.model.parameters().forEach((p, i) => assert.deepEqual(p.data(), b.model.parameters()[i].data()));
    guard.dispose();
  }
  // lr 1e38 (the update overflows) and lr 1e25 (finite, but parameters of norm ~1e25: past what the
  // check's float32 squared norms hold): not provably small, so copied, and skip undoes the update at once
  for (const lr of [1e38, 1e25]) {
    const { model, x, y } = mlp(4);
    const guard = new keel.Guard({ model, optimizer: new keel.optim.SGD(model.parameters(), { lr }), policy: 'skip' });
    const before = model.parameters().map((p) => p.data());
    const r = guard.stepSync(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y));
    assert.equal(r.ok, false, `lr ${lr}`);
    assert.equal(r.event!.report.phase, 'update');
    assert.equal(r.event!.report.causeId, 'lr-blowup');
    assert.deepEqual(guard.updates, { copied: 1, proven: 0 });
    model.parameters().forEach((p, i) => assert.deepEqual(p.data(), before[i]));
    guard.dispose();
  }
});
