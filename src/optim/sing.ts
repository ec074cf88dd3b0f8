// SING (StabIlized and Normalized Gradient): "a layer-wise standardization of
// the gradients fed to Adam(W)", here with the rest of the authors' recipe:
// a softplus-calibrated Adam denominator, decoupled weight decay, Lookahead.
//
//   Adrien Courtois, Damien Scieur, Jean-Michel Morel, Pablo Arias, Thomas
//   Eboli. "SING: A Plug-and-play DNN Learning Technique." arXiv:2305.15997
//   (2023). Official code: https://github.com/AdrienCourtois/SING (sing.py).
//
// The paper states the method; the authors' code fixes what it leaves open,
// and this file follows the code:
//   - per parameter tensor, the gradient is centred per output channel (the
//     mean over all dims but the first, for tensors of ≥ 2 dims only), then
//     divided by its L2 norm + eps — in place, so p.grad holds the
//     standardised gradient after step(), as there;
//   - Adam moments with bias correction, then denom = softplus_β(√v / √(1 − β2ᵗ))
//     with β = 50 (threshold 20, as F.softplus; SAdam, Tong et al. 2019) in
//     place of √v̂ + eps (eps is then used by the normalisation only);
//   - decoupled weight decay p ← p·(1 − lr·weightDecay), skipped for tensors
//     of < 2 dims (biases, norm scales), applied after the moment update and
//     before the Adam step;
//   - Lookahead (Zhang et al. 2019) per group: every k steps,
//     p ← α·p + (1 − α)·slow, slow ← p; slow starts at p's value before its
//     first update.
// Defaults are the code's: lr 5e-3, betas [0.9, 0.999], weightDecay 0,
// eps 1e-8, softplus β 50, Lookahead k 5, α 0.5. The authors advise a learning
// rate ~10× AdamW's and a weight decay ~10× lower, with warm-up + cosine.
// One difference in rounding: the code keeps `step` in a float32 tensor, so
// its bias corrections 1 − βᵗ are computed in float32, where 1 − 0.999ᵗ
// loses ~5 digits to cancellation early on; here they are float64. Against
// the authors' code run on the same gradients (30 steps, 1-D/2-D/4-D, lr 5e-2)
// updates differ by ~7e-6 relative on the first step, shrinking after, in
// float32 and float64 alike (absolute ≤ 2e-6 on the parameters).
import { Tensor } from '../core/tensor.js';
import { zerosLike } from '../core/creation.js';
import * as ops from '../ops/index.js';
import { checkRange, knownOptions, Optimizer, type GroupOf, type ParamsArg, type ParamState } from './optimizer.js';
import { lookaheadMergeInPlace, singStepInPlace, softplusInPlace, standardizeInPlace } from './multi-tensor.js';

export interface SINGHyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  softplus: boolean;
  softplusBeta: number;
  gradCentralization: boolean;
  gradNormalization: boolean;
  lookahead: boolean;
  lookaheadK: number;
  lookaheadAlpha: number;
  /** Steps since the last Lookahead merge (state, kept with the group as in the authors' code). */
  lookaheadStep: number;
  /** The Adam part and Lookahead as multi-tensor (_foreach) calls over the group (default true; bitwise the same numbers). */
  foreach: boolean;
}

export type SINGGroup = GroupOf<SINGHyper>;

export interface SINGOptions {
  /** Default 5e-3. */
  lr?: number;
  /** Adam's moment decays. Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Decoupled, on tensors of ≥ 2 dims only. Default 0. */
  weightDecay?: number;
  /** Added to the gradient norm (and to √v̂ when softplus is off). Default 1e-8. */
  eps?: number;
  /** Use softplus_β(√v̂) as the denominator (else √v̂ + eps). Default true. */
  softplus?: boolean;
  /** Default 50. */
  softplusBeta?: number;
  /** Default true. */
  gradCentralization?: boolean;
  /** Default true. */
  gradNormalization?: boolean;
  /** Lookahead's period k and interpolation α (true: the defaults), or false for none. Default { k: 5, alpha: 0.5 }. */
  lookahead?: { k?: number; alpha?: number } | boolean;
  /** Multi-tensor (_foreach) updates (default true; the same numbers bitwise). */
  foreach?: boolean;
}

type SINGGroupSpec = SINGOptions & { params: Tensor[] | Tensor };

const SING_OPTIONS = ['lr', 'betas', 'weightDecay', 'eps', 'softplus', 'softplusBeta', 'gradCentralization', 'gradNormalization', 'lookahead', 'foreach'];

function toGroupFields(o: SINGOptions, base?: SINGHyper): Partial<SINGHyper> {
  knownOptions('SING', o, SING_OPTIONS);
  const out: Partial<SINGHyper> = {};
  if (o.lr !== undefined) out.lr = o.lr;
  if (o.betas !== undefined) out.betas = [o.betas[0], o.betas[1]];
  if (o.weightDecay !== undefined) out.weightDecay = o.weightDecay;
  if (o.eps !== undefined) out.eps = o.eps;
  if (o.softplus !== undefined) out.softplus = o.softplus;
  if (o.softplusBeta !== undefined) out.softplusBeta = o.softplusBeta;
  if (o.gradCentralization !== undefined) out.gradCentralization = o.gradCentralization;
  if (o.gradNormalization !== undefined) out.gradNormalization = o.gradNormalization;
  if (o.foreach !== undefined) out.foreach = o.foreach;
  if (o.lookahead !== undefined) {
    out.lookahead = o.lookahead !== false;
    if (o.lookahead !== false) {
      const la = o.lookahead === true ? {} : o.lookahead;
      out.lookaheadK = la.k ?? base?.lookaheadK ?? 5;
      out.lookaheadAlpha = la.alpha ?? base?.lookaheadAlpha ?? 0.5;
    }
  }
  return out;
}

/**
 * `new keel.optim.SING(model.parameters(), { lr: 5e-3, weightDecay: 5e-3 })`,
 * or with groups: `[{ params, lr, lookahead: false }, ...]`.
 */
export class SING extends Optimizer<SINGHyper> {
  constructor(params: Tensor[] | Tensor | SINGGroupSpec[], options: SINGOptions = {}) {
    const defaults: SINGHyper = {
      lr: 5e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, softplus: true, softplusBeta: 50,
      gradCentralization: true, gradNormalization: true, lookahead: true, lookaheadK: 5, lookaheadAlpha: 0.5, lookaheadStep: 0,
      foreach: true,
    };
    Object.assign(defaults, toGroupFields(options));
    const groups = Array.isArray(params) && params.length > 0 && !(params[0] instanceof Tensor)
      ? (params as SINGGroupSpec[]).map((g) => {
          if (typeof g !== 'object' || g === null || !('params' in g)) throw new TypeError('SING: give either tensors or groups ({ params, ... }), not both');
          const { params: ps, ...rest } = g;
          return { ...toGroupFields(rest, defaults), params: ps };
        })
      : (params as Tensor[] | Tensor);
    super(groups as ParamsArg<SINGHyper>, defaults);
  }

  protected override validateGroup(g: SINGGroup): void {
    checkRange('SING', 'learning rate', g.lr, 0);
    checkRange('SING', 'epsilon value', g.eps, 0);
    if (!Array.isArray(g.betas) || g.betas.length !== 2) throw new TypeError('SING: betas must be [beta1, beta2]');
    checkRange('SING', 'beta parameter at index 0', g.betas[0], 0, 1, true);
    checkRange('SING', 'beta parameter at index 1', g.betas[1], 0, 1, true);
    checkRange('SING', 'weight decay', g.weightDecay, 0);
    checkRange('SING', 'softplus beta', g.softplusBeta, Number.MIN_VALUE);
    if (g.lookahead) {
      if (!Number.isInteger(g.lookaheadK) || g.lookaheadK < 1) throw new RangeError(`SING: lookahead k must be a positive integer, got ${g.lookaheadK}`);
      checkRange('SING', 'lookahead alpha', g.lookaheadAlpha, 0, 1);
    }
  }

  protected override update(): void {
    super.update();
    // Lookahead, after every group's Adam step (as in the authors' code)
    for (const g of this.paramGroups) {
      if (!g.lookahead) continue;
      g.lookaheadStep += 1;
      if (g.lookaheadStep < g.lookaheadK) continue;
      g.lookaheadStep = 0;
      const alpha = g.lookaheadAlpha;
      const fast: Tensor[] = [];
      const slows: Tensor[] = [];
      for (const p of g.params) {
        const grad = p.grad;
        if (grad === undefined) continue;
        const slow = this.state.get(p)?.tensors.lookahead_params;
        if (slow === undefined) continue;
        fast.push(p);
        slows.push(slow);
      }
      if (fast.length === 0) continue;
      if (g.foreach) {
        if (lookaheadMergeInPlace(fast, slows, alpha)) continue;
        ops._foreachMul_.Scalar(fast, alpha);
        ops._foreachAdd_.List(fast, slows, { alpha: 1 - alpha });
        slows.forEach((slow, i) => slow.copy_(fast[i])); // (no _foreach copy in 1.13; zero + add would lose −0)
      } else {
        fast.forEach((p, i) => {
          p.mul_(alpha).add_(slows[i], 1 - alpha);
          slows[i].copy_(p);
        });
      }
    }
  }

  /** The parameter's state, made on its first step. */
  private prepare(g: SINGGroup, p: Tensor): ParamState {
    const s = this.stateOf(p, (st) => {
      st.scalars.step = 0;
      st.tensors.exp_avg = zerosLike(p);
      st.tensors.exp_avg_sq = zerosLike(p);
      if (g.lookahead) st.tensors.lookahead_params = p.clone();
    });
    if (g.lookahead && s.tensors.lookahead_params === undefined) s.tensors.lookahead_params = p.clone().keep();
    return s;
  }

  protected updateGroup(g: SINGGroup, params: [Tensor, Tensor][]): void {
    if (g.foreach && params.length > 0) {
      this.updateGroupForeach(g, params);
      return;
    }
    const { lr, eps, weightDecay } = g;
    const [beta1, beta2] = g.betas;
    for (const [p, grad] of params) {
      const s = this.prepare(g, p);
      standardizeInPlace([grad], g.gradCentralization, g.gradNormalization, eps);
      const step = ++s.scalars.step;
      const { exp_avg: expAvg, exp_avg_sq: expAvgSq } = s.tensors;
      expAvg.mul_(beta1).add_(grad, 1 - beta1);
      ops.addcmul_(expAvgSq.mul_(beta2), grad, grad, { value: 1 - beta2 });
      const biasCorrection1 = 1 - beta1 ** step;
      const biasCorrection2 = 1 - beta2 ** step;
      if (weightDecay !== 0 && p.ndim > 1) p.mul_(1 - lr * weightDecay);
      let denom = expAvgSq.sqrt().div(Math.sqrt(biasCorrection2));
      denom = g.softplus ? denom.softplus(g.softplusBeta, 20) : denom.add_(eps);
      ops.addcdiv_(p, expAvg, denom, { value: -lr / biasCorrection1 });
    }
  }

  /**
   * The same update over the group: in one native call (standardisation, then one pass per tensor over its
   * elements), or stage by stage when an interceptor must see each op (standardisation and softplus, which
   * have no _foreach form, in one native pass each).
   */
  private updateGroupForeach(g: SINGGroup, params: [Tensor, Tensor][]): void {
    const { lr, eps, weightDecay } = g;
    const [beta1, beta2] = g.betas;
    const ps: Tensor[] = [];
    const grads: Tensor[] = [];
    const expAvgs: Tensor[] = [];
    const expAvgSqs: Tensor[] = [];
    const steps: number[] = [];
    for (const [p, grad] of params) {
      const s = this.prepare(g, p);
      ps.push(p);
      grads.push(grad);
      expAvgs.push(s.tensors.exp_avg);
      expAvgSqs.push(s.tensors.exp_avg_sq);
      steps.push(++s.scalars.step);
    }
    const bc2Sqrts = steps.map((t) => Math.sqrt(1 - beta2 ** t));
    const stepSizes = steps.map((t) => -lr / (1 - beta1 ** t));
    if (singStepInPlace(ps, grads, expAvgs, expAvgSqs, bc2Sqrts, stepSizes, {
      beta1, beta2, lr, weightDecay, eps, softplus: g.softplus, softplusBeta: g.softplusBeta, threshold: 20,
      centralize: g.gradCentralization, normalize: g.gradNormalization,
    })) return;
    standardizeInPlace(grads, g.gradCentralization, g.gradNormalization, eps);
    ops._foreachMul_.Scalar(expAvgs, beta1);
    ops._foreachAdd_.List(expAvgs, grads, { alpha: 1 - beta1 });
    ops._foreachMul_.Scalar(expAvgSqs, beta2);
    ops._foreachAddcmul_.Scalar(expAvgSqs, grads, grads, 1 - beta2);
    if (weightDecay !== 0) {
      const decayed = ps.filter((p) => p.ndim > 1);
      if (decayed.length > 0) ops._foreachMul_.Scalar(decayed, 1 - lr * weightDecay);
    }
    const denoms = ops._foreachSqrt(expAvgSqs);
    ops._foreachDiv_.ScalarList(denoms, bc2Sqrts);
    if (g.softplus) softplusInPlace(denoms, g.softplusBeta, 20);
    else ops._foreachAdd_.Scalar(denoms, eps);
    ops._foreachAddcdiv_.ScalarList(ps, expAvgs, denoms, stepSizes);
  }
}
