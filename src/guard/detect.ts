// Detect cheaply: one fused reduction over the loss and every gradient (one
// host read), the updated parameters only when that read is not finite or
// the step looked risky, and the early warnings —
// gradient-norm blow-up against its running statistics, sigmoid outputs
// within one ulp of 0 or 1, values beyond the active precision's range.
import { noGrad } from '../core/autograd.js';
import { zeros } from '../core/creation.js';
import { intercept, unintercepted, type OpCall } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import { native } from '../native/binding.js';
import { Tensor } from '../core/tensor.js';
import { currentModulePath } from '../nn/module.js';
import * as ops from '../ops/index.js';
import { currentPrecision } from '../precision/policy.js';

export interface GradCheck {
  /** Loss and every gradient finite. */
  finite: boolean;
  loss: number;
  /** Global L2 norm of the gradients (NaN when not finite). */
  gradNorm: number;
  /** Sigmoid outputs within one ulp of 0 or 1, counted during the forward. */
  saturated: number;
  /** Op outputs beyond the active precision's largest finite value. */
  beyondRange: number;
  /** Where the watched values were seen: 'aten::sigmoid @ head.act' (those with a non-zero count). */
  where: string[];
  /** Index of the first buffer (running statistics) that is not finite, or -1. */
  badBuffer: number;
}

/**
 * Loss and gradients in one read: the norms of the gradients, the loss, the
 * watch counts, the buffers' norms. A norm is non-finite when any entry is (or
 * when it overflows, which the guard also wants to know).
 */
export function checkGradients(loss: Tensor, grads: Tensor[], watched: Tensor[], watchedAt: string[] = [], buffers: Tensor[] = []): GradCheck {
  // [‖g₁‖, …, ‖gₙ‖, loss, watch counts..., ‖b₁‖, …] in one read
  return summarize(fusedRead(grads, [loss, ...watched], buffers), grads.length, watched.length, watchedAt, buffers.length);
}

/**
 * The same check on the gradients of these parameters (those without one add
 * nothing): the guard's per-step read. Natively the gradients are read where
 * they are, with no handle made for them.
 */
export function checkParamGradients(loss: Tensor, params: Tensor[], watched: Tensor[], watchedAt: string[] = [], buffers: Tensor[] = []): GradCheck {
  if (NATIVE && native.guardGradNorms !== undefined) {
    const v = native.guardGradNorms(ids(params), [loss.id, ...ids(watched)], buffers.length ? ids(buffers) : null);
    return summarize(v, params.length, watched.length, watchedAt, buffers.length);
  }
  const grads: Tensor[] = [];
  for (const p of params) {
    const g = p.grad;
    if (g !== undefined) grads.push(g);
  }
  return checkGradients(loss, grads, watched, watchedAt, buffers);
}

/** The check from one read [‖g₁‖, …, ‖gₙ‖, loss, watch counts..., ‖b₁‖, …]. */
function summarize(v: Float64Array, n: number, nWatched: number, watchedAt: string[], nBuffers: number): GradCheck {
  const nw = n + 1 + nWatched;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += v[i] * v[i];
  const gradNorm = Math.sqrt(sq);
  let saturated = 0;
  let beyondRange = 0;
  const where: string[] = [];
  for (let i = n + 1; i < nw; i++) {
    // watch counts are tagged by sign: +saturated, −beyond range
    if (v[i] >= 0) saturated += v[i];
    else beyondRange -= v[i];
    const at = watchedAt[i - n - 1];
    if (v[i] !== 0 && at !== undefined && !where.includes(at)) where.push(at);
  }
  const loss = v[n];
  let badBuffer = -1;
  for (let i = 0; i < nBuffers && badBuffer < 0; i++) if (!Number.isFinite(v[nw + i])) badBuffer = i;
  return { finite: Number.isFinite(gradNorm) && Number.isFinite(loss), loss, gradNorm, saturated, beyondRange, where, badBuffer };
}

function ids(ts: Tensor[]): number[] {
  const out = new Array<number>(ts.length);
  for (let i = 0; i < ts.length; i++) out[i] = ts[i].id;
  return out;
}

/** The fallback to dispatched ops is forced by KEEL_GUARD_NATIVE=0 (the tests compare both paths). */
const NATIVE = typeof native.guardNorms === 'function' && process.env.KEEL_GUARD_NATIVE !== '0';

/**
 * One read of [‖t‖₂ for t in norms..., each scalar..., ‖b‖₂ for b in bufferNorms...],
 * each as float32 (a float64 norm or loss beyond float32's range, or a squared
 * norm beyond it, reads as inf, which the guard wants to know). Natively: one
 * call (on CPU a sum of squares per tensor in the addon, else a dot per
 * tensor, stack, read); else the same ops dispatched from here.
 */
export function fusedRead(norms: Tensor[], scalars: Tensor[], bufferNorms: Tensor[] = []): Float64Array {
  if (NATIVE) {
    return native.guardNorms!(ids(norms), scalars.length ? ids(scalars) : null, bufferNorms.length ? ids(bufferNorms) : null);
  }
  return unintercepted(() => noGrad(() => scope(() => {
    // as native/guard.cc: float32/float64 tensors by the dot of the flattened tensor with itself (a squared norm), others by their norm
    const parts: Tensor[] = [];
    const squared: boolean[] = [];
    const f32 = (t: Tensor): Tensor => (t.dtype === 'float32' ? t : t.to('float32'));
    const pushNorms = (ts: Tensor[]): void => {
      for (const t of ts) {
        const dt = t.dtype;
        if (dt === 'float32' || dt === 'float64') {
          const flat = t.reshape([-1]);
          parts.push(f32(t.numel() === 0 ? zeros([], { dtype: dt }) : ops.dot(flat, flat)));
          squared.push(t.numel() !== 0);
        } else {
          parts.push(f32(ops.linalgVectorNorm(t)));
          squared.push(false);
        }
      }
    };
    pushNorms(norms);
    for (const s of scalars) {
      const d = s.detach();
      parts.push(d.dtype === 'float32' && d.ndim === 0 ? d : d.to('float32').reshape([]));
      squared.push(false);
    }
    pushNorms(bufferNorms);
    if (parts.length === 0) return new Float64Array(0);
    const v = ops.stack(parts).data() as Float32Array;
    const out = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = squared[i] ? Math.fround(Math.sqrt(v[i])) : v[i];
    return out;
  })));
}

/** The parameters are all finite (one fused reduction, one read). */
export function checkParameters(params: Tensor[]): boolean {
  if (params.length === 0) return true;
  const v = fusedRead(params, []);
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
  return true;
}

/** Running mean and variance of the gradient norm (exponential moving averages). */
export class GradNormMonitor {
  mean = 0;
  variance = 0;
  count = 0;

  constructor(readonly decay = 0.95, readonly warmup = 10, readonly sigmas = 6, readonly factor = 10) {}

  /** Is this norm a blow-up against the statistics so far? Updates them with it unless it is. */
  observe(norm: number): boolean {
    if (!Number.isFinite(norm)) return false;
    const spike = this.count >= this.warmup && norm > this.mean + this.sigmas * Math.sqrt(this.variance) && norm > this.factor * this.mean;
    if (!spike) {
      if (this.count === 0) {
        this.mean = norm;
        this.variance = 0;
      } else {
        const d = norm - this.mean;
        this.mean += (1 - this.decay) * d;
        this.variance = this.decay * (this.variance + (1 - this.decay) * d * d);
      }
      this.count++;
    }
    return spike;
  }

  stateDict(): { mean: number; variance: number; count: number } {
    return { mean: this.mean, variance: this.variance, count: this.count };
  }
}

/** Running mean and variance of the loss (exponential moving averages): a spike is a z-score above a threshold. */
export class LossMonitor {
  mean = 0;
  variance = 0;
  count = 0;

  constructor(readonly decay = 0.95, readonly warmup = 10) {}

  /** Is this loss more than z standard deviations above the running mean? Updates the statistics with it unless it is. */
  observe(loss: number, z: number): boolean {
    if (!Number.isFinite(loss)) return false;
    const spike = this.count >= this.warmup && loss > this.mean + z * Math.sqrt(this.variance);
    if (!spike) {
      if (this.count === 0) {
        this.mean = loss;
        this.variance = 0;
      } else {
        const d = loss - this.mean;
        this.mean += (1 - this.decay) * d;
        this.variance = this.decay * (this.variance + (1 - this.decay) * d * d);
      }
      this.count++;
    }
    return spike;
  }
}

const SIGMOID = new Set(['aten::sigmoid', 'aten::sigmoid_']);

/**
 * During one forward: counts sigmoid outputs within one ulp of 0 or 1 and,
 * under a precision policy, values beyond the format's range (seen before the
 * policy rounds them to ±inf). The counts stay tensors until checkGradients
 * reads them with everything else.
 */
export class ForwardWatch {
  readonly counts: Tensor[] = [];
  /** For each count: 'op @ module'. */
  readonly at: string[] = [];
  private remove?: () => void;

  start(): void {
    // sigmoids only (the other ops keep their direct calls), unless a precision policy shows it every op
    this.remove = intercept({ ops: SIGMOID, after: this.onOp });
  }

  stop(): void {
    this.remove?.();
    this.remove = undefined;
  }

  dispose(): void {
    this.stop();
    for (const t of this.counts) t.dispose();
    this.counts.length = 0;
    this.at.length = 0;
  }

  private onOp = (call: OpCall, result: unknown): unknown => {
    const isSigmoid = SIGMOID.has(call.op);
    const f = currentPrecision();
    if (!isSigmoid && f === undefined) return result;
    if (!(result instanceof Tensor)) return result;
    const dt = result.dtype;
    if (dt !== 'float32' && dt !== 'float64') return result;
    noGrad(() => {
      const y = result.detach();
      if (isSigmoid) {
        // one ulp below 1 in the format (or float32), and below its smallest normal
        const m = f !== undefined ? f.mantissaBits : 23;
        const tiny = f !== undefined ? f.minNormal : 1.1754943508222875e-38;
        const hi = 1 - 2 ** -(m + 1);
        this.counts.push(ops.logicalOr(y.ge(hi), y.le(tiny)).sum().to('float32').keep());
        this.at.push(`${call.op} @ ${currentModulePath() || '(top level)'}`);
      }
      if (f !== undefined && f.name !== 'fp32' && f.name !== 'fp64') {
        this.counts.push(y.abs().gt(f.maxFinite).sum().neg().to('float32').keep());
        this.at.push(`${call.op} @ ${currentModulePath() || '(top level)'}`);
      }
    });
    return result;
  };
}
