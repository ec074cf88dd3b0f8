// Per-layer health telemetry: the values one step records equal what a
// direct computation over the same tensors gives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';

const { nn, ops } = keel;

const flat = (t: keel.Tensor): number[] => Array.from(t.flatten().to('float64').data() as Float64Array);
const norm = (xs: number[]): number => Math.sqrt(xs.reduce((s, x) => s + x * x, 0));
const close = (a: number | undefined, b: number, what: string): void => {
  assert.ok(a !== undefined && Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
};

test('one health step equals a direct computation: gradient and parameter norms, max |g|, update ratio, saturation, dead fraction', () => {
  keel.manualSeed(4);
  const model = new nn.Sequential(new nn.Linear(6, 16), new nn.ReLU(), new nn.Linear(16, 4), new nn.Sigmoid());
  // a saturating head: large weights make some sigmoid outputs round to 1 or 0
  keel.noGrad(() => (model.get(2) as keel.nn.Linear).weight.mul_(40));
  const opt = new keel.optim.SGD(model.parameters(), { lr: 0.1 });
  const monitor = new keel.train.HealthMonitor(model, { every: 5 });
  assert.equal(monitor.due(4), false);
  assert.equal(monitor.due(5), true);
  const x = keel.randn([32, 6]);
  const y = keel.rand([32, 4]);
  monitor.begin();
  opt.zeroGrad();
  let relu: number[] = [];
  let sig: number[] = [];
  const hr = model.get(1).registerForwardHook((_m, _i, o) => { relu = flat(o as keel.Tensor); });
  const hs = model.get(3).registerForwardHook((_m, _i, o) => { sig = Array.from((o as keel.Tensor).flatten().data() as Float32Array); });
  const loss = ops.mseLoss(model.call(x), y);
  loss.backward();
  hr.remove();
  hs.remove();
  const before = model.namedParameters().map(([n, p]) => [n, flat(p)] as const);
  const grads = model.namedParameters().map(([n, p]) => [n, flat(p.grad!)] as const);
  opt.step();
  const beforeRecord = keel.memory().tensors;
  const rec = monitor.record(5);
  assert.ok(keel.memory().tensors < beforeRecord, 'record() freed the step\'s copies');
  assert.equal(rec.event, 'health');
  assert.equal(rec.step, 5);
  assert.deepEqual(Object.keys(rec.layers).sort(), ['0', '1', '2', '3']);
  for (const layer of ['0', '2']) {
    const g = grads.filter(([n]) => n.startsWith(`${layer}.`)).flatMap(([, v]) => v);
    const p0 = before.filter(([n]) => n.startsWith(`${layer}.`)).flatMap(([, v]) => v);
    const p1 = model.namedParameters().filter(([n]) => n.startsWith(`${layer}.`)).flatMap(([, p]) => flat(p));
    const h = rec.layers[layer];
    close(h.gradNorm, norm(g), `${layer} gradNorm`);
    close(h.gradMax, Math.max(...g.map(Math.abs)), `${layer} gradMax`);
    close(h.paramNorm, norm(p1), `${layer} paramNorm`);
    close(h.updateRatio, norm(p1.map((v, i) => v - p0[i])) / norm(p1), `${layer} updateRatio`);
    assert.equal(h.nonFinite, 0);
  }
  close(rec.layers['1'].dead, relu.filter((v) => v === 0).length / relu.length, 'ReLU dead fraction');
  const lo = 2 ** -149, hi = 1 - 2 ** -24;
  const saturated = sig.filter((v) => v >= hi || v <= lo).length;
  assert.ok(saturated > 0, 'the head saturates');
  close(rec.layers['3'].saturation, saturated / sig.length, 'sigmoid saturation');
});

test('a step that is not due costs nothing; every 0 turns the telemetry off; bad options are Errors', () => {
  const model = new nn.Linear(2, 2);
  const off = new keel.train.HealthMonitor(model, { every: 0 });
  assert.equal(off.due(50), false);
  assert.throws(() => new keel.train.HealthMonitor(model, { every: -1 }), /every must be an integer ≥ 0/);
  const m = new keel.train.HealthMonitor(model, { every: 50 });
  const live = keel.memory().tensors;
  m.begin();
  assert.ok(keel.memory().tensors > live, 'begin() keeps the parameters for the update ratio');
  m.end();
  assert.equal(keel.memory().tensors, live, 'end() frees them');
});
