// Gradients of the differentiable ops, checked two ways:
//  (a) against central finite differences in float64 (test/helpers/gradcheck.ts);
//  (b) forward values and input gradients against PyTorch (Debian's python3-torch,
//      always /usr/bin/python3), one subprocess for every case in this file.
// Both sides see the same inputs and the same output weights W: the gradient
// compared is that of L = Σ sum(output · W). Inputs sit away from kinks and
// ties (relu not near 0, max-pool windows without equal values, ...), so that
// the derivative exists and a ±h step cannot cross to another branch.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as keel from 'keel';
import type { Tensor } from 'keel';
import { assertClose, flat } from './helpers/assert.js';
import { gradcheck, nest, numel, randomWeights, Rng, type GradFn, type Nested } from './helpers/gradcheck.js';
import { runTorch, torchAvailable } from './helpers/torch.js';

const ops = keel.ops;

// ---- tolerances -------------------------------------------------------------------
interface Tol { atol: number; rtol: number }
/**
 * Finite differences with h = 1e-6: truncation error ~h²·|f'''| ≈ 1e-12 and
 * rounding error ~ε·|L|/h ≈ 2e-16·10/1e-6 = 2e-9 for the sizes used here, so
 * 1e-7 absolute (plus 1e-6 relative) leaves ~50× headroom, while a wrong
 * gradient is off by O(1).
 */
const FD: Tol = { atol: 1e-7, rtol: 1e-6 };
/**
 * Keel and PyTorch run the same libtorch kernels, one thread each, so float64
 * results agree to the last bits; 1e-10 relative (1e-12 absolute near zero)
 * allows a different summation order and nothing more.
 */
const TORCH64: Tol = { atol: 1e-12, rtol: 1e-10 };
/** float32: unit roundoff 6e-8; 1e-5 allows a few reassociated sums over ~100 terms. */
const TORCH32: Tol = { atol: 1e-6, rtol: 1e-5 };

// ---- inputs -----------------------------------------------------------------------
type DT = 'float64' | 'float32' | 'int64' | 'bool';
interface Arg { shape: number[]; flat: number[]; dtype: DT; grad: boolean }
type Gen = (n: number) => number[];

const rng = new Rng(20240611);
const times = (n: number, f: () => number): number[] => Array.from({ length: n }, f);
/** Standard normal times scale. */
const N = (scale = 1): Gen => (n) => times(n, () => scale * rng.normal());
const U = (lo: number, hi: number): Gen => (n) => times(n, () => rng.uniform(lo, hi));
/** |v| in [lo, hi] with a random sign: away from a kink at 0. */
const away = (lo: number, hi: number): Gen => (n) => times(n, () => (rng.next() < 0.5 ? -1 : 1) * rng.uniform(lo, hi));
/** Uniform on [lo, hi] but at least `margin` from each kink. */
const avoid = (lo: number, hi: number, kinks: number[], margin = 0.1): Gen => (n) =>
  times(n, () => {
    for (;;) {
      const v = rng.uniform(lo, hi);
      if (kinks.every((k) => Math.abs(v - k) >= margin)) return v;
    }
  });
/** Distinct values spaced ≥ 0.7·(hi-lo)/n apart, shuffled: no ties for max, sort, pooling. */
const distinct = (lo = -2, hi = 2): Gen => (n) => {
  const step = (hi - lo) / n;
  return rng.shuffle(times(n, () => 0).map((_, i) => lo + step * (i + 0.5) + rng.uniform(-0.15, 0.15) * step));
};

/** A float64 input that requires grad. */
const x = (shape: number[], gen: Gen = N()): Arg => ({ shape, flat: gen(numel(shape)), dtype: 'float64', grad: true });
/** A float64 input held constant. */
const c = (shape: number[], gen: Gen = N()): Arg => ({ ...x(shape, gen), grad: false });
/** A float32 input that requires grad (values exactly representable in float32). */
const f32 = (shape: number[], gen: Gen = N()): Arg => ({ shape, flat: gen(numel(shape)).map(Math.fround), dtype: 'float32', grad: true });
/** An explicit float64 input. */
const xv = (shape: number[], flat: number[], grad = true): Arg => ({ shape, flat, dtype: 'float64', grad });
/** int64 indices or targets. */
const i64 = (shape: number[], flat: number[]): Arg => ({ shape, flat, dtype: 'int64', grad: false });
const mask = (shape: number[], flat: number[]): Arg => ({ shape, flat, dtype: 'bool', grad: false });
const randMask = (shape: number[]): Arg => mask(shape, times(numel(shape), () => (rng.next() < 0.5 ? 1 : 0)));

function toKeel(a: Arg): Tensor {
  if (a.dtype === 'bool') return keel.tensor(nest(a.flat.map((v) => v !== 0), a.shape) as keel.NestedArray<boolean>, { dtype: 'bool' });
  return keel.tensor(nest(a.flat, a.shape) as keel.NestedArray<number>, { dtype: a.dtype, requiresGrad: a.grad });
}

// ---- the cases --------------------------------------------------------------------
interface Case {
  name: string;
  args: Arg[];
  keel: GradFn;
  /** A Python lambda over the same arguments (torch, F = torch.nn.functional). */
  py: string;
  /** Finite-difference tolerance; null for float32 cases (no finite differences there). */
  fd?: Tol | null;
  torch?: Tol;
  /** Also check the gradient of the gradient (createGraph) against finite differences and PyTorch. */
  order2?: boolean;
}

const cases: Case[] = [];
function add(name: string, args: Arg[], keelFn: GradFn, py: string, extra: Partial<Case> = {}): void {
  cases.push({ name, args, keel: keelFn, py, ...extra });
}

// elementwise unary
const S = [3, 4];
add('exp', [x(S)], (a) => a.exp(), 'torch.exp');
add('log', [x(S, U(0.3, 2))], (a) => a.log(), 'torch.log');
add('sqrt', [x(S, U(0.3, 2))], (a) => a.sqrt(), 'torch.sqrt');
add('rsqrt', [x(S, U(0.3, 2))], (a) => a.rsqrt(), 'torch.rsqrt');
add('sin', [x(S)], (a) => a.sin(), 'torch.sin');
add('cos', [x(S)], (a) => a.cos(), 'torch.cos');
add('tan', [x(S, U(-1.2, 1.2))], (a) => ops.tan(a), 'torch.tan');
add('tanh', [x(S)], (a) => a.tanh(), 'torch.tanh');
add('sigmoid', [x(S, N(2))], (a) => a.sigmoid(), 'torch.sigmoid');
add('logSigmoid', [x(S, N(2))], (a) => a.logSigmoid(), 'F.logsigmoid');
add('relu', [x(S, away(0.1, 2))], (a) => a.relu(), 'torch.relu');
add('leakyRelu(0.1)', [x(S, away(0.1, 2))], (a) => ops.leakyRelu(a, 0.1), 'lambda a: F.leaky_relu(a, 0.1)');
add('elu(alpha=1.3)', [x(S, away(0.1, 2))], (a) => ops.elu(a, 1.3), 'lambda a: F.elu(a, 1.3)');
add('celu(alpha=0.7)', [x(S, away(0.1, 2))], (a) => ops.celu(a, 0.7), 'lambda a: F.celu(a, 0.7)');
add('selu', [x(S, away(0.1, 2))], (a) => ops.selu(a), 'F.selu');
add('gelu', [x(S, N(2))], (a) => a.gelu(), 'F.gelu');
add('gelu(tanh)', [x(S, N(2))], (a) => a.gelu('tanh'), "lambda a: F.gelu(a, approximate='tanh')");
add('silu', [x(S, N(2))], (a) => ops.silu(a), 'F.silu');
add('mish', [x(S, N(2))], (a) => ops.mish(a), 'F.mish');
add('softplus(beta=2)', [x(S, N(2))], (a) => a.softplus(2, 20), 'lambda a: F.softplus(a, 2, 20)');
add('abs', [x(S, away(0.1, 2))], (a) => a.abs(), 'torch.abs');
add('pow(x, 2.5)', [x(S, U(0.3, 2))], (a) => a.pow(2.5), 'lambda a: a ** 2.5');
add('pow(x, 3) of negatives too', [x(S)], (a) => a.pow(3), 'lambda a: a ** 3');
add('square', [x(S)], (a) => a.square(), 'torch.square');
add('neg', [x(S)], (a) => a.neg(), 'torch.neg');
add('reciprocal', [x(S, away(0.3, 2))], (a) => a.reciprocal(), 'torch.reciprocal');
add('erf', [x(S)], (a) => ops.erf(a), 'torch.erf');
add('erfinv', [x(S, U(-0.9, 0.9))], (a) => ops.erfinv(a), 'torch.erfinv');
add('atan', [x(S, N(2))], (a) => ops.atan(a), 'torch.atan');
add('asin', [x(S, U(-0.9, 0.9))], (a) => ops.asin(a), 'torch.asin');
add('asinh', [x(S, N(2))], (a) => ops.asinh(a), 'torch.asinh');
add('log1p', [x(S, U(-0.5, 2))], (a) => a.log1p(), 'torch.log1p');
add('expm1', [x(S)], (a) => a.expm1(), 'torch.expm1');
add('lgamma', [x(S, U(0.5, 4))], (a) => ops.lgamma(a), 'torch.lgamma');
add('digamma', [x(S, U(0.5, 4))], (a) => ops.digamma(a), 'torch.digamma');
add('logit', [x(S, U(0.1, 0.9))], (a) => ops.logit(a), 'torch.logit');
add('clamp(-0.5, 0.5)', [x(S, avoid(-1.5, 1.5, [-0.5, 0.5]))], (a) => a.clamp(-0.5, 0.5), 'lambda a: torch.clamp(a, -0.5, 0.5)');
add('hardtanh(-0.8, 0.6)', [x(S, avoid(-1.5, 1.5, [-0.8, 0.6]))], (a) => ops.hardtanh(a, -0.8, 0.6), 'lambda a: F.hardtanh(a, -0.8, 0.6)');

// binary, broadcasting
add('add(alpha=2) [3,4]+[4]', [x([3, 4]), x([4])], (a, b) => ops.add(a, b, { alpha: 2 }), 'lambda a, b: torch.add(a, b, alpha=2)');
add('sub(alpha=0.5) [2,3,1]-[3,4]', [x([2, 3, 1]), x([3, 4])], (a, b) => a.sub(b, 0.5), 'lambda a, b: torch.sub(a, b, alpha=0.5)');
add('mul [3,1]*[1,4]', [x([3, 1]), x([1, 4])], (a, b) => a.mul(b), 'lambda a, b: a * b');
add('mul by a scalar', [x(S)], (a) => a.mul(-2.5), 'lambda a: a * -2.5');
add('div [3,4]/[4]', [x([3, 4]), x([4], away(0.5, 2))], (a, b) => a.div(b), 'lambda a, b: a / b');
add('pow(tensor, tensor)', [x([3, 4], U(0.5, 2)), x([4])], (a, b) => a.pow(b), 'lambda a, b: a ** b');
{
  const a = N()(12);
  const b = a.map((v) => v + (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.1, 1));
  add('maximum (no ties)', [xv(S, a), xv(S, b)], (p, q) => p.maximum(q), 'torch.maximum');
  add('minimum (no ties)', [xv(S, a), xv(S, b)], (p, q) => p.minimum(q), 'torch.minimum');
}
add('atan2', [x(S), x(S, away(0.3, 2))], (a, b) => ops.atan2(a, b), 'torch.atan2');
add('hypot', [x(S, away(0.2, 2)), x(S, away(0.2, 2))], (a, b) => ops.hypot(a, b), 'torch.hypot');
add('where(cond, [3,4], [4])', [randMask(S), x(S), x([4])], (m, a, b) => keel.where(m, a, b), 'torch.where');
add('lerp(tensor weight)', [x(S), x(S), x(S, U(0, 1))], (a, b, w) => ops.lerp(a, b, w), 'torch.lerp');
add('addcmul(value=0.5)', [x(S), x(S), x([4])], (a, b, d) => ops.addcmul(a, b, d, { value: 0.5 }), 'lambda a, b, d: torch.addcmul(a, b, d, value=0.5)');
add('addcdiv(value=0.5)', [x(S), x(S), x(S, away(0.5, 2))], (a, b, d) => ops.addcdiv(a, b, d, { value: 0.5 }), 'lambda a, b, d: torch.addcdiv(a, b, d, value=0.5)');
add('xlogy', [x(S), x(S, U(0.5, 2))], (a, b) => ops.xlogy(a, b), 'torch.xlogy');

// reductions
const R = [2, 3, 4];
add('sum all', [x(R)], (a) => a.sum(), 'torch.sum');
add('sum dims [0,2] keepdim', [x(R)], (a) => a.sum([0, 2], true), 'lambda a: a.sum(dim=(0, 2), keepdim=True)');
add('mean dim 1', [x(R)], (a) => a.mean(1), 'lambda a: a.mean(1)');
add('prod all', [x([2, 3], away(0.5, 1.5))], (a) => a.prod(), 'torch.prod');
add('prod dim 1', [x(R, away(0.5, 1.5))], (a) => a.prod(1), 'lambda a: a.prod(1)');
add('amax dim 1 (no ties)', [x(R, distinct())], (a) => a.amax(1), 'lambda a: a.amax(1)');
add('max all (no ties)', [x(R, distinct())], (a) => a.max(), 'torch.max');
add('max dim 2 values', [x(R, distinct())], (a) => a.max(2)[0], 'lambda a: a.max(2)[0]');
add('min dim 0 keepdim values', [x(R, distinct())], (a) => a.min(0, true)[0], 'lambda a: a.min(0, keepdim=True)[0]');
add('logsumexp dim 1', [x(R, N(2))], (a) => a.logsumexp(1), 'lambda a: torch.logsumexp(a, 1)');
add('std dim 1', [x(R)], (a) => a.std(1), 'lambda a: a.std(1)');
add('var dims [0,1] correction 0', [x(R)], (a) => a.var([0, 1], { correction: 0 }), 'lambda a: a.var((0, 1), unbiased=False)');
add('stdMean (two outputs)', [x(R)], (a) => ops.stdMean.correction(a, [2], { correction: 1 }), 'lambda a: torch.std_mean(a, 2, unbiased=True)');
add('norm (2, all)', [x(R)], (a) => a.norm(), 'lambda a: torch.linalg.vector_norm(a)');
add('norm (3, dim 1)', [x(R, away(0.2, 2))], (a) => a.norm(3, 1), 'lambda a: torch.linalg.vector_norm(a, 3, 1)');
add('cumsum dim 1', [x(R)], (a) => ops.cumsum(a, 1), 'lambda a: torch.cumsum(a, 1)');
add('cumprod dim 2', [x(R, away(0.5, 1.5))], (a) => ops.cumprod(a, 2), 'lambda a: torch.cumprod(a, 2)');
add('softmax dim 1', [x(R, N(2))], (a) => a.softmax(1), 'lambda a: torch.softmax(a, 1)');
add('logSoftmax dim 0', [x(R, N(2))], (a) => a.logSoftmax(0), 'lambda a: torch.log_softmax(a, 0)');
add('sort descending values', [x(R, distinct())], (a) => ops.sort(a, 1, true)[0], 'lambda a: torch.sort(a, 1, True)[0]');
add('topk(2) values', [x(R, distinct())], (a) => ops.topk(a, 2)[0], 'lambda a: torch.topk(a, 2)[0]');

// linear algebra
add('matmul batched broadcast [2,3,4]@[4,5]', [x([2, 3, 4]), x([4, 5])], (a, b) => a.matmul(b), 'torch.matmul');
add('matmul matrix-vector', [x([3, 4]), x([4])], (a, b) => a.matmul(b), 'torch.matmul');
add('mm', [x([3, 4]), x([4, 2])], (a, b) => a.mm(b), 'torch.mm');
add('bmm', [x([2, 3, 4]), x([2, 4, 2])], (a, b) => a.bmm(b), 'torch.bmm');
add('addmm(beta=0.5, alpha=2)', [x([2]), x([3, 4]), x([4, 2])], (s, a, b) => ops.addmm(s, a, b, { beta: 0.5, alpha: 2 }), 'lambda s, a, b: torch.addmm(s, a, b, beta=0.5, alpha=2)');
add('baddbmm', [x([2, 3, 2]), x([2, 3, 4]), x([2, 4, 2])], (s, a, b) => ops.baddbmm(s, a, b, { beta: 0.3, alpha: 1.5 }), 'lambda s, a, b: torch.baddbmm(s, a, b, beta=0.3, alpha=1.5)');
add('linear with bias', [x([2, 3, 4]), x([5, 4]), x([5])], (a, w, b) => ops.linear(a, w, b), 'F.linear');
add('dot', [x([5]), x([5])], (a, b) => a.dot(b), 'torch.dot');
add('outer', [x([3]), x([4])], (a, b) => ops.outer(a, b), 'torch.outer');
add('einsum bij,bjk->bik', [x([2, 3, 4]), x([2, 4, 2])], (a, b) => ops.einsum('bij,bjk->bik', [a, b]), "lambda a, b: torch.einsum('bij,bjk->bik', a, b)");
{
  // well conditioned: 3·I plus a small perturbation
  const m = N(0.3)(9).map((v, i) => v + (i % 4 === 0 ? 3 : 0));
  add('linalgInv', [xv([3, 3], m)], (a) => ops.linalgInv(a), 'torch.linalg.inv');
  add('linalgDet', [xv([3, 3], m.slice())], (a) => ops.linalgDet(a), 'torch.linalg.det');
}
add('trace', [x([3, 3])], (a) => ops.trace(a), 'torch.trace');

// convolution
add('conv1d stride 2 padding 1 bias', [x([2, 3, 9]), x([4, 3, 3]), x([4])], (a, w, b) => ops.conv1d(a, w, b, { stride: 2, padding: 1 }),
  'lambda a, w, b: F.conv1d(a, w, b, stride=2, padding=1)');
add('conv2d stride 2 padding 1 bias', [x([2, 3, 6, 6]), x([4, 3, 3, 3]), x([4])], (a, w, b) => ops.conv2d(a, w, b, { stride: 2, padding: 1 }),
  'lambda a, w, b: F.conv2d(a, w, b, stride=2, padding=1)');
add('conv2d groups 2 dilation 2', [x([1, 4, 7, 7]), x([6, 2, 3, 3])], (a, w) => ops.conv2d(a, w, null, { dilation: 2, groups: 2 }),
  'lambda a, w: F.conv2d(a, w, None, dilation=2, groups=2)');
add('conv2d stride [1,2] padding [2,0] bias', [x([2, 2, 5, 6]), x([3, 2, 3, 2]), x([3])], (a, w, b) => ops.conv2d(a, w, b, { stride: [1, 2], padding: [2, 0] }),
  'lambda a, w, b: F.conv2d(a, w, b, stride=(1, 2), padding=(2, 0))');
add('convTranspose2d stride 2 padding 1 output_padding 1 bias', [x([1, 4, 3, 3]), x([4, 3, 3, 3]), x([3])],
  (a, w, b) => ops.convTranspose2d(a, w, b, { stride: 2, padding: 1, output_padding: 1 }),
  'lambda a, w, b: F.conv_transpose2d(a, w, b, stride=2, padding=1, output_padding=1)');
add('convTranspose1d groups 2', [x([2, 4, 5]), x([4, 1, 3]), x([2])], (a, w, b) => ops.convTranspose1d(a, w, b, { stride: 2, groups: 2 }),
  'lambda a, w, b: F.conv_transpose1d(a, w, b, stride=2, groups=2)');

// pooling (distinct inputs: no ties inside a window)
add('maxPool2d 2x2', [x([1, 2, 4, 4], distinct())], (a) => ops.maxPool2d(a, [2, 2]), 'lambda a: F.max_pool2d(a, 2)');
add('maxPool2d 3x3 stride 2 padding 1 (overlapping)', [x([1, 2, 5, 5], distinct())], (a) => ops.maxPool2d(a, [3, 3], [2, 2], [1, 1]),
  'lambda a: F.max_pool2d(a, 3, 2, 1)');
add('maxPool1d 3 stride 1', [x([2, 2, 6], distinct())], (a) => ops.maxPool1d(a, [3], [1]), 'lambda a: F.max_pool1d(a, 3, 1)');
add('avgPool2d 3x3 stride 2 padding 1 count_include_pad=False', [x([1, 2, 5, 5])], (a) => ops.avgPool2d(a, [3, 3], [2, 2], [1, 1], false, false),
  'lambda a: F.avg_pool2d(a, 3, 2, 1, count_include_pad=False)');
add('avgPool1d 2', [x([2, 3, 6])], (a) => ops.avgPool1d(a, [2]), 'lambda a: F.avg_pool1d(a, 2)');
add('adaptiveAvgPool2d 5x7 -> 2x3', [x([1, 2, 5, 7])], (a) => ops.adaptiveAvgPool2d(a, [2, 3]), 'lambda a: F.adaptive_avg_pool2d(a, (2, 3))');
add('adaptiveMaxPool2d 5x5 -> 2x2', [x([1, 2, 5, 5], distinct())], (a) => ops.adaptiveMaxPool2d(a, [2, 2])[0], 'lambda a: F.adaptive_max_pool2d(a, 2)');

// normalization
add('batchNorm 2d training', [x([4, 3, 2, 2], N(2)), x([3]), x([3])], (a, w, b) => ops.batchNorm(a, w, b, null, null, true, 0.1, 1e-5, false),
  'lambda a, w, b: F.batch_norm(a, None, None, w, b, training=True, momentum=0.1, eps=1e-5)');
add('batchNorm 1d training', [x([5, 3], N(2)), x([3]), x([3])], (a, w, b) => ops.batchNorm(a, w, b, null, null, true, 0.1, 1e-5, false),
  'lambda a, w, b: F.batch_norm(a, None, None, w, b, training=True, momentum=0.1, eps=1e-5)');
add('layerNorm over [3,4]', [x([2, 3, 4], N(2)), x([3, 4]), x([3, 4])], (a, w, b) => ops.layerNorm(a, [3, 4], w, b, 1e-5),
  'lambda a, w, b: F.layer_norm(a, (3, 4), w, b, 1e-5)');
add('groupNorm 2 groups', [x([2, 4, 3, 3], N(2)), x([4]), x([4])], (a, w, b) => ops.groupNorm(a, 2, w, b, 1e-5),
  'lambda a, w, b: F.group_norm(a, 2, w, b, 1e-5)');
add('instanceNorm', [x([2, 3, 3, 3], N(2)), x([3]), x([3])], (a, w, b) => ops.instanceNorm(a, w, b, null, null, true, 0.1, 1e-5, false),
  'lambda a, w, b: F.instance_norm(a, weight=w, bias=b, eps=1e-5)');

// losses (reduction: 0 none, 1 mean, 2 sum)
add('mseLoss mean', [x([4, 3]), x([4, 3])], (a, t) => ops.mseLoss(a, t), 'F.mse_loss');
add('mseLoss none', [x([4, 3]), x([4, 3])], (a, t) => ops.mseLoss(a, t, 0), "lambda a, t: F.mse_loss(a, t, reduction='none')");
{
  const t = N()(12);
  const d = away(0.1, 2)(12);
  add('l1Loss sum', [xv([4, 3], t.map((v, i) => v + d[i])), xv([4, 3], t)], (a, b) => ops.l1Loss(a, b, 2), "lambda a, t: F.l1_loss(a, t, reduction='sum')");
  const d2 = avoid(-2, 2, [-0.5, 0, 0.5])(12);
  add('smoothL1Loss beta 0.5', [xv([4, 3], t.map((v, i) => v + d2[i])), xv([4, 3], t)], (a, b) => ops.smoothL1Loss(a, b, 1, 0.5),
    'lambda a, t: F.smooth_l1_loss(a, t, beta=0.5)');
  const d3 = avoid(-2, 2, [-0.8, 0, 0.8])(12);
  add('huberLoss delta 0.8', [xv([4, 3], t.map((v, i) => v + d3[i])), xv([4, 3], t)], (a, b) => ops.huberLoss(a, b, 1, 0.8),
    'lambda a, t: F.huber_loss(a, t, delta=0.8)');
}
add('binaryCrossEntropy with weight', [x([4, 3], U(0.1, 0.9)), c([4, 3], U(0, 1)), c([3], U(0.5, 2))], (p, t, w) => ops.binaryCrossEntropy(p, t, w),
  'lambda p, t, w: F.binary_cross_entropy(p, t, w)');
add('binaryCrossEntropyWithLogits weight pos_weight', [x([4, 3], N(2)), x([4, 3], U(0, 1)), c([3], U(0.5, 2)), c([3], U(0.5, 2))],
  (a, t, w, pw) => ops.binaryCrossEntropyWithLogits(a, t, w, pw),
  'lambda a, t, w, pw: F.binary_cross_entropy_with_logits(a, t, w, pos_weight=pw)');
add('nllLoss weight ignore_index 1', [x([5, 4]), i64([5], [0, 3, 1, 2, 3]), c([4], U(0.5, 2))], (a, t, w) => ops.nllLoss(a, t, w, 1, 1),
  'lambda a, t, w: F.nll_loss(a, t, w, ignore_index=1)');
add('crossEntropyLoss weight label_smoothing 0.1', [x([5, 4], N(2)), i64([5], [0, 3, 1, 2, 3]), c([4], U(0.5, 2))],
  (a, t, w) => ops.crossEntropyLoss(a, t, w, 1, -100, 0.1),
  'lambda a, t, w: F.cross_entropy(a, t, w, label_smoothing=0.1)');
add('crossEntropyLoss [N,C,d] targets, sum', [x([2, 3, 4], N(2)), i64([2, 4], [0, 2, 1, 1, 2, 0, 0, 1])],
  (a, t) => ops.crossEntropyLoss(a, t, null, 2), "lambda a, t: F.cross_entropy(a, t, reduction='sum')");
add('crossEntropyLoss probability targets label_smoothing 0.2', [x([5, 4], N(2)), x([5, 4], U(0, 1))],
  (a, t) => ops.crossEntropyLoss(a, t, null, 1, -100, 0.2), 'lambda a, t: F.cross_entropy(a, t, label_smoothing=0.2)');
add('klDiv sum', [x([4, 3]), x([4, 3], U(0.1, 1))], (a, t) => ops.klDiv(a, t, 2), "lambda a, t: F.kl_div(a, t, reduction='sum')");
{
  const y = times(6, () => (rng.next() < 0.5 ? -1 : 1));
  const x1 = N()(6);
  const s = away(0.1, 1)(6); // s = -y·(x1 - x2) + margin, away from the hinge at 0
  const x2 = x1.map((v, i) => v + (s[i] - 0.1) / y[i]);
  add('marginRankingLoss margin 0.1', [xv([6], x1), xv([6], x2), xv([6], y, false)], (a, b, t) => ops.marginRankingLoss(a, b, t, 0.1),
    'lambda a, b, t: F.margin_ranking_loss(a, b, t, 0.1)');
}
add('cosineSimilarity dim 1', [x([3, 4]), x([3, 4])], (a, b) => ops.cosineSimilarity(a, b, 1), 'lambda a, b: F.cosine_similarity(a, b, 1)');
add('pairwiseDistance', [x([3, 4]), x([3, 4])], (a, b) => ops.pairwiseDistance(a, b), 'F.pairwise_distance');
add('cdist', [x([3, 4]), x([2, 4])], (a, b) => ops.cdist(a, b), 'torch.cdist');

// indexing and shape
add('indexSelect dim 1 with repeats', [x(R), i64([3], [2, 0, 2])], (a, i) => a.indexSelect(1, i), 'lambda a, i: torch.index_select(a, 1, i)');
add('gather dim 1', [x([3, 4]), i64([3, 3], [0, 2, 2, 1, 1, 0, 3, 0, 1])], (a, i) => a.gather(1, i), 'lambda a, i: torch.gather(a, 1, i)');
add('index with tensors a[i, :, j]', [x(R), i64([3], [1, 0, 1]), i64([3], [3, 3, 0])], (a, i, j) => ops.index(a, [i, null, j]),
  'lambda a, i, j: a[i, :, j]');
add('index method a[1:, t]', [x(R), i64([2], [2, 0])], (a, t) => a.index([{ start: 1 }, t]), 'lambda a, t: a[1:, t]');
add('slice with step', [x(R)], (a) => a.slice(2, 1, null, 2), 'lambda a: a[:, :, 1::2]');
add('narrow', [x(R)], (a) => a.narrow(1, 1, 2), 'lambda a: a.narrow(1, 1, 2)');
add('select', [x(R)], (a) => a.select(1, 2), 'lambda a: a.select(1, 2)');
add('cat dim 1', [x([2, 1, 4]), x([2, 3, 4]), x([2, 2, 4])], (a, b, d) => keel.cat([a, b, d], 1), 'lambda a, b, d: torch.cat([a, b, d], 1)');
add('stack dim 1', [x([3, 4]), x([3, 4])], (a, b) => keel.stack([a, b], 1), 'lambda a, b: torch.stack([a, b], 1)');
add('permute', [x(R)], (a) => a.permute(2, 0, 1), 'lambda a: a.permute(2, 0, 1)');
add('reshape of a transposed tensor', [x(R)], (a) => a.transpose(0, 2).reshape(6, 4), 'lambda a: a.transpose(0, 2).reshape(6, 4)');
add('expand', [x([3, 1])], (a) => a.expand(2, 3, 4), 'lambda a: a.expand(2, 3, 4)');
add('repeat', [x([2, 3])], (a) => a.repeat(2, 1, 2), 'lambda a: a.repeat(2, 1, 2)');
add('flip dims [0,2]', [x(R)], (a) => a.flip([0, 2]), 'lambda a: torch.flip(a, [0, 2])');
add('roll', [x([3, 4])], (a) => ops.roll(a, [1, -2], [0, 1]), 'lambda a: torch.roll(a, (1, -2), (0, 1))');
add('scatter src (unique indices)', [x([3, 5]), i64([3, 2], [0, 4, 2, 1, 3, 0]), x([3, 2])], (a, i, s) => ops.scatter.src(a, 1, i, s),
  'lambda a, i, s: torch.scatter(a, 1, i, s)');
add('scatterAdd with duplicates', [x([3, 4]), i64([2, 4], [0, 1, 2, 0, 0, 2, 2, 1]), x([2, 4])], (a, i, s) => ops.scatterAdd(a, 0, i, s),
  'lambda a, i, s: torch.scatter_add(a, 0, i, s)');
add('indexAdd with duplicates alpha 2', [x([4, 3]), i64([3], [1, 3, 1]), x([3, 3])], (a, i, s) => ops.indexAdd(a, 0, i, s, { alpha: 2 }),
  'lambda a, i, s: torch.index_add(a, 0, i, s, alpha=2)');
add('indexPut accumulate', [x([4, 3]), i64([3], [0, 2, 0]), i64([3], [1, 1, 1]), x([3])], (a, i, j, v) => ops.indexPut(a, [i, j], v, true),
  'lambda a, i, j, v: torch.index_put(a, (i, j), v, accumulate=True)');
add('maskedFill', [x([3, 4]), randMask([3, 4])], (a, m) => ops.maskedFill.Scalar(a, m, -1.5), 'lambda a, m: a.masked_fill(m, -1.5)');
add('chunk (three outputs)', [x([2, 6])], (a) => a.chunk(3, 1), 'lambda a: a.chunk(3, 1)');
add('split sizes [1,3] (two outputs)', [x([4, 3])], (a) => a.split([1, 3], 0), 'lambda a: a.split([1, 3], 0)');
add('unbind', [x([3, 2])], (a) => a.unbind(0), 'lambda a: a.unbind(0)');
add('diagonal offset 1', [x([3, 4])], (a) => ops.diagonal(a, 1), 'lambda a: torch.diagonal(a, 1)');
add('tril', [x([3, 4])], (a) => ops.tril(a), 'torch.tril');
add('take', [x([3, 4]), i64([5], [0, 11, 5, 5, 2])], (a, i) => ops.take(a, i), 'torch.take');
add('unfold', [x([2, 5])], (a) => ops.unfold(a, 1, 2, 1), 'lambda a: a.unfold(1, 2, 1)');
add('squeeze + unsqueeze', [x([3, 1, 4])], (a) => a.squeeze(1).unsqueeze(0), 'lambda a: a.squeeze(1).unsqueeze(0)');

// layers' ops
add('dropout p=0 training', [x(S)], (a) => ops.dropout(a, 0, true), 'lambda a: F.dropout(a, 0.0, True)');
add('embedding with repeats', [x([6, 3]), i64([2, 3], [0, 2, 2, 5, 1, 0])], (w, i) => ops.embedding(w, i),
  'lambda w, i: F.embedding(i, w)');
// padding_idx defines the padding row's gradient as zero (it is not the derivative), so PyTorch is the only reference
add('embedding padding_idx 0 [vs PyTorch only]', [x([6, 3]), i64([2, 3], [0, 2, 2, 5, 1, 0])], (w, i) => ops.embedding(w, i, 0),
  'lambda w, i: F.embedding(i, w, padding_idx=0)', { fd: null });
add('prelu', [x([2, 3, 4], away(0.1, 2)), x([3])], (a, w) => ops.prelu(a, w), 'F.prelu');
add('glu', [x([3, 4])], (a) => ops.glu(a, 1), 'lambda a: F.glu(a, 1)');
add('pad constant 0.5', [x([2, 3, 4])], (a) => ops.pad(a, [1, 2, 0, 1], 'constant', 0.5), "lambda a: F.pad(a, (1, 2, 0, 1), 'constant', 0.5)");
add('pad reflect', [x([1, 2, 4, 5])], (a) => ops.pad(a, [2, 1, 1, 2], 'reflect'), "lambda a: F.pad(a, (2, 1, 1, 2), mode='reflect')");
add('pad replicate', [x([1, 2, 3, 4])], (a) => ops.pad(a, [1, 2, 2, 0], 'replicate'), "lambda a: F.pad(a, (1, 2, 2, 0), mode='replicate')");
add('pad circular', [x([1, 2, 3, 4])], (a) => ops.pad(a, [1, 2, 2, 1], 'circular'), "lambda a: F.pad(a, (1, 2, 2, 1), mode='circular')");
add('upsample nearest 3x4 -> 6x7', [x([1, 2, 3, 4])], (a) => ops.upsampleNearest2d.vec(a, [6, 7], null),
  "lambda a: F.interpolate(a, size=(6, 7), mode='nearest')");
add('upsample bilinear 3x4 -> 5x7', [x([1, 2, 3, 4])], (a) => ops.upsampleBilinear2d.vec(a, [5, 7], false, null),
  "lambda a: F.interpolate(a, size=(5, 7), mode='bilinear', align_corners=False)");
add('upsample bilinear align_corners 3x4 -> 5x6', [x([1, 2, 3, 4])], (a) => ops.upsampleBilinear2d.vec(a, [5, 6], true, null),
  "lambda a: F.interpolate(a, size=(5, 6), mode='bilinear', align_corners=True)");
add('pixelShuffle 2', [x([1, 8, 2, 3])], (a) => ops.pixelShuffle(a, 2), 'lambda a: F.pixel_shuffle(a, 2)');

// float32: against PyTorch only (finite differences need float64)
const f32opts: Partial<Case> = { fd: null, torch: TORCH32 };
add('[float32] matmul', [f32([2, 3, 8]), f32([8, 5])], (a, b) => a.matmul(b), 'torch.matmul', f32opts);
add('[float32] conv2d padding 1 bias', [f32([2, 3, 6, 6]), f32([4, 3, 3, 3]), f32([4])], (a, w, b) => ops.conv2d(a, w, b, { padding: 1 }),
  'lambda a, w, b: F.conv2d(a, w, b, padding=1)', f32opts);
add('[float32] softmax', [f32([3, 5], N(2))], (a) => a.softmax(1), 'lambda a: torch.softmax(a, 1)', f32opts);
add('[float32] tanh', [f32([3, 5])], (a) => a.tanh(), 'torch.tanh', f32opts);
add('[float32] layerNorm', [f32([2, 3, 4], N(2)), f32([4]), f32([4])], (a, w, b) => ops.layerNorm(a, [4], w, b, 1e-5),
  'lambda a, w, b: F.layer_norm(a, (4,), w, b, 1e-5)', f32opts);
add('[float32] batchNorm training', [f32([4, 3, 2, 2], N(2)), f32([3]), f32([3])], (a, w, b) => ops.batchNorm(a, w, b, null, null, true, 0.1, 1e-5, false),
  'lambda a, w, b: F.batch_norm(a, None, None, w, b, training=True)', f32opts);
add('[float32] crossEntropyLoss label_smoothing', [f32([5, 4], N(2)), i64([5], [1, 0, 3, 3, 2])], (a, t) => ops.crossEntropyLoss(a, t, null, 1, -100, 0.1),
  'lambda a, t: F.cross_entropy(a, t, label_smoothing=0.1)', f32opts);

// second order: the gradient of the gradient (createGraph)
add('[2nd order] tanh·sigmoid product', [x(S), x(S)], (a, b) => a.tanh().mul(b.sigmoid()), 'lambda a, b: torch.tanh(a) * torch.sigmoid(b)', { order2: true });
add('[2nd order] crossEntropyLoss label_smoothing', [x([4, 3], N(2)), i64([4], [2, 0, 1, 2])], (a, t) => ops.crossEntropyLoss(a, t, null, 1, -100, 0.1),
  'lambda a, t: F.cross_entropy(a, t, label_smoothing=0.1)', { order2: true });
add('[2nd order] conv2d padding 1', [x([1, 2, 4, 4]), x([3, 2, 3, 3])], (a, w) => ops.conv2d(a, w, null, { padding: 1 }).pow(2),
  'lambda a, w: F.conv2d(a, w, None, padding=1) ** 2', { order2: true });

// ---- PyTorch, once for every case ------------------------------------------------
const PY = `
import torch.nn.functional as F
DT = {'float64': torch.float64, 'float32': torch.float32, 'int64': torch.int64, 'bool': torch.bool}
def mk(a):
    t = torch.tensor(a['data'], dtype=DT[a['dtype']])
    return t.requires_grad_(True) if a['grad'] else t
def weighted(ts, ws):
    total = None
    for t, w in zip(ts, ws):
        term = (t * torch.tensor(w, dtype=t.dtype)).sum()
        total = term if total is None else total + term
    return total
def grads_of(loss, xs, create_graph=False):
    gs = torch.autograd.grad(loss, xs, allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs)]
def run(c):
    try:
        args = [mk(a) for a in c['args']]
        outs = eval(c['py'])(*args)
        outs = [outs] if isinstance(outs, torch.Tensor) else list(outs)
        xs = [a for a in args if a.requires_grad]
        gs = grads_of(weighted(outs, c['weights']), xs, create_graph=c['order2'])
        r = {'shapes': [list(o.shape) for o in outs], 'out': [L(o) for o in outs], 'grads': [L(g) for g in gs]}
        if c['order2']:
            r['grads2'] = [L(g) for g in grads_of(weighted(gs, c['v']), xs)]
        return r
    except Exception as e:
        return {'error': type(e).__name__ + ': ' + str(e)}
out = [run(c) for c in inp]
`;

interface TorchResult {
  error?: string;
  shapes: number[][];
  out: Nested[];
  grads: Nested[];
  grads2?: Nested[];
}

// ---- Keel's side --------------------------------------------------------------------
interface Prepared {
  /** Output shapes, and one weight array per output. */
  shapes: number[][];
  weights: Float64Array[];
  /** Weights for the second-order check: one per input that requires grad. */
  v: Float64Array[];
  error?: unknown;
}

function diffArgs(cs: Case): Arg[] {
  return cs.args.filter((a) => a.grad);
}

/** The first-order gradients of L = Σ sum(out·W) as a function of the inputs, differentiable again. */
function gradientFn(cs: Case, weights: Float64Array[]): GradFn {
  return (...inputs) => {
    const outs = cs.keel(...inputs);
    const list = Array.isArray(outs) ? outs : [outs];
    let loss: Tensor | undefined;
    list.forEach((o, k) => {
      const term = ops.sum(ops.mul(o, keel.tensor(weights[k], { shape: o.shape, dtype: o.dtype })));
      loss = loss === undefined ? term : ops.add(loss, term);
    });
    const xs = inputs.filter((t) => t.requiresGrad);
    const gs = keel.autograd.grad(loss!, xs, { createGraph: true, allowUnused: true });
    return gs.map((g, j) => g ?? keel.zerosLike(xs[j]));
  };
}

function flatOf(t: Float64Array | Float32Array): number[] {
  return Array.from(t);
}

/** The largest |a - b| / (atol + rtol·|b|) (≤ 1 passes): how much headroom a tolerance leaves. */
function usedTolerance(actual: ArrayLike<number>, expected: Nested, tol: Tol): number {
  const b = flat(expected);
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(actual[i] - b[i]) / (tol.atol + tol.rtol * Math.abs(b[i])));
  return worst;
}
const headroom = { fd: [] as [number, string][], torch64: [] as [number, string][], torch32: [] as [number, string][] };

describe('gradients', () => {
  const prepared: Prepared[] = [];
  let torchResults: TorchResult[] | undefined;
  const haveTorch = torchAvailable();

  let liveBefore = 0;
  before(() => {
    liveBefore = keel.memory().tensors;
    assert.ok(cases.length >= 60, `only ${cases.length} cases`);
    cases.forEach((cs, idx) => {
      const wr = new Rng(1000 + idx);
      try {
        const shapes = keel.scope(() => {
          const outs = cs.keel(...cs.args.map(toKeel));
          return (Array.isArray(outs) ? outs : [outs]).map((o) => o.shape);
        });
        prepared.push({ shapes, weights: shapes.map((s) => randomWeights(s, wr)), v: diffArgs(cs).map((a) => randomWeights(a.shape, wr)) });
      } catch (error) {
        prepared.push({ shapes: [], weights: [], v: [], error });
      }
    });
    if (!haveTorch) return;
    const payload = cases.map((cs, idx) => ({
      py: cs.py,
      args: cs.args.map((a) => ({ data: nest(a.flat, a.shape), dtype: a.dtype, grad: a.grad })),
      weights: prepared[idx].weights.map((w, k) => nest(w, prepared[idx].shapes[k])),
      v: prepared[idx].v.map((w, j) => nest(w, diffArgs(cs)[j].shape)),
      order2: cs.order2 === true,
    }));
    torchResults = runTorch<TorchResult[]>(PY, payload);
  });

  cases.forEach((cs, idx) => {
    test(cs.name, () => {
      const p = prepared[idx];
      if (p.error !== undefined) throw p.error;
      keel.scope(() => {
        const inputs = cs.args.map(toKeel);
        const what = cs.name;

        // (a) finite differences in float64
        let analytic: Float64Array[];
        let outputs: { shape: number[]; values: number[] }[];
        if (cs.fd !== null) {
          const fd = cs.fd ?? FD;
          const r = gradcheck(cs.keel, inputs, { weights: p.weights, ...fd, what: `${what} (finite differences)` });
          r.analytic.forEach((g, j) => headroom.fd.push([usedTolerance(g, Array.from(r.numeric[j]), fd), what]));
          analytic = r.analytic;
          outputs = r.outputs;
        } else {
          const r = keel.scope(() => {
            const outs = cs.keel(...inputs);
            const list = Array.isArray(outs) ? outs : [outs];
            const xs = inputs.filter((t) => t.requiresGrad);
            let loss: Tensor | undefined;
            list.forEach((o, k) => {
              const term = ops.sum(ops.mul(o, keel.tensor(p.weights[k], { shape: o.shape, dtype: o.dtype })));
              loss = loss === undefined ? term : ops.add(loss, term);
            });
            const gs = keel.autograd.grad(loss!, xs, { allowUnused: true });
            return {
              outputs: list.map((o) => ({ shape: o.shape, values: flatOf(o.data() as Float32Array) })),
              analytic: gs.map((g, j) => (g === null ? new Float64Array(xs[j].numel()) : Float64Array.from(g.data() as Float32Array))),
            };
          });
          analytic = r.analytic;
          outputs = r.outputs;
        }
        let grads2: Float64Array[] | undefined;
        if (cs.order2) {
          const r2 = gradcheck(gradientFn(cs, p.weights), inputs, { weights: p.v, ...(cs.fd ?? FD), what: `${what} (second order, finite differences)` });
          grads2 = r2.analytic;
          r2.outputs.forEach((o, j) => assertClose(o.values, flatOf(analytic[j]), { rtol: 0, atol: 0, what: `${what}: gradient with createGraph vs without` }));
        }

        // (b) PyTorch: forward values, gradients, and (order2) gradients of gradients
        if (!haveTorch) return;
        const t = torchResults![idx];
        assert.equal(t.error, undefined, `${what}: PyTorch failed: ${t.error}`);
        const tol = cs.torch ?? TORCH64;
        assert.equal(outputs.length, t.out.length, `${what}: ${outputs.length} outputs, PyTorch ${t.out.length}`);
        outputs.forEach((o, k) => {
          assert.deepEqual(o.shape, t.shapes[k], `${what}: output ${k} shape`);
          assertClose(o.values, t.out[k], { ...tol, what: `${what}: output ${k} vs PyTorch` });
        });
        assert.equal(analytic.length, t.grads.length);
        analytic.forEach((g, j) => assertClose(flatOf(g), t.grads[j], { ...tol, what: `${what}: gradient of input ${j} vs PyTorch` }));
        const bucket = cs.torch === TORCH32 ? headroom.torch32 : headroom.torch64;
        outputs.forEach((o, k) => bucket.push([usedTolerance(o.values, t.out[k], tol), what]));
        analytic.forEach((g, j) => bucket.push([usedTolerance(g, t.grads[j], tol), what]));
        if (grads2) {
          grads2.forEach((g, j) => assertClose(flatOf(g), t.grads2![j], { ...tol, what: `${what}: second-order gradient of input ${j} vs PyTorch` }));
        }
      });
    });
  });

  test('tolerance headroom (diagnostic: the largest |error| / tolerance seen, ≤ 1 passes)', (t) => {
    for (const [name, list] of Object.entries(headroom)) {
      if (list.length === 0) continue;
      const [worst, where] = list.reduce((m, e) => (e[0] > m[0] ? e : m));
      t.diagnostic(`${name}: ${list.length} comparisons, worst ${worst.toExponential(2)} of the tolerance (${where})`);
    }
    assert.ok(headroom.fd.length > 0);
  });

  test('every tensor the checks made was freed', () => {
    assert.equal(keel.memory().tensors, liveBefore);
  });

  test('PyTorch reference is available at /usr/bin/python3', { skip: haveTorch ? false : 'no torch at /usr/bin/python3: PyTorch comparisons not run' }, () => {
    assert.ok(torchResults !== undefined && torchResults.length === cases.length);
  });
});

// ---- a custom autograd.Function, hooks, and the checker itself ------------------------
type Ctx = keel.autograd.FunctionContext;

/** (a, b, k) → [k·a·b, sin a]: two tensor inputs, a number argument, two outputs. */
class ScaledMulSin extends keel.autograd.Function {
  static override forward(ctx: Ctx, a: Tensor, b: Tensor, k: number): Tensor[] {
    ctx.saveForBackward(a, b);
    ctx.data.k = k;
    return [a.mul(b).mul(k), a.sin()];
  }
  static override backward(ctx: Ctx, g1: Tensor, g2: Tensor): (Tensor | null)[] {
    const [a, b] = ctx.savedTensors;
    const k = ctx.data.k as number;
    return [g1.mul(b).mul(k).add(g2.mul(a.cos())), g1.mul(a).mul(k), null];
  }
}

/** Same forward, with the cos term of the backward deliberately left out. */
class WrongMulSin extends keel.autograd.Function {
  static override forward(ctx: Ctx, a: Tensor, b: Tensor, k: number): Tensor[] {
    return ScaledMulSin.forward(ctx, a, b, k);
  }
  static override backward(ctx: Ctx, g1: Tensor, _g2: Tensor): (Tensor | null)[] {
    const [a, b] = ctx.savedTensors;
    const k = ctx.data.k as number;
    return [g1.mul(b).mul(k), g1.mul(a).mul(k), null];
  }
}

const f64 = (shape: number[], gen: Gen = N(), requiresGrad = true): Tensor =>
  keel.tensor(nest(gen(numel(shape)), shape) as keel.NestedArray<number>, { dtype: 'float64', requiresGrad });

describe('custom autograd.Function and hooks', () => {
  test('a custom Function (TS forward and backward, two outputs) matches finite differences and the built-in ops', () => {
    keel.scope(() => {
      const a = f64([3, 4]);
      const b = f64([3, 4]);
      const r = gradcheck((p, q) => ScaledMulSin.apply<Tensor[]>(p, q, 1.5), [a, b], { ...FD, what: 'ScaledMulSin' });
      const builtin = gradcheck((p, q) => [p.mul(q).mul(1.5), p.sin()], [a, b], { ...FD, weights: r.weights, what: 'built-in mul/sin' });
      r.outputs.forEach((o, k) => assertClose(o.values, builtin.outputs[k].values, { rtol: 0, atol: 0, what: `output ${k}` }));
      r.analytic.forEach((g, j) => assertClose(flatOf(g), flatOf(builtin.analytic[j]), { ...TORCH64, what: `gradient ${j} vs built-in` }));
    });
  });

  test('the checker fails on a wrong backward (the cos term left out)', () => {
    keel.scope(() => {
      const a = f64([3, 4]);
      const b = f64([3, 4]);
      assert.throws(() => gradcheck((p, q) => WrongMulSin.apply<Tensor[]>(p, q, 1.5), [a, b], { ...FD }), /d\/d input0\[0\]: autograd .* vs finite differences/);
    });
  });

  test('the checker fails on a gradient off by 1e-5 relative', () => {
    keel.scope(() => {
      const a = f64([5], U(0.5, 2));
      // forward a², backward 2a·(1 + 1e-5): a bug far below what eyeballing would see
      class SlightlyOff extends keel.autograd.Function {
        static override forward(ctx: Ctx, p: Tensor): Tensor {
          ctx.saveForBackward(p);
          return p.square();
        }
        static override backward(ctx: Ctx, g: Tensor): Tensor {
          return g.mul(ctx.savedTensors[0]).mul(2 * (1 + 1e-5));
        }
      }
      assert.throws(() => gradcheck((p) => SlightlyOff.apply<Tensor>(p), [a], { ...FD }), /finite differences/);
    });
  });

  test('registerHook on a leaf replaces its gradient (×2); remove() undoes it', () => {
    keel.scope(() => {
      const a = f64([6]);
      const w = randomWeights([6], new Rng(7));
      const fn = (p: Tensor): Tensor => p.sin();
      const plain = gradcheck(fn, [a], { ...FD, weights: [w] });
      const loss = (): Tensor => ops.sum(ops.mul(fn(a), keel.tensor(w, { dtype: 'float64' })));
      const handle = a.registerHook((g) => g.mul(2));
      loss().backward();
      assertClose(flatOf(a.grad!.data() as Float64Array), Array.from(plain.numeric[0], (v) => 2 * v), { ...FD, what: 'hooked gradient vs 2 × finite differences' });
      const closed = a.data() as Float64Array;
      assertClose(flatOf(a.grad!.data() as Float64Array), Array.from(closed, (v, i) => 2 * Math.cos(v) * w[i]), { ...TORCH64, what: 'hooked gradient vs 2·cos(a)·w' });
      handle.remove();
      a.grad = null;
      loss().backward();
      assertClose(flatOf(a.grad!.data() as Float64Array), Array.from(closed, (v, i) => Math.cos(v) * w[i]), { ...TORCH64, what: 'gradient after remove()' });
    });
  });

  test('registerHook on an intermediate tensor scales only the gradient that flows through it; an observing hook changes nothing', () => {
    keel.scope(() => {
      const a = f64([5]);
      const h = a.exp();
      const seen: number[][] = [];
      h.registerHook((g) => g.mul(3));
      a.registerHook((g) => {
        seen.push(flatOf(g.data() as Float64Array));
      });
      // L = Σ h² + Σ a: through h the gradient is 3·2h·exp(a) = 6·exp(2a); the Σ a term adds 1, unhooked
      ops.add(h.mul(h).sum(), a.sum()).backward();
      const av = Array.from(a.data() as Float64Array);
      const expected = av.map((v) => 6 * Math.exp(2 * v) + 1);
      assertClose(flatOf(a.grad!.data() as Float64Array), expected, { rtol: 1e-14, atol: 0, what: 'gradient through a hooked exp' });
      assert.equal(seen.length, 1, 'the observing hook ran once');
      assertClose(seen[0], expected, { rtol: 1e-14, atol: 0, what: 'what the observing hook saw' });
    });
  });
});
