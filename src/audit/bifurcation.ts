// The bifurcation test of both papers, on one (θ, minibatch): backprop twice
// with two backward choices for the same nonsmooth ops — ReLU'(0) = 0 vs 1
// (Bertoin et al. 2021), MaxPool native vs MaxPool-β (Boustany 2024) — and
// compare the gradients.
//
// Definitions used here:
//   bifurcation zone  the (θ, minibatch) at which the two gradients computed
//                     in floating point differ. Over the reals the set where a
//                     ReLU input is exactly 0 or a max is tied has measure
//                     zero; in floating point it does not, and it grows as
//                     precision falls.
//   exact test        Bertoin et al.: the gradients are not bitwise equal.
//   threshold test    Boustany: D = Σ over parameter tensors of
//                     ‖∇_native − ∇_β‖_∞ exceeds τ_p = c · u_p · Σ ‖∇_native‖_∞,
//                     a threshold scaled to the precision p's unit roundoff
//                     u_p = 2^-(mantissa bits + 1) and to the gradient's size
//                     (c = 8 by default), so that rounding noise alone — e.g.
//                     overlapping windows summed in another order — does not
//                     count as a bifurcation, while a tie that sends a share of
//                     the gradient elsewhere (a change of order 1 relative) does.
import { noGrad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import type { Module } from '../nn/module.js';
import { formatOf, type FormatName } from '../precision/formats.js';

/** Unit roundoff of a format: half the distance from 1 to the next value. */
export function unitRoundoff(format: FormatName): number {
  return formatOf(format).epsilon / 2;
}

/** τ_p = c · u_p · scale (scale: Σ ‖∇_native‖_∞). */
export function bifurcationThreshold(format: FormatName, scale: number, c = 8): number {
  return c * unitRoundoff(format) * scale;
}

/** The parameters' gradients, copied to float64, by parameter name (missing grads are zeros). */
export function collectGradients(model: Module): Map<string, Tensor> {
  return noGrad(() => {
    const out = new Map<string, Tensor>();
    for (const [name, p] of model.namedParameters()) {
      const g = p.grad;
      out.set(name, (g ? g.to('float64') : p.detach().to('float64').mul(0)).keep());
    }
    return out;
  });
}

export function disposeGradients(g: Map<string, Tensor>): void {
  for (const t of g.values()) t.dispose();
}

export interface GradientComparison {
  /** bitwise equal everywhere (NaNs count as different) */
  equal: boolean;
  /** D = Σ_l ‖a_l − b_l‖_∞ */
  sumInfNorm: number;
  /** Σ_l ‖a_l‖_∞ (the first gradient's size, for the threshold) */
  scale: number;
  /** per parameter tensor: ‖a_l − b_l‖_∞ and the number of differing entries */
  perTensor: { name: string; maxAbsDiff: number; differing: number; numel: number }[];
}

/** Compares two gradient sets with the same names. */
export function compareGradients(a: Map<string, Tensor>, b: Map<string, Tensor>): GradientComparison {
  return scope(() => {
    let equal = true;
    let sum = 0;
    let scale = 0;
    const perTensor: GradientComparison['perTensor'] = [];
    for (const [name, ga] of a) {
      const gb = b.get(name);
      if (gb === undefined) throw new Error(`compareGradients: '${name}' missing from the second set`);
      const diff = ga.sub(gb).abs();
      const ne = ga.ne(gb);
      const differing = Number(ne.sum().item());
      // NaN − NaN is NaN: count it as an infinite difference
      const d = diff.numel() === 0 ? 0 : Number(diff.amax().item());
      const m = ga.numel() === 0 ? 0 : Number(ga.abs().amax().item());
      const maxAbsDiff = Number.isNaN(d) ? Infinity : d;
      if (differing > 0) equal = false;
      sum += maxAbsDiff;
      scale += Number.isNaN(m) ? Infinity : m;
      perTensor.push({ name, maxAbsDiff, differing, numel: ga.numel() });
    }
    return { equal, sumInfNorm: sum, scale, perTensor };
  });
}
