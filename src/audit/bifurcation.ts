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
//   threshold tests   D = Σ over parameter tensors of ‖∇_native − ∇_β‖_∞ against
//                     · Boustany's absolute thresholds (his MaxPool-numerical
//                       code): 1e-3 for 16-bit, 1e-7 for 32-bit, 1e-15 for
//                       64-bit formats (none for the 8-bit ones, which he did
//                       not study), and
//                     · Keel's relative one (not Boustany's), τ_p = c · u_p ·
//                       Σ ‖∇_native‖_∞, scaled to the precision p's unit
//                       roundoff u_p = 2^-(mantissa bits + 1) and to the
//                       gradient's size (c = 8 by default), so that rounding
//                       noise alone does not count while a tie that sends a
//                       share of the gradient elsewhere does.
//                     Neither is the whole story: report the distribution of D
//                     (decadeHistogram), not only the share above a threshold.
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

/**
 * Boustany's absolute threshold on D for a format, by its width: 16-bit 1e-3,
 * 32-bit 1e-7, 64-bit 1e-15; undefined for formats he did not study (fp8).
 */
export function absoluteThreshold(format: FormatName): number | undefined {
  if (format === 'fp64') return 1e-15;
  if (format === 'fp32') return 1e-7;
  if (format === 'fp16' || format === 'bf16') return 1e-3;
  return undefined;
}

export interface DecadeBin {
  /** '0', '<1e-18', '[1e-9, 1e-8)', '≥1e0' */
  label: string;
  /** lower edge (0 for the zero bin, -Infinity below the range) */
  lo: number;
  count: number;
}

/**
 * Histogram of non-negative values by powers of ten from 10^loExp to 10^hiExp,
 * with a bin for exact zeros (as Boustany's histograms of D), one below the
 * range and one at or above 10^hiExp (Infinity and NaN count there).
 */
export function decadeHistogram(values: readonly number[], loExp: number, hiExp: number): DecadeBin[] {
  if (!(Number.isInteger(loExp) && Number.isInteger(hiExp) && loExp < hiExp)) throw new RangeError(`decadeHistogram: need integers loExp < hiExp, got ${loExp}, ${hiExp}`);
  const bins: DecadeBin[] = [{ label: '0', lo: 0, count: 0 }, { label: `<1e${loExp}`, lo: -Infinity, count: 0 }];
  for (let e = loExp; e < hiExp; e++) bins.push({ label: `[1e${e}, 1e${e + 1})`, lo: 10 ** e, count: 0 });
  bins.push({ label: `≥1e${hiExp}`, lo: 10 ** hiExp, count: 0 });
  for (const v of values) {
    if (v === 0) bins[0].count++;
    else if (!(v < 10 ** hiExp)) bins[bins.length - 1].count++;
    else if (v < 10 ** loExp) bins[1].count++;
    else {
      // log10 can land a hair off at exact powers of ten: settle the decade by comparison
      let e = Math.floor(Math.log10(v));
      if (v < 10 ** e) e--;
      else if (v >= 10 ** (e + 1)) e++;
      bins[2 + Math.min(hiExp - loExp - 1, Math.max(0, e - loExp))].count++;
    }
  }
  return bins;
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
