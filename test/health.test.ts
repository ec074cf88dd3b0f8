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

test('under a precision policy, a due step counts per op and module the values rounding made ±inf or 0 (fp16, by hand)', () => {
  class Scale extends nn.Module<[keel.Tensor], keel.Tensor> {
    constructor(readonly factor: number) { super(); }
    forward(x: keel.Tensor): keel.Tensor { return x.mul(this.factor); }
  }
  const lin = new nn.Linear(1, 4, { bias: false });
  keel.noGrad(() => lin.weight.copy_(keel.tensor([[30000], [1], [16], [0]])));
  const model = new nn.Sequential(lin, new Scale(2 ** -30));
  const monitor = new keel.train.HealthMonitor(model, { every: 1 });
  monitor.begin();
  // y = x·w: 90000 and −90000 overflow fp16 (max 65504) in the linear layer;
  // ×2^-30, the eight values of magnitude ≤ 32 other than 0 fall to or below
  // half of fp16's least subnormal 2^-24 (32·2^-30 = 2^-25 is a tie, rounds to
  // even: 0), 48·2^-30 rounds up to 2^-24, inf stays inf (not an overflow)
  keel.withPrecision('fp16', () => model.call(keel.tensor([[1], [2], [3], [-3]])));
  const rec = monitor.record(1);
  assert.equal(rec.layers['0'].overflow, 2);
  assert.equal(rec.layers['0'].underflow, 0);
  assert.equal(rec.layers['1'].overflow, 0);
  assert.equal(rec.layers['1'].underflow, 6, 'w = 1: 1, 2, 3, −3; w = 16: 16 and 32');
  const byOp = rec.precision!.ops;
  assert.equal(Object.values(byOp).reduce((s, o) => s + o.overflow, 0), 2);
  assert.equal(Object.values(byOp).reduce((s, o) => s + o.underflow, 0), 6);
  assert.ok(Object.keys(byOp).every((k) => k.startsWith('aten::')), Object.keys(byOp).join(', '));

  // data entering the format is counted at the op that reads it
  const one = new nn.Linear(1, 1, { bias: false });
  keel.noGrad(() => one.weight.fill_(1));
  const m2 = new keel.train.HealthMonitor(one, { every: 1 });
  m2.begin();
  keel.withPrecision('fp16', () => one.call(keel.tensor([[1e5], [1e-9], [1]])));
  const r2 = m2.record(1);
  assert.equal(r2.layers['(model)'].overflow, 1);
  assert.equal(r2.layers['(model)'].underflow, 1);
  // outside a due step nothing is counted, and without a policy there is no precision field
  assert.equal(keel.roundingCounter(), undefined);
  const m3 = new keel.train.HealthMonitor(one, { every: 1 });
  m3.begin();
  one.call(keel.tensor([[1e5]]));
  assert.equal(m3.record(1).precision, undefined);
});

test('the per-op rounding counts become TensorBoard scalars', () => {
  const ev = keel.log.eventsFromMetricsLine({ event: 'health', step: 7, layers: { fc: { overflow: 2, underflow: 1 } }, precision: { ops: { 'aten::mm': { overflow: 2, underflow: 1 } } } });
  const tags = Object.fromEntries(ev.map((e) => [e.tag, e.kind === 'scalar' ? e.value : undefined]));
  assert.deepEqual(tags, { 'health/overflow/fc': 2, 'health/underflow/fc': 1, 'precision/overflow/aten::mm': 2, 'precision/underflow/aten::mm': 1 });
});
