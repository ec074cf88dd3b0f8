// Mixed precision: keel.autocast against torch.autocast (the same libtorch, so
// bf16 results must be bitwise equal), the float16 emulation's op lists, and
// GradScaler against the rules of PyTorch's (CUDA-only in 1.13) kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';
import { runTorch } from './helpers/torch.js';

const { ops, nn } = keel;

test('bfloat16 autocast on CPU is libtorch\'s own: bitwise equal to torch.autocast, op lists included', () => {
  keel.manualSeed(3);
  const conv = new nn.Conv2d(2, 4, 3);
  const lin = new nn.Linear(4 * 4 * 4, 5);
  const x = keel.randn([3, 2, 6, 6]);
  const y = keel.tensor([0, 4, 2], { dtype: 'int64' });
  let dtypes: string[] = [];
  const loss = keel.autocast({ dtype: 'bfloat16' }, () => {
    assert.equal(keel.autocast.enabled(), true);
    assert.equal(keel.autocast.dtype(), 'bfloat16');
    const h = conv.call(x);
    const r = ops.relu(h);
    const logits = lin.call(r.flatten(1));
    const sm = ops.softmax.int(logits, 1);
    const l = ops.crossEntropyLoss(logits, y);
    dtypes = [h.dtype, r.dtype, logits.dtype, sm.dtype, l.dtype];
    return l;
  });
  assert.equal(keel.autocast.enabled(), false);
  loss.backward();
  assert.deepEqual(dtypes, ['bfloat16', 'bfloat16', 'bfloat16', 'bfloat16', 'float32']);
  const ref = runTorch<{ dtypes: string[]; loss: number; gw: number[]; gl: number[] }>(`
import torch.nn.functional as F
cw, cb, lw, lb, x = [torch.tensor(v, dtype=torch.float32) for v in (inp['cw'], inp['cb'], inp['lw'], inp['lb'], inp['x'])]
for t in (cw, cb, lw, lb): t.requires_grad_(True)
y = torch.tensor(inp['y'])
with torch.autocast('cpu', dtype=torch.bfloat16):
    h = F.conv2d(x, cw, cb); r = F.relu(h); logits = F.linear(r.flatten(1), lw, lb)
    sm = torch.softmax(logits, 1); l = F.cross_entropy(logits, y)
l.backward()
out = {'dtypes': [str(t.dtype).replace('torch.', '') for t in (h, r, logits, sm, l)], 'loss': l.item(),
       'gw': cw.grad.flatten().tolist(), 'gl': lw.grad.flatten().tolist()}
`, { cw: conv.weight.toArray(), cb: conv.bias!.toArray(), lw: lin.weight.toArray(), lb: lin.bias!.toArray(), x: x.toArray(), y: y.toArray() });
  assert.deepEqual(dtypes, ref.dtypes);
  assert.equal(loss.item(), ref.loss);
  assert.deepEqual(Array.from(conv.weight.grad!.flatten().data() as Float32Array), ref.gw.map(Math.fround));
  assert.deepEqual(Array.from(lin.weight.grad!.flatten().data() as Float32Array), ref.gl.map(Math.fround));
});

test('autocast nests and turns off inside enabled: false; fn must be synchronous; bad options are Errors', () => {
  const lin = new nn.Linear(3, 2);
  const x = keel.randn([2, 3]);
  keel.autocast({ dtype: 'bfloat16' }, () => {
    keel.autocast({ dtype: 'bfloat16' }, () => assert.equal(lin.call(x).dtype, 'bfloat16'));
    assert.equal(keel.autocast.enabled(), true, 'still on after an inner autocast exits');
    keel.autocast({ enabled: false }, () => assert.equal(lin.call(x).dtype, 'float32'));
    assert.equal(lin.call(x).dtype, 'bfloat16');
  });
  assert.throws(() => keel.autocast({ dtype: 'bfloat16' }, (() => Promise.resolve(1)) as never), /must be synchronous/);
  assert.equal(keel.autocast.enabled(), false, 'a failed autocast restores the state');
  assert.throws(() => keel.autocast({ dtype: 'float8' as never }, () => 0), /dtype must be 'bfloat16' or 'float16'/);
  assert.throws(() => keel.autocast({ device: 'tpu' as never }, () => 0), /device must be 'cpu' or 'cuda'/);
  assert.throws(() => keel.autocast({ dtpye: 'bfloat16' } as never, () => 0), /unknown option 'dtpye'/);
  if (!keel.cuda.isAvailable()) assert.throws(() => keel.autocast({ device: 'cuda' }, () => 0), /no CUDA/);
});

test('float16 autocast on CPU emulates the same op lists: linear rounds to fp16, losses and softmax inputs stay exact', () => {
  keel.manualSeed(1);
  const lin = new nn.Linear(5, 4);
  const x = keel.randn([6, 5]);
  const [y, viaLists, sum] = keel.autocast({ dtype: 'float16' }, () => {
    assert.equal(keel.autocast.dtype(), 'float16');
    const out = lin.call(x);
    const l = ops.mseLoss(out, keel.zeros([6, 4])); // fp32 list: no rounding of its output
    const added = ops.add(out, out); // promote: fp16 inputs stay fp16
    return [out, l, added];
  });
  // linear on fp16-rounded inputs, output rounded to fp16, all held in float32
  const expect = keel.noGrad(() => {
    const r = (t: keel.Tensor) => t.to('float16').to('float32');
    return r(ops.linear(r(x), r(lin.weight), r(lin.bias!)));
  });
  assert.equal(y.dtype, 'float32');
  assert.deepEqual(y.toArray(), expect.toArray());
  assert.deepEqual(sum.toArray(), keel.noGrad(() => expect.mul(2).to('float16').to('float32')).toArray());
  const exactLoss = keel.noGrad(() => ops.mseLoss(expect, keel.zeros([6, 4])));
  assert.equal(viaLists.item(), exactLoss.item(), 'mse_loss (fp32 list) is computed on the fp16 values and not rounded');
  assert.notEqual(Math.fround(viaLists.item()), keel.tensor([viaLists.item()]).to('float16').item());
});

// ---- GradScaler -------------------------------------------------------------------

/** _amp_update_scale_ and the skip rule of torch.cuda.amp.GradScaler, written out. */
function referenceTrajectory(infAt: Set<number>, steps: number, o: { init: number; growth: number; backoff: number; interval: number }) {
  let scale = Math.fround(o.init);
  let tracker = 0;
  const scales: number[] = [];
  const skipped: number[] = [];
  for (let i = 0; i < steps; i++) {
    scales.push(scale);
    if (infAt.has(i)) {
      skipped.push(i);
      scale = Math.fround(scale * o.backoff);
      tracker = 0;
    } else if (tracker + 1 === o.interval) {
      const g = Math.fround(scale * o.growth);
      if (Number.isFinite(g)) scale = g;
      tracker = 0;
    } else tracker++;
  }
  return { scales, skipped, final: scale, tracker };
}

test('GradScaler: the scale trajectory and skipped steps of PyTorch\'s rules, for the same inf/NaN pattern', () => {
  keel.manualSeed(0);
  const model = new nn.Linear(3, 2);
  const opt = new keel.optim.SGD(model.parameters(), { lr: 0.1 });
  const opts = { init: 2 ** 16, growth: 2, backoff: 0.5, interval: 3 };
  const scaler = new keel.amp.GradScaler({ growthInterval: 3 });
  assert.equal(scaler.getScale(), 65536);
  const infAt = new Set([1, 2, 7, 12]);
  const nanAt = new Set([7]);
  const ref = referenceTrajectory(infAt, 16, opts);
  const scales: number[] = [];
  const skipped: number[] = [];
  const x = keel.randn([4, 3]);
  for (let i = 0; i < 16; i++) {
    scales.push(scaler.getScale());
    opt.zeroGrad();
    const before = model.weight.clone();
    keel.scope(() => {
      let loss = model.call(x).square().mean();
      if (infAt.has(i)) loss = loss.mul(nanAt.has(i) ? Number.NaN : Infinity);
      scaler.scale(loss).backward();
    });
    if (!scaler.step(opt)) {
      skipped.push(i);
      assert.deepEqual(model.weight.toArray(), before.toArray(), `step ${i}: a skipped step leaves the weights`);
    }
    scaler.update();
    before.dispose();
  }
  assert.deepEqual(scales, ref.scales);
  assert.deepEqual(skipped, ref.skipped);
  assert.equal(scaler.skippedSteps, 4);
  assert.deepEqual(scaler.stateDict(), { scale: ref.final, growth_factor: 2, backoff_factor: 0.5, growth_interval: 3, _growth_tracker: ref.tracker });
});

test('GradScaler: unscale_ divides the gradients exactly (float32 reciprocal), clipping after unscale_ sees true gradients', () => {
  keel.manualSeed(2);
  const model = new nn.Linear(4, 2);
  const opt = new keel.optim.SGD(model.parameters(), { lr: 0.1 });
  const x = keel.randn([5, 4]);
  model.call(x).sum().backward();
  const plain = model.weight.grad!.clone();
  opt.zeroGrad();
  const scaler = new keel.amp.GradScaler({ initScale: 1024 });
  scaler.scale(model.call(x).sum()).backward();
  scaler.unscale_(opt);
  assert.deepEqual(model.weight.grad!.toArray(), plain.toArray(), 'a power-of-two scale unscales exactly');
  assert.throws(() => scaler.unscale_(opt), /already been called on this optimizer since the last update/);
  assert.equal(scaler.step(opt), true);
  assert.throws(() => scaler.step(opt), /step\(\) has already been called since the last update/);
  scaler.update();
  assert.throws(() => scaler.update(), /no inf checks were recorded/);
});

test('GradScaler: stateDict / loadStateDict restore it exactly; disabled is a pass-through; bad states are Errors', () => {
  const a = new keel.amp.GradScaler({ initScale: 8, growthInterval: 5 });
  const model = new nn.Linear(2, 1);
  const opt = new keel.optim.SGD(model.parameters(), { lr: 0.1 });
  for (let i = 0; i < 3; i++) {
    opt.zeroGrad();
    a.scale(model.call(keel.ones([1, 2])).sum()).backward();
    a.step(opt);
    a.update();
  }
  const b = new keel.amp.GradScaler();
  b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
  assert.deepEqual(b.stateDict(), a.stateDict());
  assert.deepEqual(b.stateDict(), { scale: 8, growth_factor: 2, backoff_factor: 0.5, growth_interval: 5, _growth_tracker: 3 });
  const off = new keel.amp.GradScaler({ enabled: false });
  const l = keel.tensor(3);
  assert.equal(off.scale(l), l);
  assert.equal(off.getScale(), 1);
  assert.deepEqual(off.stateDict(), {});
  assert.throws(() => b.loadStateDict({}), /state dict is empty/);
  assert.throws(() => b.loadStateDict({ ...a.stateDict(), scale: '8' } as never), /'scale' must be a finite number/);
  assert.throws(() => new keel.amp.GradScaler({ backoffFactor: 2 }), /backoffFactor must be in \(0, 1\)/);
  assert.throws(() => new keel.amp.GradScaler({ initscale: 2 } as never), /unknown option 'initscale'/);
});

test('fp16 without a scaler underflows small gradients to zero (training stalls); with GradScaler it trains', () => {
  // tiny activations: the weight gradients (~1e-8) are below half of fp16's smallest subnormal (6e-8)
  const run = (withScaler: boolean): { moved: number; lossDrop: number } => {
    keel.manualSeed(5);
    const model = new nn.Linear(8, 1, { bias: false });
    const opt = new keel.optim.SGD(model.parameters(), { lr: 1e5 });
    const scaler = new keel.amp.GradScaler({ enabled: withScaler });
    const x = keel.randn([16, 8]).mul(1e-4);
    const y = keel.randn([16, 1]).mul(1e-4);
    const w0 = model.weight.clone();
    const lossAt = (): number => keel.noGrad(() => ops.mseLoss(model.call(x), y).item() as number);
    const first = lossAt();
    for (let i = 0; i < 20; i++) {
      opt.zeroGrad();
      keel.scope(() => {
        const loss = keel.withPrecision('fp16', () => ops.mseLoss(model.call(x), y));
        scaler.scale(loss).backward();
      });
      scaler.step(opt);
      scaler.update();
    }
    const moved = keel.noGrad(() => model.weight.sub(w0).abs().max().item() as number);
    return { moved, lossDrop: first - lossAt() };
  };
  const plain = run(false);
  const scaled = run(true);
  assert.equal(plain.moved, 0, 'without loss scaling every fp16 gradient flushed to zero');
  assert.ok(scaled.moved > 0 && scaled.lossDrop > 0, `with the scaler the weights moved by ${scaled.moved} and the loss fell by ${scaled.lossDrop}`);
});

test('TrainingPrecision: every precision by name trains a small conv net; bf16-true keeps bf16 parameters; names are checked', () => {
  const results: Record<string, { first: number; last: number; dtype: string }> = {};
  for (const name of keel.train.PRECISIONS) {
    keel.manualSeed(0);
    const prec = new keel.train.TrainingPrecision(name);
    const model = prec.setupModel(new nn.Sequential(new nn.Conv2d(1, 4, 3), new nn.ReLU(), new nn.Flatten(), new nn.Linear(4 * 6 * 6, 3)));
    const opt = new keel.optim.SGD(model.parameters(), { lr: 0.1 });
    const x = keel.randn([16, 1, 8, 8]);
    const y = keel.randint(0, 3, [16]);
    const losses: number[] = [];
    for (let i = 0; i < 15; i++) {
      opt.zeroGrad();
      keel.scope(() => {
        const loss = prec.forward(() => ops.crossEntropyLoss(model.call(prec.castInput(x)), y).float());
        prec.backward(loss);
        prec.step(opt);
        losses.push(loss.item() as number);
      });
    }
    results[name] = { first: losses[0], last: losses[14], dtype: model.parameters()[0].dtype };
    prec.dispose();
  }
  for (const [name, r] of Object.entries(results)) {
    assert.ok(Number.isFinite(r.last) && r.last < r.first, `${name}: loss ${r.first} → ${r.last}`);
  }
  assert.equal(results['bf16-true'].dtype, 'bfloat16');
  assert.equal(results['64-true'].dtype, 'float64');
  assert.equal(results['bf16-mixed'].dtype, 'float32');
  assert.throws(() => new keel.train.TrainingPrecision('fp12'), /unknown precision "fp12" \(one of 32-true/);
  assert.throws(() => new keel.train.TrainingPrecision('16-mixed'), /16-mixed is fp16-mixed here/);
  const p = new keel.train.TrainingPrecision('fp16-mixed');
  assert.deepEqual(p.stateDict(), { name: 'fp16-mixed', scaler: { scale: 65536, growth_factor: 2, backoff_factor: 0.5, growth_interval: 2000, _growth_tracker: 0 } });
  assert.throws(() => p.loadStateDict({ name: 'bf16-mixed' }), /trained in bf16-mixed, not fp16-mixed/);
});

test('keel train --precision and keel audit/repro --precision offer exactly the names the library accepts', async () => {
  const program = (await import(new URL('../../dist/cli/program.js', import.meta.url).href)) as { TRAIN_PRECISIONS: string[]; AUDIT_FORMATS: string[] };
  assert.deepEqual(program.TRAIN_PRECISIONS, [...keel.train.PRECISIONS]);
  assert.deepEqual(program.AUDIT_FORMATS, [...keel.audit.AUDIT_FORMATS_ACCEPTED]);
});
