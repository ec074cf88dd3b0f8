// The guard understands the loss scaler (issue 14 §3): a step the GradScaler
// skips is not a NaN event; a scale that falls below the floor, or N skips in
// a row, is, and its report names the op by replaying the step in the same
// precision at the step's scale. Also the faults of issue 19 in the
// autocast/GradScaler path: a transient overflow, a persistent forward fault,
// a persistent backward overflow, a NaN parameter, a NaN loss with finite
// gradients. Through the Guard API, fit and `keel train`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const { ops, nn } = keel;

// the float16 emulation says once that it emulates; the tests know
process.removeAllListeners('warning');

const fp16 = <T>(fn: () => T): T => keel.autocast({ dtype: 'float16' }, fn);

function setup(seed = 0) {
  keel.manualSeed(seed);
  const model = new nn.Sequential(new nn.Linear(8, 16), new nn.ReLU(), new nn.Linear(16, 4));
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  const x = keel.randn([16, 8]).keep();
  const y = keel.randint(0, 4, [16]).keep();
  return { model, optimizer, x, y };
}

function params(model: keel.nn.Module): number[][] {
  return model.parameters().map((p) => Array.from(p.data() as Float32Array));
}

test('a transient overflow: the scaler skips and halves the scale, no guard event, and the weights equal PyTorch\'s AMP loop without the guard', () => {
  const STEPS = 8;
  const BAD = 3; // the 4th batch is 10^4 times larger: its scaled gradients overflow fp16
  const batch = (x: keel.Tensor, i: number): keel.Tensor => (i === BAD ? x.mul(1e4) : x);

  // the AMP loop as PyTorch users write it
  const plain = setup();
  const plainScaler = new keel.amp.GradScaler();
  const plainScales: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    keel.scope(() => {
      plain.optimizer.zeroGrad();
      const loss = fp16(() => keel.losses.crossEntropy(plain.model.call(batch(plain.x, i)) as keel.Tensor, plain.y));
      plainScaler.scale(loss).backward();
      plainScaler.unscale_(plain.optimizer);
      plainScaler.step(plain.optimizer);
      plainScaler.update();
    });
    plainScales.push(plainScaler.getScale());
  }

  const g = setup();
  const scaler = new keel.amp.GradScaler();
  const guard = new keel.Guard({ model: g.model, optimizer: g.optimizer, scaler, policy: 'raise' });
  const results = [];
  for (let i = 0; i < STEPS; i++) {
    results.push(guard.stepSync(() => fp16(() => keel.losses.crossEntropy(g.model.call(batch(g.x, i)) as keel.Tensor, g.y))));
  }
  assert.deepEqual(results.map((r) => r.scalerSkipped === true), [false, false, false, true, false, false, false, false]);
  assert.deepEqual(results.map((r) => r.ok), [true, true, true, false, true, true, true, true]);
  assert.deepEqual(results.map((r) => r.lossScale), [65536, 65536, 65536, 32768, 32768, 32768, 32768, 32768]);
  assert.deepEqual(plainScales, results.map((r) => r.lossScale));
  assert.ok(Number.isFinite(results[BAD].loss), 'the forward was finite: only the scaled gradients overflowed');
  assert.equal(results[BAD].gradNorm, Infinity);
  assert.equal(guard.events.length, 0);
  assert.deepEqual(results.map((r) => r.events.length), new Array(STEPS).fill(0));
  assert.equal(guard.scalerSkips, 1);
  assert.equal(guard.consecutiveSkips, 0, 'a step that updates ends the run of skips');
  assert.equal(scaler.skippedSteps, 1);
  assert.deepEqual(params(g.model), params(plain.model), 'bitwise the weights of the loop without the guard');
  guard.dispose();
});

test('a persistent fault (log of 0 in the forward, every step): 10 skips in a row are an event whose report names aten::log in the forward, at the step\'s scale', () => {
  const { model, optimizer, x } = setup(1);
  const scaler = new keel.amp.GradScaler();
  const guard = new keel.Guard({ model, optimizer, scaler, policy: 'raise' });
  const before = params(model);
  const computeLoss = () => fp16(() => ops.log(ops.relu(model.call(x) as keel.Tensor).mul(0)).mean());
  for (let i = 1; i <= 9; i++) {
    const r = guard.stepSync(computeLoss);
    assert.equal(r.scalerSkipped, true, `step ${i}`);
    assert.equal(r.event, undefined, `step ${i}: a skip is not an event`);
    assert.equal(r.loss, -Infinity);
    assert.equal(guard.consecutiveSkips, i);
  }
  assert.equal(scaler.getScale(), 128, '2^16 halved 9 times');
  let caught: unknown;
  try {
    guard.stepSync(computeLoss);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof keel.NonFiniteError, 'the 10th skip raises');
  const rep = caught.report;
  assert.equal(rep.op, 'aten::log');
  assert.equal(rep.phase, 'forward');
  assert.equal(rep.causeId, 'log-of-zero');
  assert.equal(rep.step, 10);
  assert.equal(rep.detectedIn, 'loss');
  assert.equal(rep.precision, 'fp16', 'replayed under the same autocast emulation');
  assert.deepEqual(rep.scaler, { trigger: 'max-consecutive-skips', consecutiveSkips: 10, scale: 128, newScale: 64, scaleFloor: 1, maxConsecutiveSkips: 10 });
  assert.match(rep.format(), /scaler: {3}10 steps in a row skipped \(maxConsecutiveSkips 10\); loss scale now 64; replayed at the step's scale 128/);
  assert.equal(guard.events.length, 1);
  assert.equal(guard.events[0].action, 'raised');
  assert.equal(guard.scalerSkips, 10);
  assert.equal(guard.consecutiveSkips, 0, 'the event ends the count');
  assert.deepEqual(params(model), before, 'no update was applied');
  guard.dispose();
});

test('a persistent backward overflow under skip: every maxConsecutiveSkips-th skip is an event naming the layer whose gradient exceeds fp16 at the replayed scale', () => {
  const { model, optimizer, x, y } = setup(2);
  const scaler = new keel.amp.GradScaler();
  const lines: Record<string, unknown>[] = [];
  const log = { write: (r: Record<string, unknown>) => lines.push(r) } as unknown as keel.log.MetricsLog;
  const guard = new keel.Guard({ model, optimizer, scaler, policy: 'skip', maxConsecutiveSkips: 4, log });
  // inputs 10^4 times too large: the forward fits fp16, its gradients (×scale) do not, down to a scale of 64
  const rs = [];
  for (let i = 0; i < 8; i++) rs.push(guard.stepSync(() => fp16(() => keel.losses.crossEntropy(model.call(x.mul(1e4)) as keel.Tensor, y))));
  assert.deepEqual(rs.map((r) => r.scalerSkipped), new Array(8).fill(true));
  assert.deepEqual(rs.map((r) => r.event !== undefined), [false, false, false, true, false, false, false, true]);
  assert.equal(guard.events.length, 2);
  const rep = guard.events[0].report;
  assert.equal(guard.events[0].action, 'skipped');
  assert.equal(rep.op, 'aten::linear');
  assert.equal(rep.phase, 'backward');
  assert.equal(rep.module, '2');
  assert.equal(rep.causeId, 'precision-overflow');
  assert.equal(rep.detectedIn, 'gradients');
  assert.deepEqual(rep.scaler, { trigger: 'max-consecutive-skips', consecutiveSkips: 4, scale: 8192, newScale: 4096, scaleFloor: 1, maxConsecutiveSkips: 4 });
  assert.ok((rep.output?.max ?? 0) > 65504 || (rep.output?.min ?? 0) < -65504, `the gradient at the replayed scale exceeds fp16: ${JSON.stringify(rep.output)}`);
  assert.equal(guard.events[1].report.scaler?.scale, 512);
  const skips = lines.filter((l) => l.event === 'guard-scaler-skip');
  assert.deepEqual(skips.map((l) => l.consecutiveSkips), [1, 2, 3, 4, 1, 2, 3, 4]);
  assert.deepEqual(skips.map((l) => l.lossScale), [32768, 16384, 8192, 4096, 2048, 1024, 512, 256]);
  assert.deepEqual(lines.filter((l) => l.event === 'guard').map((l) => l.step), [4, 8]);
  guard.dispose();
});

test('a NaN in a weight: the skips become an event naming the parameter (seen through its fp16-rounded copy) and the op that read it', () => {
  const { model, optimizer, x, y } = setup(3);
  keel.noGrad(() => {
    const w = model.parameters()[2];
    const v = Float32Array.from(w.data() as Float32Array);
    v[5] = Number.NaN;
    w.copy_(keel.tensor(Array.from(v)).reshape(w.shape));
  });
  const guard = new keel.Guard({ model, optimizer, scaler: new keel.amp.GradScaler(), policy: 'skip', maxConsecutiveSkips: 3 });
  const rs = [1, 2, 3].map(() => guard.stepSync(() => fp16(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y))));
  assert.deepEqual(rs.map((r) => r.event !== undefined), [false, false, true]);
  const rep = rs[2].event!.report;
  assert.equal(rep.op, 'aten::linear');
  assert.equal(rep.phase, 'forward');
  assert.equal(rep.causeId, 'non-finite-input');
  assert.match(rep.cause, /the parameter '2\.weight' already holds 1 NaN/);
  guard.dispose();
});

test('the scale falling below the floor is an event before 10 skips: gradients that overflow fp16 even unscaled', () => {
  keel.manualSeed(0);
  const model = new nn.Linear(4, 2);
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-9 });
  const x = keel.ones([16, 4]).mul(5000).keep(); // ∂(Σ out)/∂W = 16 · 5000 = 80,000 > 65,504 at any scale ≥ 1
  const scaler = new keel.amp.GradScaler({ initScale: 4 });
  const guard = new keel.Guard({ model, optimizer, scaler, policy: 'skip' });
  const rs = [1, 2, 3, 4].map(() => guard.stepSync(() => fp16(() => model.call(x).sum())));
  assert.deepEqual(rs.map((r) => r.scalerSkipped === true), [true, true, true, false], 'at scale 0.5 the gradients fit and the step is taken');
  assert.deepEqual(rs.map((r) => r.event !== undefined), [false, false, true, false]);
  assert.deepEqual(rs.map((r) => r.lossScale), [2, 1, 0.5, 0.5]);
  const rep = rs[2].event!.report;
  assert.deepEqual(rep.scaler, { trigger: 'scale-floor', consecutiveSkips: 3, scale: 1, newScale: 0.5, scaleFloor: 1, maxConsecutiveSkips: 10 });
  assert.equal(rep.op, 'aten::linear');
  assert.equal(rep.phase, 'backward');
  assert.equal(rep.causeId, 'precision-overflow');
  assert.equal(rep.output?.max, 80000, 'the weight gradient at scale 1');
  assert.match(rep.format(), /the loss scale fell to 0\.5, below the floor 1 \(scaleFloor\); replayed at the step's scale 1/);
  assert.equal(guard.consecutiveSkips, 0);

  // a higher floor calls the first back-off below it
  keel.manualSeed(0);
  const m2 = new nn.Linear(4, 2);
  const g2 = new keel.Guard({ model: m2, optimizer: new keel.optim.SGD(m2.parameters(), { lr: 1e-9 }), scaler: new keel.amp.GradScaler(), scaleFloor: 40000, policy: 'skip' });
  const r2 = g2.stepSync(() => fp16(() => m2.call(x).sum()));
  assert.equal(r2.event?.report.scaler?.trigger, 'scale-floor');
  assert.equal(r2.event?.report.scaler?.newScale, 32768);
  guard.dispose();
  g2.dispose();
});

test('a NaN loss whose gradients are finite is an event at once: the scaler would step on it', () => {
  const { model, optimizer, x } = setup(4);
  const scaler = new keel.amp.GradScaler({ initScale: 1 });
  const guard = new keel.Guard({ model, optimizer, scaler, policy: 'skip' });
  const before = params(model);
  // log of a negative number: the loss is NaN, its gradient 1/x is finite
  const r = guard.stepSync(() => fp16(() => ops.log((model.call(x) as keel.Tensor).sub(100)).mean()));
  assert.equal(r.scalerSkipped, undefined);
  assert.equal(r.event?.report.op, 'aten::log');
  assert.equal(r.event?.report.causeId, 'log-of-zero');
  assert.match(r.event!.report.cause, /log of a negative number/);
  assert.equal(r.event?.report.scaler, undefined);
  assert.deepEqual(params(model), before, 'dropped: no update');
  assert.equal(scaler.getScale(), 1, 'the scaler saw finite gradients: no back-off');
  // the scaler is ready for the next step (its check was consumed)
  const ok = guard.stepSync(() => fp16(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, keel.zeros([16], { dtype: 'int64' }))));
  assert.equal(ok.ok, true);
  guard.dispose();
});

test('rollback under the scaler puts the loss scale and the skip count back with the snapshot', () => {
  const { model, optimizer, x, y } = setup(5);
  const scaler = new keel.amp.GradScaler();
  const guard = new keel.Guard({ model, optimizer, scaler, policy: 'rollback', maxConsecutiveSkips: 3 });
  const before = params(model);
  const rs = [1, 2, 3].map(() => guard.stepSync(() => fp16(() => keel.losses.crossEntropy(model.call(x.mul(1e4)) as keel.Tensor, y))));
  assert.equal(rs[2].event?.action, 'rolled-back');
  assert.equal(rs[2].rolledBackTo, 0);
  assert.equal(scaler.getScale(), 65536, 'the snapshot before step 1');
  assert.equal(guard.consecutiveSkips, 0);
  assert.equal(optimizer.paramGroups[0].lr, 0.025);
  assert.deepEqual(params(model), before);
  guard.dispose();
});

test('fit with fp16-mixed and the guard: skips are no events, 2 in a row are (maxConsecutiveSkips 2), and the checkpoint carries the skip count so a resumed run ends bitwise the same', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-guard-amp-'));
  try {
    const run = (out: string, steps: number, resume = false) => {
      keel.manualSeed(11);
      const data = keel.data.syntheticImages({ n: 64, seed: 3, size: 8 });
      const model = new keel.nn.zoo.MLP({ inFeatures: 3 * 8 * 8, numClasses: 10, hidden: [16] });
      const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
      const guard = new keel.Guard({ model, optimizer, policy: 'skip', maxConsecutiveSkips: 2 });
      const trainLoader = new keel.data.DataLoader(data, { batchSize: 16, shuffle: true, seed: 1, dropLast: true });
      let step = 0; // the step in flight is step + 1
      const result = keel.train.fit({
        model, optimizer, trainLoader, steps, progress: false, outDir: out, guard, precision: 'fp16-mixed', checkpointEvery: 3, resume, health: false, tensorboard: false,
        callbacks: [{ onTrainStart: (s) => { step = s.step; }, onStepEnd: (i) => { step = i.step; } }],
        // steps 3 and 4: a loss 10^30 times too large, whose scaled gradients overflow (finite in the forward)
        loss: (o, t) => {
          const l = keel.losses.crossEntropy(o, t);
          return model.training && (step + 1 === 3 || step + 1 === 4) ? l.mul(1e30) : l;
        },
      });
      return { result, guard, model };
    };
    const whole = run(join(dir, 'whole'), 6);
    assert.equal(whole.result.steps, 6);
    assert.deepEqual(whole.result.guardEvents, { skipped: 1 });
    assert.equal(whole.guard.events[0].step, 4);
    assert.equal(whole.guard.events[0].report.scaler?.trigger, 'max-consecutive-skips');
    assert.equal(whole.guard.events[0].report.phase, 'backward');
    // replayed at 32768, the loss's ×10^30 comes back as a gradient of ~10^34: float32 through the
    // float32 ops (autocast keeps them so), beyond fp16 where cross-entropy hands it to the fp16 logits
    assert.equal(whole.guard.events[0].report.op, 'aten::cross_entropy_loss');
    assert.equal(whole.guard.events[0].report.inputs[0].producer, 'aten::linear');
    assert.equal(whole.guard.events[0].report.causeId, 'precision-overflow');
    assert.match(whole.guard.events[0].report.format(), /loss scale now 16384; replayed at the step's scale 32768/);
    assert.equal(whole.guard.events[0].report.precision, 'fp16');
    assert.equal(whole.guard.scalerSkips, 2);
    assert.equal(whole.guard.scaler, undefined, 'fit detaches the scaler it attached');
    const log = readFileSync(join(dir, 'whole', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(log.filter((l) => l.event === 'guard-scaler-skip').map((l) => [l.step, l.lossScale, l.consecutiveSkips]), [[3, 32768, 1], [4, 16384, 2]]);
    assert.deepEqual(log.filter((l) => l.event === undefined).map((l) => l.lossScale), [65536, 65536, 32768, 16384, 16384, 16384]);
    assert.deepEqual(log.filter((l) => l.event === 'guard').map((l) => l.step), [4]);
    const ckpt = keel.train.loadCheckpoint(join(dir, 'whole', 'checkpoints'), 3);
    const g3 = ckpt.state.guard as { stepCount: number; scalerSkips: number; consecutiveSkips: number };
    assert.deepEqual([g3.stepCount, g3.scalerSkips, g3.consecutiveSkips], [3, 1, 1]);
    assert.deepEqual((ckpt.state.precision as { scaler: { scale: number } }).scaler.scale, 32768);

    // stopped after the first skip, resumed: the second skip in a row is the event there too
    const part = run(join(dir, 'part'), 3);
    assert.deepEqual(part.result.guardEvents, {});
    const resumed = run(join(dir, 'part'), 6, true);
    assert.equal(resumed.result.resumedFrom, 3);
    assert.deepEqual(resumed.result.guardEvents, { skipped: 1 });
    assert.equal(resumed.guard.events[0].step, 4, 'the resumed guard numbers its steps on from the checkpoint');
    assert.deepEqual(resumed.guard.stateDict(), whole.guard.stateDict());
    assert.deepEqual(params(resumed.model), params(whole.model), 'bitwise the uninterrupted run');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keel train --precision fp16-mixed --guard skip runs (the refusal is gone) and logs the loss scale', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-guard-amp-cli-'));
  try {
    const r = spawnSync(process.execPath, [join(process.cwd(), 'bin', 'keel.js'), 'train', '--model', 'mlp', '--data', 'synthetic', '--steps', '3', '--batch-size', '16',
      '--train-subset', '64', '--test-subset', '32', '--threads', '1', '--precision', 'fp16-mixed', '--guard', 'skip', '--health-every', '0', '--checkpoint-every', '3', '--no-progress', '--out', join(dir, 'run')],
    { encoding: 'utf8', timeout: 240_000 });
    assert.equal(r.status, 0, r.stderr);
    const log = readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(log.filter((l) => l.event === undefined).map((l) => l.lossScale), [65536, 65536, 65536]);
    const ckpt = keel.train.loadCheckpoint(join(dir, 'run', 'checkpoints'), 3);
    const g3 = ckpt.state.guard as { stepCount: number; scalerSkips: number; consecutiveSkips: number };
    assert.deepEqual([g3.stepCount, g3.scalerSkips, g3.consecutiveSkips], [3, 0, 0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad options are Errors naming the option; the scaler refuses foundInf before unscale_', () => {
  const { model, optimizer } = setup(6);
  const scaler = new keel.amp.GradScaler();
  const make = (o: Partial<keel.guard.GuardOptions>) => () => new keel.Guard({ model, optimizer, ...o });
  assert.throws(make({ scaleFloor: -1 }), /Guard: scaleFloor must be a finite number ≥ 0, got -1/);
  assert.throws(make({ scaleFloor: Number.NaN }), /scaleFloor must be a finite number ≥ 0, got NaN/);
  assert.throws(make({ scaleFloor: '1' as never }), /scaleFloor must be a finite number ≥ 0, got 1/);
  assert.throws(make({ maxConsecutiveSkips: 0 }), /Guard: maxConsecutiveSkips must be an integer ≥ 1 \(or Infinity for no limit\), got 0/);
  assert.throws(make({ maxConsecutiveSkips: 2.5 }), /maxConsecutiveSkips must be an integer ≥ 1/);
  assert.throws(make({ scaler: {} as never }), /Guard: scaler must be a keel\.amp\.GradScaler, got an object without scale, unscale_/);
  assert.throws(make({ scaler: null as never }), /Guard: scaler must be a keel\.amp\.GradScaler, got null/);
  const distributed = { rank: 0, localGradientsFinite: () => true, agree: () => [], localOnly: <T>(fn: () => T) => fn() };
  assert.doesNotThrow(make({ scaler, distributed }), 'a scaler with distributed is taken (test/distributed.test.ts runs it on 2 ranks)');
  const guard = new keel.Guard({ model, optimizer, scaler, maxConsecutiveSkips: Infinity, scaleFloor: 0 });
  assert.throws(() => guard.attachScaler(new keel.amp.GradScaler()), /the guard already steps through another GradScaler/);
  const state = { ...guard.stateDict(), stepCount: 12, scalerSkips: 7, consecutiveSkips: 2 };
  assert.throws(() => guard.loadStateDict({ ...state, consecutiveSkips: -1 }), /Guard\.loadStateDict: consecutiveSkips must be a non-negative integer, got -1/);
  assert.throws(() => guard.loadStateDict({ ...state, scalerSkips: 1.5 }), /scalerSkips must be a non-negative integer/);
  assert.throws(() => guard.loadStateDict({ ...state, stepCount: Number.NaN }), /stepCount must be a non-negative integer, got null/);
  guard.loadStateDict(state);
  assert.deepEqual(guard.stateDict(), state);
  assert.equal(guard.stepCount, 12);
  assert.throws(() => scaler.foundInf(optimizer), /GradScaler\.foundInf\(\): unscale_\(\) has not been called on this optimizer since the last update\(\)/);
  // fit refuses a guard stepping through another scaler than the precision's
  const data = keel.data.syntheticImages({ n: 16, seed: 3, size: 8 });
  const mlp = new keel.nn.zoo.MLP({ inFeatures: 3 * 8 * 8, numClasses: 10, hidden: [8] });
  const opt = new keel.optim.SGD(mlp.parameters(), { lr: 1e-2 });
  const other = new keel.Guard({ model: mlp, optimizer: opt, scaler: new keel.amp.GradScaler() });
  assert.throws(() => keel.train.fit({
    model: mlp, optimizer: opt, trainLoader: new keel.data.DataLoader(data, { batchSize: 8 }), steps: 1, progress: false, guard: other, precision: 'fp16-mixed',
    loss: (o, t) => keel.losses.crossEntropy(o, t),
  }), /fit: the guard's scaler is not precision fp16-mixed's GradScaler/);
  guard.dispose();
  other.dispose();
});
