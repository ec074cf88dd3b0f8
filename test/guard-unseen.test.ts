// Faults an outside check built without looking at the rules table, each of
// which the guard once blamed on the wrong op: a non-finite input batch, a
// NaN made only in a custom Function's backward, a fully masked softmax row,
// NaN in BatchNorm's running statistics, a model run by .forward(), and
// Adam with eps = 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';

const { ops, nn } = keel;

function mlp(seed = 0): keel.nn.Sequential {
  keel.manualSeed(seed);
  return new nn.Sequential(new nn.Linear(6, 8), new nn.ReLU(), new nn.Linear(8, 3));
}

function firstEvent(model: keel.nn.Module<any[], unknown>, loss: () => keel.Tensor, optimizer?: keel.optim.Optimizer): keel.GuardStepResult {
  const guard = new keel.Guard({ model, optimizer: optimizer ?? new keel.optim.SGD(model.parameters(), { lr: 0.1 }), policy: 'skip' });
  const r = guard.stepSync(loss);
  guard.dispose();
  return r;
}

test('inf in the input batch is bad data, named by the argument that consumed it, not an op fault', () => {
  const model = mlp();
  const x = keel.randn([4, 6]);
  x.index([1, 2]).fill_(Infinity);
  const y = keel.tensor([0, 1, 2, 0], { dtype: 'int64' });
  const r = firstEvent(model, () => ops.crossEntropyLoss(model.call(x), y));
  assert.equal(r.ok, false);
  const rep = r.event!.report;
  assert.equal(rep.causeId, 'non-finite-input');
  assert.equal(rep.phase, 'forward');
  assert.match(rep.op, /aten::linear|aten::addmm/);
  assert.equal(rep.module, '0');
  assert.match(rep.cause, /the input 'input' of aten::\w+ in 0 already holds 0 NaN and 1 ±inf of 24 values: .* the data \(batch or target\) are bad/);
});

test('a parameter loaded non-finite is named as the parameter', () => {
  const model = mlp();
  const w = (model as keel.nn.Sequential).get(2).parameters()[0];
  keel.noGrad(() => w.index([0, 0]).fill_(Number.NaN));
  const x = keel.randn([4, 6]);
  const r = firstEvent(model, () => model.call(x).square().mean());
  assert.equal(r.event!.report.causeId, 'non-finite-input');
  assert.match(r.event!.report.cause, /the parameter '2\.weight' already holds 1 NaN/);
});

class BadBackward extends keel.autograd.Function {
  static override forward(ctx: keel.autograd.FunctionContext, x: keel.Tensor): keel.Tensor {
    ctx.saveForBackward(x);
    return ops.abs(x);
  }
  static override backward(ctx: keel.autograd.FunctionContext, g: keel.Tensor): keel.Tensor {
    const [x] = ctx.savedTensors;
    return g.mul(x.sign()).div(0); // 0/0 and x/0: the backward alone makes NaN/inf
  }
}

test('a NaN made only inside a custom Function\'s backward names the Function and the backward phase', () => {
  const model = mlp();
  const x = keel.randn([4, 6]);
  const r = firstEvent(model, () => BadBackward.apply<keel.Tensor>(model.call(x)).mean());
  const rep = r.event!.report;
  assert.equal(rep.op, 'Function BadBackward');
  assert.equal(rep.phase, 'backward');
  assert.equal(rep.causeId, 'custom-function-backward');
});

test('a fully masked attention row: the softmax that turns the −inf fill into NaN, not the fill', () => {
  const model = mlp();
  const x = keel.randn([4, 6]);
  const mask = keel.tensor([[false, true, false], [true, true, true], [false, false, true], [false, false, false]]);
  const r = firstEvent(model, () => {
    const scores = ops.maskedFill(model.call(x), mask, -Infinity);
    return ops.softmax.int(scores, 1).sum();
  });
  const rep = r.event!.report;
  assert.match(rep.op, /softmax/);
  assert.equal(rep.causeId, 'fully-masked-row');
  assert.match(rep.cause, /fully masked row/);
  assert.doesNotMatch(rep.format(), /= null/);
});

test('NaN written into BatchNorm\'s running statistics while the loss stays finite is an event, and skip restores them', () => {
  keel.manualSeed(0);
  const bn = new nn.BatchNorm1d(3);
  const model = new nn.Sequential(new nn.Linear(4, 3), bn);
  const before0 = bn.runningMean!.toArray();
  const x = keel.randn([8, 4]);
  const before = bn.runningVar!.toArray();
  const bad = keel.randn([8, 3]);
  bad.index([2, 1]).fill_(Infinity);
  const r = firstEvent(model, () => {
    bn.call(bad); // a side forward (a probe, a metric) whose output reaches no loss
    return (model.get(0).call(x) as keel.Tensor).square().mean();
  });
  assert.equal(r.ok, false);
  const rep = r.event!.report;
  assert.equal(rep.causeId, 'non-finite-buffer');
  assert.match(rep.op, /^buffer 1\.running_(mean|var)$/);
  assert.equal(rep.detectedIn, 'buffers');
  assert.deepEqual(bn.runningVar!.toArray(), before, 'skip restored the running statistics of the step\'s start');
  assert.deepEqual(bn.runningMean!.toArray(), before0);
});

test('a model run with .forward() directly: the report says the module is unknown and why', () => {
  const model = mlp();
  const x = keel.randn([4, 6]);
  const r = firstEvent(model, () => ops.log(model.forward(x).sub(100)).mean());
  assert.match(r.event!.report.format(), /module: +\(unknown: .*\.forward\(\) directly/);
});

test('Adam with eps = 0 is caught in the step that made the NaN, as a zero denominator', () => {
  keel.manualSeed(0);
  const model = new nn.Linear(3, 1);
  const x = keel.tensor([[1, 0, 2], [3, 0, 1]]); // the second weight gets a gradient of exactly 0
  const opt = new keel.optim.Adam(model.parameters(), { lr: 0.01, eps: 0 });
  const r = firstEvent(model, () => model.call(x).square().mean(), opt);
  assert.equal(r.ok, false);
  assert.equal(r.event!.report.phase, 'update');
  assert.equal(r.event!.report.causeId, 'optimizer-zero-denominator');
  for (const p of model.parameters()) assert.ok(p.isfinite().all().item(), 'skip undid the update');
});
