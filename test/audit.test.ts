// keel.audit: the nonsmooth backward rules on constructed ties in float64
// (each returns its documented subgradient, forward unchanged), the
// bifurcation appearing as precision falls, and the quick runs of
// `keel audit nonsmooth` and `keel repro maxpool`.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';
import type { Tensor } from 'keel';

const A = keel.audit;
const f64 = (v: number[][][][] | number[]) => keel.tensor(v as number[], { dtype: 'float64' }).requiresGrad_();

/** Gradient of sum(w ⊙ pool(x)) with respect to x, for a rule β; and the forward value. */
function poolGrad(x: number[][], beta: number, opts: { kernel?: number; stride?: number; padding?: number } = {}, w?: number[][]): { y: number[][]; g: number[][] } {
  return keel.scope(() => {
    const xt = f64([[x]] as unknown as number[][][][]);
    const k = opts.kernel ?? 2;
    const y = A.maxPool2dBeta(xt, k, { stride: opts.stride, padding: opts.padding, beta });
    const ref = keel.ops.maxPool2d(xt.detach(), [k, k], [opts.stride ?? k, opts.stride ?? k], [opts.padding ?? 0, opts.padding ?? 0]);
    assert.deepEqual(y.toArray(), ref.toArray(), 'forward is max_pool2d');
    const wt = w ? keel.tensor([[w]] as unknown as number[], { dtype: 'float64' }) : keel.onesLike(y);
    y.mul(wt).sum().backward();
    return { y: (y.toArray() as number[][][][])[0][0], g: (xt.grad!.toArray() as number[][][][])[0][0] };
  });
}

test("ReLU'(0) = s: derivative 1 / s / 0 on x > 0 / x = 0 / x < 0, forward unchanged", () => {
  for (const s of [0, 0.25, 1, 3]) {
    keel.scope(() => {
      const x = f64([-2, -0, 0, 1e-300, 5]);
      const y = A.reluAt0(x, s);
      assert.deepEqual(y.toArray(), keel.ops.relu(x.detach()).toArray());
      y.mul(keel.tensor([1, 2, 3, 4, 5], { dtype: 'float64' })).sum().backward();
      assert.deepEqual(x.grad!.toArray(), [0, 2 * s, 3 * s, 4, 5]);
    });
  }
});

test('max via ReLU: max(a, b) = b + relu(a − b); at a tie the gradient is (s, 1 − s)', () => {
  for (const s of [0, 1, 0.5]) {
    keel.scope(() => {
      const a = f64([3, 2, 7]), b = f64([3, 5, 1]);
      const m = A.maxViaRelu(a, b, s);
      assert.deepEqual(m.toArray(), [3, 5, 7]);
      m.sum().backward();
      assert.deepEqual(a.grad!.toArray(), [s, 0, 1]);
      assert.deepEqual(b.grad!.toArray(), [1 - s, 1, 0]);
    });
  }
});

// windows (2×2, stride 2): top-left 4 tied 1s, top-right 2 tied 2s, bottom-left unique 3, bottom-right 4 tied 5s
const X = [[1, 1, 0, 2], [1, 1, 2, 1], [3, 0, 5, 5], [1, -3, 5, 5]];
const W = [[1, 2], [4, 8]];

test('MaxPool native: the whole gradient to the first argmax of each window', () => {
  const { y, g } = poolGrad(X, 0, {}, W);
  assert.deepEqual(y, [[1, 2], [3, 5]]);
  assert.deepEqual(g, [[1, 0, 0, 2], [0, 0, 0, 0], [4, 0, 8, 0], [0, 0, 0, 0]]);
});

test('MaxPool minimal: g/k to each of the k tied maxima (k = 4, 2, 1, 4)', () => {
  const { g } = poolGrad(X, 1, {}, W);
  assert.deepEqual(g, [[0.25, 0.25, 0, 1], [0.25, 0.25, 1, 0], [4, 0, 2, 2], [0, 0, 2, 2]]);
});

test('MaxPool-β = β·minimal + (1 − β)·native, for β = 0.5, 2, 1000', () => {
  const nat = poolGrad(X, 0, {}, W).g, min = poolGrad(X, 1, {}, W).g;
  for (const beta of [0.5, 2, 1000]) {
    const { g } = poolGrad(X, beta, {}, W);
    g.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - (beta * min[i][j] + (1 - beta) * nat[i][j])) <= 1e-12 * Math.max(1, beta), `β=${beta} at ${i},${j}`)));
  }
  // without ties every rule is native
  const distinct = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]];
  assert.deepEqual(poolGrad(distinct, 1000).g, poolGrad(distinct, 0).g);
});

test('MaxPool rules on overlapping windows (stride < kernel, padding): shares accumulate', () => {
  const ones = [[1, 1, 1], [1, 1, 1], [1, 1, 1]];
  // 2×2 stride 1: four windows, each with 4 tied maxima
  assert.deepEqual(poolGrad(ones, 0, { stride: 1 }).g, [[1, 1, 0], [1, 1, 0], [0, 0, 0]]);
  assert.deepEqual(poolGrad(ones, 1, { stride: 1 }).g, [[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]]);
  // 3×3 stride 2 padding 1 (the padding is -inf, never a maximum): windows of 4, 6, 6, 9 real cells... each tied
  const g = poolGrad(ones, 1, { kernel: 3, stride: 2, padding: 1 }).g;
  assert.deepEqual(g, [[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]]);
  const total = g.flat().reduce((a, b) => a + b, 0);
  assert.equal(total, 4, 'each of the 4 windows sends exactly its gradient');
  // a unique maximum shared by overlapping windows gets all of them
  const peak = [[0, 0, 0], [0, 9, 0], [0, 0, 0]];
  assert.deepEqual(poolGrad(peak, 1, { stride: 1 }).g, [[0, 0, 0], [0, 4, 0], [0, 0, 0]]);
});

test('bifurcation appears as precision falls: same inputs, native vs minimal', () => {
  // 1 + 2^-9 and 1 are distinct in fp64/fp32/fp16 (fp16 ulp at 1 is 2^-10) but round together in bf16 and fp8
  const x = [[1, 1 + 2 ** -9, 0.5, 0.25], [0.125, 0, 1 - 2 ** -12, 1 - 2 ** -11]];
  const differs = (format: keel.FormatName): boolean => keel.scope(() => {
    const grads = [0, 1].map((beta) => {
      const xt = keel.tensor([[x]] as unknown as number[], { dtype: A.computeDtype(format) }).requiresGrad_();
      A.inFormat(format, () => A.maxPool2dBeta(xt, 2, { beta }).sum().backward());
      return xt.grad!.to('float64').toArray() as number[][][][];
    });
    return JSON.stringify(grads[0]) !== JSON.stringify(grads[1]);
  });
  assert.equal(differs('fp64'), false);
  assert.equal(differs('fp32'), false);
  assert.equal(differs('fp16'), false);
  assert.equal(differs('bf16'), true);
  assert.equal(differs('fp8-e4m3'), true);
  // compensation zone: f(t) = max_loop(t x) − max(t x) ≡ 0; for fixed x AD is exact in
  // fp64 … fp16 and wrong somewhere in fp8-e4m3; with x adjacent in each format, wrong in every format
  for (const f of ['fp64', 'fp32', 'bf16', 'fp16'] as const) assert.equal(A.compensationSweep(f, { points: 16 }).wrong, 0, f);
  assert.ok(A.compensationSweep('fp8-e4m3', { points: 16 }).wrong > 0);
  for (const f of A.AUDIT_FORMATS) assert.ok(A.compensationSweep(f, { points: 16, x: 'adjacent' }).wrong > 0, f);
});

test('swapBackwardRules: forward unchanged; β = 0, ReLU\'(0) = 0 reproduce libtorch\'s gradients bit for bit', () => {
  keel.scope(() => {
    keel.manualSeed(3);
    const model = new keel.nn.zoo.LeNet5();
    const x = keel.rand([4, 1, 28, 28]);
    const y = keel.tensor([1, 2, 3, 4]).long();
    const run = (): [number[], Map<string, Tensor>] => {
      model.zeroGrad();
      const out = model.call(x) as Tensor;
      keel.losses.crossEntropy(out, y).backward();
      return [Array.from(out.data() as Float32Array), A.collectGradients(model)];
    };
    const [o1, g1] = run();
    const rep = A.swapBackwardRules(model, { beta: 0, reluAt0: 0 });
    assert.deepEqual(rep.maxPool, ['pool1', 'pool2']);
    assert.equal(rep.relu.length, 4);
    assert.ok(model.pool1 instanceof A.MaxPool2dBeta);
    const [o2, g2] = run();
    assert.deepEqual(o2, o1);
    assert.ok(A.compareGradients(g1, g2).equal);
    A.swapBackwardRules(model, { beta: 1000, reluAt0: 1 });
    const [o3] = run();
    assert.deepEqual(o3, o1, 'forward is the same for every rule');
  });
});

test('wilson interval: the paper\'s 488/1000 and 216/391, and the edges', () => {
  const b = A.wilson(488, 1000);
  assert.ok(Math.abs(b.lo - 0.457124) < 1e-6 && Math.abs(b.hi - 0.518968) < 1e-6);
  const m = A.wilson(216, 391);
  assert.ok(Math.abs(m.lo - 0.502870) < 1e-6 && Math.abs(m.hi - 0.600969) < 1e-6);
  const all = A.wilson(8, 8);
  assert.equal(all.hi, 1);
  assert.ok(Math.abs(all.lo - 0.675584) < 1e-6);
  assert.throws(() => A.wilson(3, 2), /0 ≤ k ≤ n/);
});

test('wilson interval', () => {
  const s = A.wilson(0, 10);
  assert.equal(s.lo, 0);
  assert.ok(Math.abs(s.hi - 0.2775) < 1e-3);
  const h = A.wilson(5, 10);
  assert.ok(Math.abs(h.lo - 0.2366) < 1e-3 && Math.abs(h.hi - 0.7634) < 1e-3);
});

const cliPath = new URL('../../dist/experiments/nonsmooth/cli.js', import.meta.url).href;

test('keel audit nonsmooth --quick: results.json, bifurcation shares in the predicted order (or explained)', { timeout: 300_000 }, async (t) => {
  const { runAudit } = (await import(cliPath)) as { runAudit: (a: string[]) => Promise<number> };
  const out = mkdtempSync(join(tmpdir(), 'keel-audit-'));
  const t0 = Date.now();
  assert.equal(await runAudit(['--quick', '--model', 'vgg11', '--out', out]), 0);
  t.diagnostic(`--quick took ${((Date.now() - t0) / 1000).toFixed(1)} s (a budget of a minute on a quiet machine; timings belong to bench/)`);
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.equal(r.rows.length, 12);
  const row = (p: string, f: string) => r.rows.find((x: { protocol: string; format: string }) => x.protocol === p && x.format === f);
  // padding equals the background (padded before standardising): no border of exact zeros, so
  // in fp64 ReLU'(0) = 0 and = 1 agree on every pair; MaxPool's fp64 D stays under Boustany's 1e-15
  assert.equal(row('relu', 'fp64').differ.k, 0);
  assert.equal(row('maxpool', 'fp64').aboveAbsolute.k, 0);
  // two θ draws are far fewer than the protocol's: every verdict says so, with its statistic, threshold and n
  assert.equal(r.verdicts.length, 2);
  for (const v of r.verdicts) {
    assert.equal(v.outcome, 'insufficient');
    assert.equal(v.n, 2);
    assert.match(v.statistic, /fp64 0\/2/);
    assert.match(v.threshold, /Wilson 95 %/);
  }
  assert.ok(existsSync(join(out, 'bifurcation-maxpool.svg')));
});

test('keel repro maxpool --quick: results.json with runs and claims', { timeout: 300_000 }, async (t) => {
  const { runRepro } = (await import(cliPath)) as { runRepro: (a: string[]) => Promise<number> };
  const out = mkdtempSync(join(tmpdir(), 'keel-repro-'));
  const t0 = Date.now();
  assert.equal(await runRepro(['--quick', '--out', out]), 0);
  t.diagnostic(`--quick took ${((Date.now() - t0) / 1000).toFixed(1)} s (a budget of a minute on a quiet machine; timings belong to bench/)`);
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.ok(r.runs.length >= 12 && r.claims.length >= 3);
  assert.ok(existsSync(join(out, 'accuracy-lenet5-fashion-mnist.svg')));
});

test('the nonsmooth audit can ask for a full Fashion-MNIST epoch (235 × 256 > 60,000) without a narrow() error', async () => {
  const { loadData, batch } = (await import(new URL('../../dist/experiments/nonsmooth/models.js', import.meta.url).href)) as {
    loadData(m: string, d: string, n: number, nTest: number): { train: { x: Tensor; y: Tensor }; test: { x: Tensor; y: Tensor } };
    batch(s: { x: Tensor; y: Tensor }, i: number, b: number): [Tensor, Tensor];
  };
  const { train, test: held } = loadData('lenet5', 'fashion-mnist', 235 * 256 + 256, 1);
  assert.deepEqual(train.x.shape, [60000, 1, 28, 28]);
  assert.deepEqual(batch(train, 234, 256)[0].shape, [256, 1, 28, 28]);
  for (const t of [train.x, train.y, held.x, held.y]) t.dispose();
});
