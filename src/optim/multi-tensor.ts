// Per-tensor optimizer passes that libtorch 1.13 has no _foreach op for,
// over a whole list at once: natively in one call (native/optim.cc, the same
// ATen ops in the same order, so the same numbers bitwise), or tensor by
// tensor from here when an interceptor must see each op (a precision policy,
// the guard's trace) or the addon predates the native entries.
import { noGrad } from '../core/autograd.js';
import { interceptionActive } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import { native } from '../native/binding.js';
import * as ops from '../ops/index.js';

const NATIVE = typeof native.standardizeGradients === 'function';

/** The tensors' handles, for the native passes' list arguments. */
export const ids = (ts: readonly Tensor[]): number[] => ts.map((t) => t.id);

/**
 * In place, per tensor: subtract each output channel's mean (dims 1..n-1) from
 * tensors of ≥ 2 dims (when `centralize`), then divide by the L2 norm + eps
 * (when `normalize`).
 */
export function standardizeInPlace(grads: readonly Tensor[], centralize: boolean, normalize: boolean, eps: number): void {
  if (grads.length === 0 || (!centralize && !normalize)) return;
  if (NATIVE && !interceptionActive()) {
    native.standardizeGradients!(ids(grads), centralize, normalize, eps);
    return;
  }
  for (const grad of grads) {
    scope(() =>
      noGrad(() => {
        const n = grad.ndim;
        if (centralize && n > 1) grad.sub_(grad.mean(Array.from({ length: n - 1 }, (_, i) => i + 1), true));
        if (normalize) grad.div_(ops.frobeniusNorm.dim(grad, [], false).add(eps));
      }),
    );
  }
}

export interface SINGStepHyper {
  beta1: number;
  beta2: number;
  lr: number;
  weightDecay: number;
  eps: number;
  softplus: boolean;
  softplusBeta: number;
  threshold: number;
  centralize: boolean;
  normalize: boolean;
}

/**
 * SING's step over a group in one native call (native/sing.cc): per tensor the
 * standardisation, then the Adam part in one pass over its elements, the same
 * numbers bitwise as the stage-by-stage _foreach path. False (nothing done)
 * when that path must run instead: an interceptor must see each op, or the
 * addon predates the entry.
 */
export function singStepInPlace(ps: readonly Tensor[], grads: readonly Tensor[], expAvgs: readonly Tensor[], expAvgSqs: readonly Tensor[],
  bc2Sqrts: number[], stepSizes: number[], h: SINGStepHyper): boolean {
  if (typeof native.singStep !== 'function' || interceptionActive()) return false;
  native.singStep(ids(ps), ids(grads), ids(expAvgs), ids(expAvgSqs), bc2Sqrts, stepSizes,
    [h.beta1, h.beta2, h.lr, h.weightDecay, h.eps, h.softplusBeta, h.threshold], h.softplus, h.centralize, h.normalize);
  return true;
}

/** Lookahead's merge over a group in one native call (false, nothing done: take the _foreach ops). */
export function lookaheadMergeInPlace(fast: readonly Tensor[], slow: readonly Tensor[], alpha: number): boolean {
  if (typeof native.lookaheadMerge !== 'function' || interceptionActive()) return false;
  native.lookaheadMerge(ids(fast), ids(slow), alpha);
  return true;
}

/** t ← softplus_β(t) in place for every tensor (libtorch's kernel writing into its input: no new buffer). */
export function softplusInPlace(ts: readonly Tensor[], beta: number, threshold: number): void {
  if (ts.length === 0) return;
  if (NATIVE && !interceptionActive()) {
    native.softplusInPlace!(ids(ts), beta, threshold);
    return;
  }
  noGrad(() => {
    for (const t of ts) ops.softplus.out(t, beta, threshold, { out: t });
  });
}

/**
 * dst[i] ← src[i] when every pair has the same shape and dtype (true), else
 * nothing copied (false): one native call that also compares the shapes
 * (else the shapes read here, then two fused ops: _foreach_zero_, _foreach_add_).
 */
export function copyAll(dst: readonly Tensor[], src: readonly Tensor[]): boolean {
  if (src.length === 0) return true;
  if (native.copyTensors !== undefined) return native.copyTensors(ids(dst), ids(src));
  if (!src.every((t, i) => sameShape(dst[i], t))) return false;
  noGrad(() => {
    ops._foreachZero_([...dst]);
    ops._foreachAdd_.List([...dst], [...src]);
  });
  return true;
}

/** The same shape and dtype. */
export function sameShape(a: Tensor, b: Tensor): boolean {
  const x = a.shape;
  const y = b.shape;
  return x.length === y.length && x.every((d, i) => d === y[i]) && a.dtype === b.dtype;
}
