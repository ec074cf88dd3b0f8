// The guard's cost work (issue 19, part 1) and the PaLM recipe (part 3):
// the fused native read against the ops it replaces, clipping on the norm the
// check already has, and rollback going back N steps and skipping M batches,
// every skipped batch logged by its index, the run reproducible.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const { ops } = keel;

test('fusedRead: the norms, scalars and buffer norms of one read are those the ops give, as float32', () => {
  keel.manualSeed(1);
  const a = keel.randn([7, 3]);
  const b = keel.randn([5]).to('float64');
  const s = keel.tensor(2.5);
  const big = keel.tensor(1e300, { dtype: 'float64' });
  const bad = keel.tensor([1, Number.NaN]);
  const v = keel.guard.fusedRead([a, b], [s, big], [bad]);
  assert.equal(v.length, 5);
  const close = (got: number, want: number) => assert.ok(Math.abs(got - want) <= 1e-6 * want, `${got} vs ${want}`);
  close(v[0], ops.linalgVectorNorm(a).item() as number);
  close(v[1], ops.linalgVectorNorm(b).item() as number);
  assert.equal(v[0], Math.fround(v[0]));
  assert.equal(v[2], 2.5);
  assert.equal(v[3], Infinity);  // a float64 loss beyond float32's range is not finite for the guard
  assert.ok(Number.isNaN(v[4]));
  assert.equal(keel.guard.fusedRead([], []).length, 0);
  assert.equal(keel.guard.checkParameters([a, b]), true);
  assert.equal(keel.guard.checkParameters([a, bad]), false);
});

test('the fused read sums large gradients in fixed blocks: the same norm at 1 and 2 threads, and that of float64', () => {
  keel.manualSeed(2);
  const a = keel.randn([300_001]).mul(3);
  const threads = keel.getNumThreads();
  try {
    keel.setNumThreads(1);
    const one = keel.guard.fusedRead([a], [])[0];
    keel.setNumThreads(2);
    const two = keel.guard.fusedRead([a], [])[0];
    assert.equal(two, one);
    const want = Math.sqrt(ops.dot(a.to('float64'), a.to('float64')).item() as number);
    assert.ok(Math.abs(one - want) <= 1e-7 * want, `${one} vs ${want}`);
  } finally {
    keel.setNumThreads(threads);
  }
});

test('checkParamGradients: the check of the parameters\' gradients (one without a gradient adds nothing) equals checkGradients on those gradients', () => {
  keel.manualSeed(4);
  const w = keel.randn([40, 30]).requiresGrad_();
  const unused = keel.randn([5]).requiresGrad_();
  const b = keel.randn([30]).requiresGrad_();
  const loss = keel.randn([8, 40]).matmul(w).add(b).square().mean();
  loss.backward();
  assert.equal(unused.grad, undefined);
  const byParams = keel.guard.checkParamGradients(loss, [w, unused, b], []);
  const byGrads = keel.guard.checkGradients(loss, [w.grad!, b.grad!], []);
  assert.equal(byParams.gradNorm, byGrads.gradNorm);
  assert.equal(byParams.loss, byGrads.loss);
  assert.equal(byParams.finite, true);
  const want = Math.hypot(ops.linalgVectorNorm(w.grad!).item() as number, ops.linalgVectorNorm(b.grad!).item() as number);
  assert.ok(Math.abs(byParams.gradNorm - want) <= 1e-6 * want, `${byParams.gradNorm} vs ${want}`);
  b.grad!.fill_(Number.NaN);
  assert.equal(keel.guard.checkParamGradients(loss, [w, unused, b], []).finite, false);
});

test('the RNG state of the step\'s start comes back for the replay: after a dropped step with dropout the generator is where the step began', () => {
  keel.manualSeed(9);
  const model = new keel.nn.zoo.MLP({ inFeatures: 6, numClasses: 3, hidden: [16], dropout: 0.5 });
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 0.1 });
  const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
  const y = keel.randint(0, 3, [8]);
  const x = keel.randn([8, 6]);
  const bytes = () => Array.from(keel.getRngState().data() as Uint8Array);
  keel.randn([3]);  // a cached normal sample in the generator's state too
  const start = bytes();
  assert.equal(guard.stepSync(() => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y)).ok, true);
  assert.notDeepEqual(bytes(), start, 'the healthy step\'s dropout drew from the generator');
  const before = bytes();
  const bad = x.clone();
  bad.view(-1).select(0, 0).fill_(Number.NaN);
  const r = guard.stepSync(() => keel.losses.crossEntropy(model.call(bad) as keel.Tensor, y));
  assert.equal(r.ok, false);
  assert.equal(r.event?.action, 'skipped');
  assert.deepEqual(bytes(), before);
  guard.dispose();
});

test('clipGradNorm through the guard: the check\'s norm is reused, the gradients are those clipGradNorm leaves', () => {
  const run = (guarded: boolean) => {
    keel.manualSeed(3);
    const model = new keel.nn.zoo.MLP({ inFeatures: 8, numClasses: 4, hidden: [16] });
    const x = keel.randn([16, 8]).mul(10);
    const y = keel.randint(0, 4, [16]);
    const optimizer = new keel.optim.SGD(model.parameters(), { lr: 0.1 });
    const loss = () => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y);
    let norm: number;
    if (guarded) {
      const guard = new keel.Guard({ model, optimizer, clipGradNorm: 0.5 });
      norm = guard.stepSync(loss).gradNorm;
      guard.dispose();
    } else {
      optimizer.zeroGrad(true);
      loss().backward();
      norm = keel.optim.clipGradNorm(model.parameters(), 0.5);
      optimizer.step();
    }
    return { norm, params: model.parameters().map((p) => Array.from(p.data() as Float32Array)) };
  };
  const g = run(true);
  const p = run(false);
  assert.ok(p.norm > 0.5, `the norm ${p.norm} must be clipped for the test to mean anything`);
  assert.ok(Math.abs(g.norm - p.norm) <= 1e-6 * p.norm, `${g.norm} vs ${p.norm}`);
  g.params.forEach((t, i) => t.forEach((v, j) => assert.ok(Math.abs(v - p.params[i][j]) <= 1e-6 * (1 + Math.abs(v)), `param ${i}[${j}]: ${v} vs ${p.params[i][j]}`)));
});

/** A small fit run (MLP with dropout, shuffled data, a scheduler) whose loss is multiplied by 100 at the `spikeAt`-th call. */
function run(dir: string, spikeAt: number, fromDisk = false) {
  keel.manualSeed(7);
  const data = keel.data.syntheticImages({ n: 256, seed: 3, size: 8 });
  const model = new keel.nn.zoo.MLP({ inFeatures: 3 * 8 * 8, numClasses: 10, hidden: [32], dropout: 0.1 });
  const optimizer = new keel.optim.AdamW(model.parameters(), { lr: 3e-3 });
  const scheduler = new keel.optim.CosineAnnealingLR(optimizer, { tMax: 24 });
  const trainLoader = new keel.data.DataLoader(data, { batchSize: 32, shuffle: true, seed: 11, dropLast: true });
  const guard = new keel.Guard({
    model, optimizer, policy: 'rollback', lrBackoff: 0.5,
    rollback: fromDisk ? { source: 'checkpoints', back: 5, skipBatches: 3, lossZ: 6 } : { snapshots: 3, every: 4, back: 5, skipBatches: 3, lossZ: 6 },
  });
  let calls = 0;
  const loss = (o: keel.Tensor, t: keel.Tensor) => {
    const l = keel.losses.crossEntropy(o, t);
    return ++calls === spikeAt ? l.mul(100) : l;
  };
  // from disk: checkpoints every 4 steps, the last 3 kept (fit's own interval and K)
  const result = keel.train.fit({ model, optimizer, scheduler, trainLoader, loss, steps: 20, outDir: dir, progress: false, guard, ...(fromDisk ? { checkpointEvery: 4, keepCheckpoints: 3 } : {}) });
  const weights = Object.values(model.stateDict()).map((t) => Array.from(t.data() as Float32Array));
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const out = { result, weights, lines, skipped: [...guard.skippedBatches], events: guard.events.map((e) => ({ step: e.step, action: e.action, cause: e.report.causeId, detail: e.detail })), lr: optimizer.paramGroups[0].lr, steps: guard.stepCount };
  guard.dispose();
  return out;
}

test('rollback (PaLM recipe): a loss spike goes back N steps to a kept snapshot, skips the next M batches by index, and the run is reproducible', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-guard-rollback-'));
  try {
    const a = run(join(dir, 'a'), 14);
    // snapshots before steps 1, 5, 9, 13 (every 4), the last 3 kept: 5, 9, 13. The spike at step 14,
    // back 5 → step 9's snapshot: 8 steps done, the data at batch 8 (epoch 1, batch 0); batches 8, 9, 10 skipped
    assert.deepEqual(a.events.map(({ step, action, cause }) => ({ step, action, cause })), [{ step: 14, action: 'rolled-back', cause: 'loss-spike' }]);
    assert.ok(a.events[0].detail.includes('restored the snapshot from before step 9'), a.events[0].detail.join('; '));
    assert.ok(a.events[0].detail.includes('skipping the next 3 batches of the data order'), a.events[0].detail.join('; '));
    assert.deepEqual(a.skipped, [8, 9, 10]);
    const skipLines = a.lines.filter((l) => l.event === 'guard-skip-batch');
    assert.deepEqual(skipLines.map((l) => [l.step, l.batch]), [[8, 8], [8, 9], [8, 10]]);
    const ev = a.lines.find((l) => l.event === 'guard')!;
    assert.equal(ev.step, 14);
    assert.equal(ev.action, 'rolled-back');
    // the step lines: 1..13 first, then 9..20 again after going back (each on the batch after the skipped ones)
    const steps = a.lines.filter((l) => l.event === undefined).map((l) => l.step);
    assert.deepEqual(steps, [...Array.from({ length: 13 }, (_, i) => i + 1), ...Array.from({ length: 12 }, (_, i) => i + 9)]);
    const epochs = a.lines.filter((l) => l.event === undefined).map((l) => l.epoch);
    // step 9 after the rollback used batch 11 (epoch 1): 8 batches an epoch
    assert.equal(epochs[13], 1);
    assert.equal(a.result.steps, 20);
    assert.equal(a.steps, 20);
    for (const w of a.weights) for (const v of w) assert.ok(Number.isFinite(v));
    // reproducible: the same run again gives the same weights, bit for bit
    const b = run(join(dir, 'b'), 14);
    assert.deepEqual(b.skipped, a.skipped);
    assert.deepEqual(b.weights, a.weights);
    assert.equal(b.lr, a.lr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rollback: a non-finite step goes back too, to the oldest snapshot when none is N steps old', () => {
  keel.manualSeed(5);
  const model = new keel.nn.zoo.MLP({ inFeatures: 8, numClasses: 4, hidden: [16] });
  const x = keel.randn([16, 8]).keep();
  const y = keel.randint(0, 4, [16]).keep();
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer, policy: 'rollback', rollback: { snapshots: 2, every: 2, back: 10, skipBatches: 2 } });
  const ce = () => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y);
  const seen: Float32Array[][] = [];
  for (let i = 0; i < 6; i++) {
    seen.push(model.parameters().map((p) => p.data() as Float32Array));
    assert.equal(guard.stepSync(ce).ok, true);
  }
  // snapshots before steps 1, 3, 5, 7; kept: 5, 7. Step 7 is bad; back 10 → none that old → the oldest kept (5)
  const r = guard.stepSync(() => ce().mul(Number.NaN));
  assert.equal(r.event!.action, 'rolled-back');
  assert.equal(r.rolledBackTo, 4);
  assert.equal(guard.stepCount, 4);
  assert.ok(r.event!.detail.includes('restored the snapshot from before step 5'), r.event!.detail.join('; '));
  model.parameters().forEach((p, i) => assert.deepEqual(Array.from(p.data() as Float32Array), Array.from(seen[4][i])));
  assert.equal(guard.pendingSkipBatches, 2);
  guard.skipBatch(40);
  guard.skipBatch(41);
  assert.equal(guard.pendingSkipBatches, 0);
  assert.throws(() => guard.skipBatch(42), /no batches to skip/);
  assert.deepEqual(guard.skippedBatches, [40, 41]);
  assert.equal(guard.stepSync(ce).step, 5);
  assert.throws(() => new keel.Guard({ model, optimizer, policy: 'rollback', rollback: { snapshots: 0 } }), RangeError);
  guard.dispose();
});

test('rollback from the run folder\'s checkpoints on disk: a spike goes back to the checkpoint N steps back, skips M batches by index, drops the newer checkpoints, and reruns bit for bit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-guard-rollback-disk-'));
  try {
    const memory = run(join(dir, 'memory'), 14);
    const a = run(join(dir, 'a'), 14, true);
    // checkpoints after steps 4, 8, 12 (the last 3 kept). The spike at step 14, back 5 → the newest
    // checkpoint at most 8 steps done: step 8's. The data at batch 8 (epoch 1, batch 0); batches 8, 9, 10 skipped
    assert.deepEqual(a.events.map(({ step, action, cause }) => ({ step, action, cause })), [{ step: 14, action: 'rolled-back', cause: 'loss-spike' }]);
    assert.ok(a.events[0].detail.includes('restored the checkpoint of step 8 (checkpoints/step-000000008); newer checkpoints removed'), a.events[0].detail.join('; '));
    assert.ok(a.events[0].detail.includes('skipping the next 3 batches of the data order'), a.events[0].detail.join('; '));
    assert.deepEqual(a.skipped, [8, 9, 10]);
    assert.deepEqual(a.lines.filter((l) => l.event === 'guard-skip-batch').map((l) => [l.step, l.batch]), [[8, 8], [8, 9], [8, 10]]);
    const steps = a.lines.filter((l) => l.event === undefined).map((l) => l.step);
    assert.deepEqual(steps, [...Array.from({ length: 13 }, (_, i) => i + 1), ...Array.from({ length: 12 }, (_, i) => i + 9)]);
    assert.equal(a.result.steps, 20);
    // step 12's checkpoint from before the rollback was removed; 12, 16, 20 were written again after it
    const ckpts = join(dir, 'a', 'checkpoints');
    assert.deepEqual(keel.train.listCheckpoints(ckpts), [12, 16, 20]);
    const c12 = JSON.parse(readFileSync(join(ckpts, 'step-000000012.json'), 'utf8')) as { state: { guard: { skippedBatches: number[] } } };
    assert.deepEqual(c12.state.guard.skippedBatches, [8, 9, 10]);
    // the checkpoint after 8 steps is the state the in-memory snapshot before step 9 held: the same run, bit for bit
    assert.deepEqual(a.weights, memory.weights);
    assert.equal(a.lr, memory.lr);
    // reproducible: the same run again gives the same weights, bit for bit
    const b = run(join(dir, 'b'), 14, true);
    assert.deepEqual(b.skipped, a.skipped);
    assert.deepEqual(b.weights, a.weights);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rollback from disk: a damaged checkpoint is passed over for an older one; with none the step is dropped as skip drops it', () => {
  keel.manualSeed(5);
  const model = new keel.nn.zoo.MLP({ inFeatures: 8, numClasses: 4, hidden: [16] });
  const x = keel.randn([16, 8]).keep();
  const y = keel.randint(0, 4, [16]).keep();
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-2 });
  const guard = new keel.Guard({ model, optimizer, policy: 'rollback', rollback: { source: 'checkpoints', back: 1, skipBatches: 1 } });
  const ce = () => keel.losses.crossEntropy(model.call(x) as keel.Tensor, y);
  // no checkpoints attached: dropped like skip, nothing to skip
  const before = model.parameters().map((p) => p.data() as Float32Array);
  const r0 = guard.stepSync(() => ce().mul(Number.NaN));
  assert.equal(r0.event!.action, 'skipped');
  assert.equal(r0.rolledBackTo, undefined);
  assert.match(r0.event!.detail.join('; '), /no checkpoints attached/);
  model.parameters().forEach((p, i) => assert.deepEqual(Array.from(p.data() as Float32Array), Array.from(before[i])));
  assert.equal(guard.pendingSkipBatches, 0);
  // a loop whose checkpoint 6 is damaged and 3 intact
  const tried: number[] = [];
  guard.attachRollback({
    save: () => undefined,
    restore: () => undefined,
    checkpoints: {
      steps: () => [3, 6],
      restore: (c) => {
        tried.push(c);
        if (c === 6) throw new Error('step-000000006.safetensors fails its SHA-256 check');
        return `checkpoints/step-00000000${c}`;
      },
    },
  });
  guard.stepCount = 8;
  const r = guard.stepSync(() => ce().mul(Number.NaN));
  assert.equal(r.event!.action, 'rolled-back');
  assert.deepEqual(tried, [6, 3]);
  assert.equal(r.rolledBackTo, 3);
  assert.equal(guard.stepCount, 3);
  assert.match(r.event!.detail.join('; '), /checkpoint of step 6 not used: step-000000006\.safetensors fails its SHA-256 check; restored the checkpoint of step 3/);
  assert.equal(guard.pendingSkipBatches, 1);
  assert.throws(() => new keel.Guard({ model, optimizer, policy: 'rollback', rollback: { source: 'disk' as 'memory' } }), /rollback\.source/);
  guard.dispose();
});
