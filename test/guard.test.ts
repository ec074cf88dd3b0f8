// keel.Guard: the report's fields and rules, each policy's effect, the early
// warnings, the metrics log, and the fit-loop / CLI surfaces. The measured
// detection claim is in guard-faults.test.ts; the overhead is in bench/guard.mjs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const { ops } = keel;

function mlp(seed = 0, out = 4) {
  keel.manualSeed(seed);
  const model = new keel.nn.zoo.MLP({ inFeatures: 8, numClasses: out, hidden: [16] });
  const x = keel.randn([16, 8]).keep();
  const y = keel.randint(0, out, [16]).keep();
  return { model, x, y };
}

function snapshotParams(model: keel.nn.Module): Float32Array[] {
  return model.parameters().map((p) => p.data() as Float32Array);
}

function assertSameParams(a: Float32Array[], b: Float32Array[]): void {
  assert.equal(a.length, b.length);
  a.forEach((t, i) => assert.deepEqual(Array.from(t), Array.from(b[i]), `parameter ${i}`));
}

/** SILog-like loss: √(mean d² − λ mean(d)²), exactly 0 when prediction = target. */
function silog(pred: keel.Tensor, target: keel.Tensor, safe = false): keel.Tensor {
  const d = pred.sub(target);
  const v = d.pow(2).mean().sub(d.mean().pow(2).mul(0.5));
  return safe ? ops.sqrt(v.add(1e-8)) : ops.sqrt(v);
}

test('a healthy step: the update is applied, loss and gradient norm come back', async () => {
  const { model, x, y } = mlp();
  const optimizer = new keel.optim.Adam(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer });
  const before = snapshotParams(model);
  const r = await guard.step(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y));
  assert.equal(r.ok, true);
  assert.ok(Number.isFinite(r.loss) && r.loss > 0);
  assert.ok(r.gradNorm > 0);
  assert.notDeepEqual(Array.from(snapshotParams(model)[0]), Array.from(before[0]));
  guard.dispose();
});

test('raise: NonFiniteError whose report names op, phase, module, inputs, cause, remedies, step, callSite', async () => {
  const { model, x } = mlp(1, 1);
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer, policy: 'raise' });
  const before = snapshotParams(model);
  await assert.rejects(
    guard.step(() => {
      const pred = model.call(x) as keel.Tensor;
      return silog(pred, pred.detach());
    }),
    (e: unknown) => {
      assert.ok(e instanceof keel.NonFiniteError);
      const r = e.report;
      assert.equal(r.op, 'aten::sqrt');
      assert.equal(r.phase, 'backward');
      assert.equal(r.module, '');
      assert.equal(r.causeId, 'sqrt-at-zero');
      assert.match(r.cause, /SILog/);
      assert.ok(r.remedies.some((m) => /eps|epsilon/.test(m)));
      assert.equal(r.step, 1);
      assert.match(r.callSite, /guard\.test\.(js|ts):\d+:\d+/);
      const s = r.inputs.find((i) => i.name === 'self')!;
      assert.equal(s.dtype, 'float32');
      assert.equal(s.zeros, 1);
      assert.equal(s.minAbs, 0);
      for (const k of ['op', 'phase', 'module', 'inputs', 'cause', 'remedies']) assert.ok(k in r.toJSON(), k);
      assert.match(r.format(), /aten::sqrt \(backward\)/);
      assert.match(String(e.message), /sqrt/);
      return true;
    },
  );
  assertSameParams(snapshotParams(model), before);
  guard.dispose();
});

test('module paths and rules: log of a sigmoid that underflowed, in the model\'s head', () => {
  class Head extends keel.nn.Module {
    fc = new keel.nn.Linear(8, 1);
    act = new keel.nn.Sigmoid();
    forward(x: keel.Tensor): keel.Tensor {
      return ops.log(this.act.call(this.fc.call(x)));
    }
  }
  class Net extends keel.nn.Module {
    body = new keel.nn.Linear(8, 8);
    head = new Head();
    forward(x: keel.Tensor): keel.Tensor {
      return this.head.call(this.body.call(x));
    }
  }
  keel.manualSeed(3);
  const net = new Net();
  keel.noGrad(() => net.head.fc.weight.mul_(400));  // a final layer whose init saturates the sigmoid
  const x = keel.randn([32, 8]);
  const guard = new keel.Guard({ model: net, optimizer: new keel.optim.SGD(net.parameters(), { lr: 1e-3 }), policy: 'skip' });
  const r = guard.stepSync(() => (net.call(x) as keel.Tensor).mean().neg());
  assert.equal(r.ok, false);
  const rep = r.event!.report;
  assert.equal(rep.op, 'aten::log');
  assert.equal(rep.module, 'head');
  assert.equal(rep.phase, 'forward');
  assert.equal(rep.causeId, 'log-sigmoid-underflow');
  assert.equal(rep.inputs[0].producer, 'aten::sigmoid');
  assert.ok(rep.remedies.some((m) => /logSigmoid/.test(m)));
  assert.ok(rep.remedies.some((m) => /final layer small/.test(m)));
  const sat = r.warnings.find((w) => w.kind === 'saturation');
  assert.ok(sat, 'saturation warned');
  assert.match(sat.message, /aten::sigmoid @ head\.act/);
  guard.dispose();
});

test('skip: the step is dropped and parameters and optimizer state equal the pre-step ones', () => {
  const { model, x, y } = mlp(2);
  const optimizer = new keel.optim.Adam(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
  for (let i = 0; i < 3; i++) guard.stepSync(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y));
  const before = snapshotParams(model);
  const stateBefore = Object.fromEntries(Object.entries(optimizer.stateDict().tensors).map(([k, t]) => [k, Array.from(t.data() as Float32Array)]));
  const r = guard.stepSync(() => ops.log(ops.relu((model.call(x) as keel.Tensor).neg().abs().neg())).mean());
  assert.equal(r.ok, false);
  assert.equal(r.event!.action, 'skipped');
  assertSameParams(snapshotParams(model), before);
  const stateAfter = Object.fromEntries(Object.entries(optimizer.stateDict().tensors).map(([k, t]) => [k, Array.from(t.data() as Float32Array)]));
  assert.deepEqual(stateAfter, stateBefore);
  assert.equal(model.parameters().every((p) => p.grad === undefined), true, 'gradients cleared');
  const next = guard.stepSync(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y));
  assert.equal(next.ok, true);
  guard.dispose();
});

test('flush() reads the parameters after the last update: a bad last update is found and undone', () => {
  const { model, x, y } = mlp(13);
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
  const step = optimizer.step.bind(optimizer);
  optimizer.step = (<T>(closure?: () => T) => {
    const out = step(closure);
    keel.noGrad(() => model.parameters()[2].fill_(Number.NaN));
    return out;
  }) as typeof optimizer.step;
  const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
  const before = snapshotParams(model);
  assert.equal(guard.stepSync(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y)).ok, true);
  const ev = guard.flush();
  assert.ok(ev !== undefined, 'the bad update is found');
  assert.equal(ev.report.phase, 'update');
  assert.equal(ev.report.step, 1);
  assert.equal(ev.action, 'skipped');
  assertSameParams(snapshotParams(model), before);
  assert.equal(guard.flush(), undefined, 'nothing left to check');
  guard.dispose();
});

test('learning-rate blow-up: updated parameters non-finite from finite gradients; skip undoes the update', () => {
  const { model, x, y } = mlp(4);
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e38 });
  const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
  const before = snapshotParams(model);
  const r = guard.stepSync(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y).mul(1e3));
  assert.equal(r.ok, false);
  const rep = r.event!.report;
  assert.equal(rep.phase, 'update');
  assert.equal(rep.causeId, 'lr-blowup');
  assert.ok(rep.remedies.some((m) => /learning rate/.test(m)));
  assertSameParams(snapshotParams(model), before);
  guard.dispose();
});

test('an update that went non-finite is found with the next step\'s read and undone', () => {
  const { model, x, y } = mlp(12);
  const optimizer = new keel.optim.Adam(model.parameters(), { lr: 1e-2 });
  // an optimizer whose 2nd update writes inf (as a broken custom update rule would)
  const step = optimizer.step.bind(optimizer);
  let updates = 0;
  optimizer.step = (<T>(closure?: () => T) => {
    const out = step(closure);
    if (++updates === 2) keel.noGrad(() => model.parameters()[1].fill_(Number.POSITIVE_INFINITY));
    return out;
  }) as typeof optimizer.step;
  const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
  const ce = () => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y);
  assert.equal(guard.stepSync(ce).ok, true);
  const beforeUpdate = snapshotParams(model);
  assert.equal(guard.stepSync(ce).ok, true);  // the check is read with the next step's
  const r = guard.stepSync(ce);
  assert.equal(r.ok, false);
  assert.equal(r.event!.report.phase, 'update');
  assert.equal(r.event!.report.step, 2);
  assert.equal(r.event!.report.module, 'layers.0');
  assertSameParams(snapshotParams(model), beforeUpdate);
  assert.equal(guard.stepSync(ce).ok, true);
  guard.dispose();
});

test('rollback: restores the last good snapshot and backs the learning rate off', () => {
  const { model, x, y } = mlp(5);
  const optimizer = new keel.optim.AdamW(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer, policy: 'rollback', snapshotEvery: 3, lrBackoff: 0.5 });
  const ce = () => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y);
  guard.stepSync(ce);
  guard.stepSync(ce);
  guard.stepSync(ce);
  const atSnapshot = snapshotParams(model);  // step 4 takes the snapshot before it runs
  guard.stepSync(ce);
  guard.stepSync(ce);
  const r = guard.stepSync(() => ce().mul(Number.NaN));
  assert.equal(r.event!.action, 'rolled-back');
  assertSameParams(snapshotParams(model), atSnapshot);
  assert.equal(optimizer.paramGroups[0].lr, 5e-3);
  assert.equal(guard.stepSync(ce).ok, true);
  guard.dispose();
});

test('repair: re-initialises a saturating final layer small, and training continues finite', () => {
  keel.manualSeed(6);
  const model = new keel.nn.Sequential(new keel.nn.Linear(8, 16), new keel.nn.ReLU(), new keel.nn.Linear(16, 1));
  const last = model.parameters()[2];
  keel.noGrad(() => last.mul_(1000));
  const x = keel.randn([32, 8]);
  const target = keel.rand([32, 1]).mul(0.5).add(0.25);
  const optimizer = new keel.optim.Adam(model.parameters(), { lr: 1e-3 });
  const guard = new keel.Guard({ model, optimizer, policy: 'repair' });
  // a depth-style head: log(sigmoid(z)) compared in log space
  const loss = () => ops.log(ops.sigmoid(model.call(x) as keel.Tensor)).sub(target.log()).pow(2).mean();
  const r = guard.stepSync(loss);
  // the remedy, then the same batch again: this time the update is applied
  assert.equal(r.event!.action, 'repaired');
  assert.ok(r.event!.detail.some((d) => /re-initialised 2/.test(d)), r.event!.detail.join('; '));
  assert.ok(r.event!.detail.includes('batch retried (1/1)'), r.event!.detail.join('; '));
  assert.equal(r.retries, 1);
  assert.equal(r.events.length, 1);
  assert.equal(r.ok, true);
  assert.ok(Number.isFinite(r.loss));
  const w = last.data() as Float32Array;
  const std = Math.sqrt(w.reduce((a, v) => a + v * v, 0) / w.length);
  assert.ok(std < 3e-3, `final layer std ${std}`);
  for (let i = 0; i < 5; i++) {
    const s = guard.stepSync(loss);
    assert.equal(s.ok, true);
    assert.ok(Number.isFinite(s.loss));
  }
  guard.dispose();
});

test('repair: a registered remedy swaps the loss for its safe variant (guard.onRepair)', () => {
  const { model, x } = mlp(7, 1);
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer, policy: 'repair' });
  let safe = false;
  guard.onRepair('sqrt-at-zero', () => {
    safe = true;
    return 'switched to the safe SILog';
  });
  const step = () => guard.stepSync(() => {
    const pred = model.call(x) as keel.Tensor;
    return silog(pred, pred.detach(), safe);
  });
  const r = step();
  assert.equal(r.event!.action, 'repaired');
  assert.deepEqual(r.event!.detail, ['switched to the safe SILog', 'batch retried (1/1)']);
  assert.equal(safe, true);
  assert.equal(r.ok, true, 'the retried batch, with the safe loss, is applied');
  for (let i = 0; i < 3; i++) assert.equal(step().ok, true);
  guard.dispose();
});

test('repair: a batch still non-finite after the remedy is dropped as skip would drop it', () => {
  const { model, x } = mlp(7, 1);
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
  const before = snapshotParams(model);
  const guard = new keel.Guard({ model, optimizer, policy: 'repair', repairRetries: 2 });
  let calls = 0;
  guard.onRepair('sqrt-at-zero', () => `remedy ${++calls} (which does not help)`);
  const r = guard.stepSync(() => {
    const pred = model.call(x) as keel.Tensor;
    return silog(pred, pred.detach(), false);
  });
  assert.equal(r.ok, false);
  assert.equal(r.retries, 2);
  assert.deepEqual(r.events.map((e) => e.action), ['repaired', 'repaired', 'skipped']);
  assert.equal(calls, 2);
  assert.match(r.events[2].detail[0], /still not finite after 2 repair\(s\): step dropped/);
  assertSameParams(snapshotParams(model), before);
  assert.throws(() => new keel.Guard({ model, optimizer, policy: 'repair', repairRetries: -1 }), /repairRetries must be an integer ≥ 0, got -1/);
  guard.dispose();
});

test('early warning: a gradient-norm spike against the running statistics', () => {
  const { model, x, y } = mlp(8);
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-4 });
  const guard = new keel.Guard({ model, optimizer });
  let scale = 1;
  const ce = () => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y).mul(scale);
  for (let i = 0; i < 12; i++) assert.deepEqual(guard.stepSync(ce).warnings, []);
  scale = 1e4;
  const r = guard.stepSync(ce);
  assert.equal(r.ok, true);
  assert.equal(r.warnings[0]?.kind, 'grad-norm-spike');
  guard.dispose();
});

test('early warning: values beyond the precision\'s range under an fp16 policy', () => {
  const { model, x } = mlp(9, 1);
  const guard = new keel.Guard({ model, optimizer: new keel.optim.SGD(model.parameters(), { lr: 1e-3 }), policy: 'skip' });
  const r = guard.stepSync(() => keel.withPrecision('fp16', () => (model.call(x) as keel.Tensor).abs().add(1).mul(1e5).mean()));
  assert.equal(r.ok, false);
  assert.ok(r.warnings.some((w) => w.kind === 'precision-range'));
  assert.equal(r.event!.report.precision, 'fp16');
  assert.equal(r.event!.report.causeId, 'precision-overflow');
  guard.dispose();
});

test('every event is a JSON line in the metrics log', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-guard-'));
  const log = new keel.train.MetricsLog(join(dir, 'metrics.jsonl'));
  const { model, x } = mlp(10, 1);
  const guard = new keel.Guard({ model, optimizer: new keel.optim.SGD(model.parameters(), { lr: 1e-3 }), policy: 'skip', log });
  guard.stepSync(() => ops.exp((model.call(x) as keel.Tensor).abs().add(100)).mean());
  log.close();
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const ev = lines.find((l) => l.event === 'guard');
  assert.ok(ev);
  assert.equal(ev.action, 'skipped');
  assert.equal(ev.report.op, 'aten::exp');
  assert.equal(ev.report.causeId, 'exp-overflow');
  assert.ok(Array.isArray(ev.report.inputs) && Array.isArray(ev.report.remedies));
  guard.dispose();
});

test('fit with a guard: the step goes through it and a poisoned batch is skipped', () => {
  keel.manualSeed(11);
  const data = keel.data.syntheticImages({ n: 64, seed: 3, size: 8 });
  const model = new keel.nn.zoo.MLP({ inFeatures: 3 * 8 * 8, numClasses: 10, hidden: [16] });
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
  const trainLoader = new keel.data.DataLoader(data, { batchSize: 16, shuffle: true, seed: 1, dropLast: true });
  let calls = 0;
  const dir = mkdtempSync(join(tmpdir(), 'keel-guard-fit-'));
  const result = keel.train.fit({
    model, optimizer, trainLoader, steps: 6, progress: false, outDir: dir, guard,
    loss: (o, t) => {
      calls++;
      const l = keel.losses.crossEntropy(o, t);
      return calls === 3 ? l.mul(Number.POSITIVE_INFINITY) : l;  // the 3rd call (step 3) blows up; its replay (call 4) too
    },
  });
  assert.equal(result.steps, 6);
  assert.equal(guard.stepCount, 6);
  assert.equal(guard.events.length, 1);
  assert.equal(guard.events[0].action, 'skipped');
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.event === 'guard' && l.step === 3));
  guard.dispose();
});

test('keel train --guard: accepts the policies and rejects others', () => {
  const KEEL = join(process.cwd(), 'bin', 'keel.js');
  const dir = mkdtempSync(join(tmpdir(), 'keel-guard-cli-'));
  const ok = spawnSync(process.execPath, [KEEL, 'train', '--model', 'mlp', '--data', 'synthetic', '--steps', '2', '--batch-size', '16', '--train-subset', '64', '--test-subset', '32', '--guard', 'skip', '--no-progress', '--out', dir], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).guard, 'skip');
  const bad = spawnSync(process.execPath, [KEEL, 'train', '--guard', 'pray', '--out', dir], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /pray/);
});

test('the rules table: each cause from its op, inputs and phase', () => {
  const t = (stats: Partial<keel.guard.InputStats>, name = 'self'): keel.guard.InputStats => ({ name, dtype: 'float32', shape: [4], min: 0, max: 1, minAbs: 0.5, zeros: 0, negatives: 0, nans: 0, infs: 0, ...stats });
  const ctx = (op: string, phase: keel.guard.Phase, inputs: keel.guard.InputStats[], extra: Partial<keel.guard.RuleContext> = {}): keel.guard.RuleContext =>
    ({ op, base: keel.guard.baseName(op), phase, module: 'm', inputs, finalLayer: false, ...extra });
  const id = (c: keel.guard.RuleContext) => keel.guard.diagnose(c).causeId;
  assert.equal(id(ctx('aten::sqrt', 'backward', [t({ minAbs: 0, zeros: 1 })])), 'sqrt-at-zero');
  assert.equal(id(ctx('aten::pow.Tensor_Scalar', 'backward', [t({ minAbs: 1e-9 }), { name: 'exponent', value: 0.5 }])), 'sqrt-at-zero');
  assert.equal(id(ctx('aten::sqrt', 'forward', [t({ min: -1e-7, negatives: 1 })])), 'sqrt-of-negative');
  assert.equal(id(ctx('aten::log', 'forward', [t({ minAbs: 0, zeros: 2, producer: 'aten::sigmoid' })])), 'log-sigmoid-underflow');
  assert.equal(id(ctx('aten::log', 'forward', [t({ min: -2, negatives: 1 })])), 'log-of-zero');
  assert.equal(id(ctx('aten::exp', 'forward', [t({ max: 100 })])), 'exp-overflow');
  assert.equal(id(ctx('aten::div.Tensor', 'forward', [t({}), t({ minAbs: 0, zeros: 1 }, 'other')])), 'division-by-zero');
  assert.equal(id(ctx('aten::mul.Tensor', 'forward', [t({ infs: 1 }), t({ zeros: 3 }, 'other')])), 'zero-times-inf');
  assert.equal(id(ctx('aten::sigmoid', 'forward', [t({ min: -80, max: 90 })], { finalLayer: true })), 'saturated-final-layer');
  assert.equal(id(ctx('optimizer.step', 'update', [], { lr: 10, gradNorm: 1e3 })), 'lr-blowup');
  assert.equal(id(ctx('aten::mul.Tensor', 'forward', [t({}), t({}, 'other')], { precision: keel.formatOf('fp16'), output: t({ infs: 4 }, 'output') })), 'precision-overflow');
  assert.equal(id(ctx('aten::mm', 'forward', [t({}), t({}, 'mat2')], { output: t({ infs: 4 }, 'output') })), 'overflow');
  assert.equal(id(ctx('aten::add.Tensor', 'forward', [t({})], { output: t({ nans: 1 }, 'output') })), 'non-finite-op');
  assert.equal(id(ctx('aten::linear', 'forward', [t({ infs: 1 })], { nonFiniteInput: { name: 'input', kind: 'data' } })), 'non-finite-input');
  assert.equal(id(ctx('aten::softmax.int', 'forward', [t({ infs: 3 })], { output: t({ nans: 3 }, 'output') })), 'fully-masked-row');
  assert.equal(id(ctx('Function MyFn', 'backward', [t({})], { output: t({ nans: 1 }, 'grad') })), 'custom-function-backward');
  assert.equal(id(ctx('optimizer.step', 'update', [], { lr: 1e-3, gradNorm: 1, eps: 0 })), 'optimizer-zero-denominator');
  // domains, eps = 0 norms, extreme weights, a norm beyond float32 (issue 19's held-out run found these missing)
  assert.equal(id(ctx('aten::acos', 'forward', [t({ min: 0.2, max: 1.0000001 })], { output: t({ nans: 1 }, 'output') })), 'bounded-domain');
  assert.equal(id(ctx('aten::asin', 'backward', [t({ min: -1, max: 0.5 })])), 'bounded-domain');
  assert.equal(id(ctx('aten::acos', 'backward', [t({ min: -0.5, max: 0.5 })])), 'non-finite-op');
  assert.equal(id(ctx('aten::atanh', 'forward', [t({ min: 0, max: 1 })])), 'bounded-domain');
  assert.equal(id(ctx('aten::atan2', 'backward', [t({ minAbs: 0, zeros: 2 }), t({ minAbs: 0, zeros: 2 }, 'other')])), 'atan2-at-origin');
  assert.equal(id(ctx('aten::atan2', 'backward', [t({ minAbs: 0, zeros: 2 }), t({ minAbs: 0.3 }, 'other')])), 'non-finite-op');
  assert.equal(id(ctx('aten::native_group_norm', 'forward', [t({}), { name: 'eps', value: 0 }])), 'norm-zero-variance');
  assert.equal(id(ctx('aten::layer_norm', 'forward', [t({}), { name: 'eps', value: 1e-5 }], { output: t({ nans: 1 }, 'output') })), 'non-finite-op');
  assert.equal(id(ctx('aten::addmm', 'forward', [t({})], { output: t({ infs: 2 }, 'output'), extremeParameter: { name: 'fc.weight', maxAbs: 3e37 } })), 'extreme-parameter');
  assert.equal(id(ctx('gradient norm', 'backward', [], { base: 'grad_norm', lr: 1 })), 'gradient-norm-overflow');
  assert.match(keel.guard.diagnose(ctx('aten::pow.Tensor_Scalar', 'backward', [t({ minAbs: 0, zeros: 1 }), { name: 'exponent', value: 0.25 }])).cause, /fractional power/);
  assert.doesNotMatch(keel.guard.diagnose(ctx('aten::pow.Tensor_Scalar', 'backward', [t({ minAbs: 0, zeros: 1 }), { name: 'exponent', value: 0.25 }])).cause, /SILog/);
  // every rule has a cause and at least one concrete remedy
  for (const r of keel.guard.RULES) assert.ok(r.remedies(ctx('aten::x', 'forward', [t({})], { lr: 1, precision: keel.formatOf('fp16') })).length > 0, r.id);
});

test('division by ~0 in a real step is named with its divisor', () => {
  const { model, x } = mlp(13, 1);
  const guard = new keel.Guard({ model, optimizer: new keel.optim.SGD(model.parameters(), { lr: 1e-3 }), policy: 'skip' });
  const r = guard.stepSync(() => {
    const o = model.call(x) as keel.Tensor;
    return ops.div(o.abs().add(1), ops.relu(o.abs().neg())).mean();
  });
  assert.equal(r.event!.report.op, 'aten::div.Tensor');
  assert.equal(r.event!.report.causeId, 'division-by-zero');
  assert.equal(r.event!.report.inputs[1].zeros, 16);
  guard.dispose();
});

test('finite gradients whose global norm overflows float32: a diverging run, named by its largest gradient, and skip drops the step', () => {
  const { model, x } = mlp(21, 1);
  const guard = new keel.Guard({ model, optimizer: new keel.optim.SGD(model.parameters(), { lr: 0.1 }), policy: 'skip' });
  const before = model.parameters().map((p) => p.clone());
  const r = guard.stepSync(() => (model.call(x) as keel.Tensor).mean().mul(1e25));
  assert.equal(r.ok, false);
  assert.ok(Number.isFinite(r.loss));
  const rep = r.event!.report;
  assert.equal(rep.causeId, 'gradient-norm-overflow');
  assert.equal(rep.detectedIn, 'gradients');
  assert.match(rep.cause, /every gradient is finite but their global norm overflows float32 .* at lr 0\.1/);
  assert.ok(rep.inputs[0].max! > 1e19 || -rep.inputs[0].min! > 1e19, 'the largest gradient is reported');
  model.parameters().forEach((p, i) => assert.equal(p.sub(before[i]).abs().max().item(), 0));
  guard.dispose();
});

test('an overflow downstream of a parameter beyond √(fp32 max) names the parameter', () => {
  const { model, x } = mlp(22, 1);
  keel.noGrad(() => (model.parameters()[1]).index([0]).fill_(1e30)); // a diverged (or corrupted) first-layer bias
  const guard = new keel.Guard({ model, optimizer: new keel.optim.SGD(model.parameters(), { lr: 0.1 }), policy: 'skip' });
  const r = guard.stepSync(() => (model.call(x) as keel.Tensor).square().mean());
  const rep = r.event!.report;
  assert.equal(rep.causeId, 'extreme-parameter');
  assert.match(rep.cause, /the parameter '\S+\.bias' holds a value of magnitude 1\.00e\+30/);
  guard.dispose();
});
