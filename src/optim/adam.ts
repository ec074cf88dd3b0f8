// Adam (Kingma & Ba 2015) with AMSGrad, L2 weight decay and maximize, and
// AdamW (Loshchilov & Hutter 2019, decoupled weight decay): the updates of
// torch.optim.Adam / AdamW (PyTorch 1.13, single-tensor path), op for op.
import type { Tensor } from '../core/tensor.js';
import { zerosLike } from '../core/creation.js';
import { interceptionActive } from '../core/dispatch.js';
import { native } from '../native/binding.js';
import * as ops from '../ops/index.js';
import { ids } from './multi-tensor.js';
import { checkRange, knownOptions, Optimizer, type GroupOf, type ParamsArg, type ParamState } from './optimizer.js';
import { boundableDTypes, maxAbs, ownUpdate, widen, type StepBound } from './update-bound.js';

export interface AdamHyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
  /**
   * One multi-tensor (_foreach) call per update stage for all the group's
   * parameters (default true): the same numbers as the single-tensor path,
   * bitwise (the same element-wise ops in the same order), with a native
   * call per stage instead of per parameter. Where every tensor is CPU
   * float32 (without amsgrad or maximize, and with no interceptor that must
   * see each op), the stages run fused: one native pass per tensor, the same
   * numbers bitwise (native/adam.cc).
   */
  foreach: boolean;
}

export type AdamGroup = GroupOf<AdamHyper>;
export type AdamOptions = Partial<AdamHyper>;

function adamDefaults(o: AdamOptions, weightDecay: number): AdamHyper {
  knownOptions(weightDecay === 0 ? 'Adam' : 'AdamW', o, ['lr', 'betas', 'eps', 'weightDecay', 'amsgrad', 'maximize', 'foreach']);
  return {
    lr: o.lr ?? 1e-3,
    betas: o.betas ? [o.betas[0], o.betas[1]] : [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? weightDecay,
    amsgrad: o.amsgrad ?? false,
    maximize: o.maximize ?? false,
    foreach: o.foreach ?? true,
  };
}

/** Adam and AdamW differ only in where weight decay enters. */
abstract class AdamBase extends Optimizer<AdamHyper> {
  protected abstract readonly decoupled: boolean;

  protected override validateGroup(g: AdamGroup): void {
    const n = this.constructor.name;
    checkRange(n, 'learning rate', g.lr, 0);
    checkRange(n, 'epsilon value', g.eps, 0);
    if (!Array.isArray(g.betas) || g.betas.length !== 2) throw new TypeError(`${n}: betas must be [beta1, beta2]`);
    checkRange(n, 'beta parameter at index 0', g.betas[0], 0, 1, true);
    checkRange(n, 'beta parameter at index 1', g.betas[1], 0, 1, true);
    checkRange(n, 'weight_decay value', g.weightDecay, 0);
  }

  protected override readonly copiesInPass = true;

  /**
   * |Δp| = lr/(1 − β1ᵗ)·|m|/(√v̂ + eps) ≤ lr/(1 − β1)·m'/eps, m' the first
   * moment's bound β1·m₀ + (1 − β1)·(|g| + weightDecay·|p|) (|p| read for
   * Adam's L2 decay only). AdamW's p·(1 − lr·weightDecay) cannot grow p while
   * lr·weightDecay ≤ 1. Undefined with eps = 0 or a stronger decay.
   */
  protected override stepBound(gradMax: number): StepBound | undefined {
    if (!(gradMax >= 0 && gradMax < Infinity) || !ownUpdate(this, [Adam, AdamW]) || !boundableDTypes(this.paramGroups)) return undefined;
    const l2 = !this.decoupled && this.paramGroups.some((g) => g.weightDecay !== 0);
    const pMax = l2 ? maxAbs(this.paramGroups.flatMap((g) => g.params)) : 0;
    const m0 = this.stateBounds?.m ?? maxAbs([...this.state.values()].flatMap((s) => (s.tensors.exp_avg ? [s.tensors.exp_avg] : [])));
    let mAfter = m0;
    let step = 0;
    for (const g of this.paramGroups) {
      const [beta1] = g.betas;
      if (!(g.eps > 0) || (this.decoupled && !(g.lr * g.weightDecay <= 1))) return undefined;
      const d = widen(widen(gradMax) + (this.decoupled ? 0 : g.weightDecay * pMax));
      const m = widen(beta1 * m0 + (1 - beta1) * d);
      mAfter = Math.max(mAfter, m);
      step = Math.max(step, widen(((g.lr / (1 - beta1)) * m) / g.eps));
    }
    if (!(mAfter < Infinity && step < Infinity)) return undefined;
    return { step, state: { m: mAfter } };
  }

  protected updateGroup(g: AdamGroup, params: [Tensor, Tensor][]): void {
    if (params.length === 0) return;
    if (g.foreach) {
      this.updateGroupForeach(g, params);
      return;
    }
    this.settleCopy();
    const { lr, eps, weightDecay, amsgrad, maximize } = g;
    const [beta1, beta2] = g.betas;
    for (const [p, gradient] of params) {
      const s = this.stateOf(p, (st: ParamState) => {
        st.scalars.step = 0;
        st.tensors.exp_avg = zerosLike(p);
        st.tensors.exp_avg_sq = zerosLike(p);
        if (amsgrad) st.tensors.max_exp_avg_sq = zerosLike(p);
      });
      let grad = maximize ? gradient.neg() : gradient;
      const { exp_avg: expAvg, exp_avg_sq: expAvgSq } = s.tensors;
      const step = ++s.scalars.step;
      if (this.decoupled) p.mul_(1 - lr * weightDecay);
      else if (weightDecay !== 0) grad = grad.add(p, weightDecay);
      expAvg.mul_(beta1).add_(grad, 1 - beta1);
      ops.addcmul_(expAvgSq.mul_(beta2), grad, grad, { value: 1 - beta2 });
      const biasCorrection1 = 1 - beta1 ** step;
      const biasCorrection2 = 1 - beta2 ** step;
      const stepSize = lr / biasCorrection1;
      const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
      let denom: Tensor;
      if (amsgrad) {
        let maxSq = s.tensors.max_exp_avg_sq;
        // amsgrad switched on after state was made: start its maximum now
        if (maxSq === undefined) s.tensors.max_exp_avg_sq = maxSq = zerosLike(p).keep();
        ops.maximum.out(maxSq, expAvgSq, { out: maxSq });
        denom = maxSq.sqrt().div(biasCorrection2Sqrt).add_(eps);
      } else {
        denom = expAvgSq.sqrt().div(biasCorrection2Sqrt).add_(eps);
      }
      ops.addcdiv_(p, expAvg, denom, { value: -stepSize });
    }
  }

  /** torch.optim's _multi_tensor_adam, stage by stage over the whole group. */
  private updateGroupForeach(g: AdamGroup, params: [Tensor, Tensor][]): void {
    const { lr, eps, weightDecay, amsgrad, maximize } = g;
    const [beta1, beta2] = g.betas;
    const ps: Tensor[] = [];
    const expAvgs: Tensor[] = [];
    const expAvgSqs: Tensor[] = [];
    const maxSqs: Tensor[] = [];
    const steps: number[] = [];
    for (const [p] of params) {
      const s = this.stateOf(p, (st: ParamState) => {
        st.scalars.step = 0;
        st.tensors.exp_avg = zerosLike(p);
        st.tensors.exp_avg_sq = zerosLike(p);
        if (amsgrad) st.tensors.max_exp_avg_sq = zerosLike(p);
      });
      if (amsgrad && s.tensors.max_exp_avg_sq === undefined) s.tensors.max_exp_avg_sq = zerosLike(p).keep();
      ps.push(p);
      expAvgs.push(s.tensors.exp_avg);
      expAvgSqs.push(s.tensors.exp_avg_sq);
      if (amsgrad) maxSqs.push(s.tensors.max_exp_avg_sq);
      steps.push(++s.scalars.step);
    }
    let grads = params.map(([, gr]) => gr);
    const stepSizes = steps.map((t) => -(lr / (1 - beta1 ** t)));
    const bc2Sqrt = steps.map((t) => Math.sqrt(1 - beta2 ** t));
    if (!amsgrad && !maximize && native.adamStep !== undefined && !interceptionActive()) {
      // a pending pre-update copy (the guard's) is written by the same pass
      const copies = this.takeDeferredCopies([ps, expAvgs, expAvgSqs]);
      if (copies === 'partial') this.settleCopy();
      const withCopies = Array.isArray(copies) ? copies.map(ids) : [null, null, null];
      if (native.adamStep(ids(ps), ids(grads), ids(expAvgs), ids(expAvgSqs), stepSizes, bc2Sqrt, lr, beta1, beta2, eps, weightDecay, this.decoupled, ...withCopies)) {
        if (Array.isArray(copies)) this.deferredCopiesTaken([ps, expAvgs, expAvgSqs]);
        return;
      }
    }
    this.settleCopy();
    if (maximize) grads = ops._foreachNeg(grads);
    if (this.decoupled) ops._foreachMul_.Scalar(ps, 1 - lr * weightDecay);
    else if (weightDecay !== 0) grads = ops._foreachAdd.List(grads, ps, { alpha: weightDecay });
    ops._foreachMul_.Scalar(expAvgs, beta1);
    ops._foreachAdd_.List(expAvgs, grads, { alpha: 1 - beta1 });
    ops._foreachMul_.Scalar(expAvgSqs, beta2);
    ops._foreachAddcmul_.Scalar(expAvgSqs, grads, grads, 1 - beta2);
    let roots: Tensor[];
    if (amsgrad) {
      ops._foreachMaximum_.List(maxSqs, expAvgSqs);
      roots = ops._foreachSqrt(maxSqs);
    } else {
      roots = ops._foreachSqrt(expAvgSqs);
    }
    ops._foreachDiv_.ScalarList(roots, bc2Sqrt);
    ops._foreachAdd_.Scalar(roots, eps);
    ops._foreachAddcdiv_.ScalarList(ps, expAvgs, roots, stepSizes);
  }
}

/**
 *     g ← ∇ (−∇ if maximize) + weightDecay·p
 *     m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²  (v̂max ← max(v̂max, v) with amsgrad)
 *     p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
 * Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0.
 */
export class Adam extends AdamBase {
  protected readonly decoupled = false;
  constructor(params: ParamsArg<AdamHyper>, options: AdamOptions = {}) {
    super(params, adamDefaults(options, 0));
  }
}

/**
 * Adam with decoupled weight decay: p ← p·(1 − lr·weightDecay) before the
 * Adam step, the gradient untouched. Defaults as Adam but weightDecay 1e-2.
 */
export class AdamW extends AdamBase {
  protected readonly decoupled = true;
  constructor(params: ParamsArg<AdamHyper>, options: AdamOptions = {}) {
    super(params, adamDefaults(options, 1e-2));
  }
}
