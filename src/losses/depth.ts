// Monocular depth estimation: the scale-invariant log loss (SILog, Eigen et
// al. 2014) as the MDE codebases write it, its safe variants, and the
// standard metrics. Every quantity is over the valid pixels only (mask > 0),
// selected with masked_select as those codebases do (`pred[mask]`), so an
// empty mask gives the codebases' NaN unless the safe variant is asked for.
//
// With d = log gt − log pred over the N valid pixels:
//   glpdepth  L = √(mean d² − 0.5·mean(d)²)                 (GLPDepth, λ = 0.5)
//   bts       L = 10·√(mean d² − 0.85·mean(d)²)             (BTS, λ = 0.85)
//   adabins   L = 10·√(var(d) + 0.15·mean(d)²)              (AdaBins; torch.var,
//             unbiased N − 1 by default: NaN for N = 1)
// mean d² − λ·mean(d)² = var_biased(d) + (1 − λ)·mean(d)², so `correction`
// on glpdepth/bts swaps the biased variance inside for var_c(d) (c = 1:
// unbiased); left unset they use the literal formula.
//
// The safe variant (`safe: true`) changes only what can blow up, not the
// estimator: the log of the prediction is taken of pred.clamp(min: minDepth),
// the square root's argument is clamped at 0 and gets +eps (bounded
// gradient 1/(2√eps) at the optimum), and an empty mask gives a zero loss
// (with a graph) instead of NaN. With correction 1 and N = 1 the variance is
// still 0/0: pick the biased variance for that.
import type { Tensor } from '../core/tensor.js';
import { scope } from '../core/memory.js';
import { noGrad } from '../core/autograd.js';
import * as ops from '../ops/index.js';

export type SILogVariant = 'glpdepth' | 'bts' | 'adabins';

export interface SILogOptions {
  /** Which codebase's formula (default 'glpdepth'). */
  variant?: SILogVariant;
  /** Override the variant's λ (weight of mean(d)²: subtracted for glpdepth/bts, added for adabins). */
  lambda?: number;
  /** Override the variant's outer factor (1 glpdepth, 10 bts and adabins). */
  scale?: number;
  /** Variance estimator: 1 = unbiased (N − 1), 0 = biased (N). Default: adabins 1, others the literal formula (biased). */
  correction?: 0 | 1;
  /** The safe variant: clamped log, clamped argument + eps inside the sqrt, empty mask → 0. */
  safe?: boolean;
  /** Added inside the sqrt by the safe variant (default 1e-6). */
  eps?: number;
  /** The safe variant takes log of pred.clamp(min: minDepth) (default 1e-3 m). */
  minDepth?: number;
  /** What `pred` holds: depth in metres (default) or log-depth (a log head's output). */
  input?: 'depth' | 'logDepth';
}

const VARIANTS: Record<SILogVariant, { lambda: number; scale: number; form: 'subtract' | 'variance' }> = {
  glpdepth: { lambda: 0.5, scale: 1, form: 'subtract' },
  bts: { lambda: 0.85, scale: 10, form: 'subtract' },
  adabins: { lambda: 0.15, scale: 10, form: 'variance' },
};

/** d = log gt − log pred at the valid pixels, 1-D. */
export function logDifference(pred: Tensor, target: Tensor, mask?: Tensor | null, options: Pick<SILogOptions, 'safe' | 'minDepth' | 'input'> = {}): Tensor {
  return scope(() => {
    const sel = (t: Tensor): Tensor => (mask ? ops.maskedSelect(t, mask.gt(0)) : t.reshape(-1));
    const p = sel(pred);
    const logPred = options.input === 'logDepth' ? p : (options.safe ? p.clamp(options.minDepth ?? 1e-3) : p).log();
    return sel(target).log().sub(logPred);
  });
}

/** The argument of the square root (before scale), from d. */
function silogArgument(d: Tensor, lambda: number, form: 'subtract' | 'variance', correction: 0 | 1 | undefined): Tensor {
  const mean = d.mean();
  if (correction === undefined && form === 'subtract') return d.square().mean().sub(mean.square().mul(lambda));
  const v = ops.var.correction(d, null, { correction: correction ?? 1 });
  return form === 'subtract' ? v.add(mean.square().mul(1 - lambda)) : v.add(mean.square().mul(lambda));
}

/** SILog over valid pixels (mask > 0; all pixels without a mask). Returns a scalar. */
export function silog(pred: Tensor, target: Tensor, mask?: Tensor | null, options: SILogOptions = {}): Tensor {
  const variant = options.variant ?? 'glpdepth';
  const spec = VARIANTS[variant];
  if (spec === undefined) throw new RangeError(`silog: unknown variant '${String(variant)}' (glpdepth, bts, adabins)`);
  const lambda = options.lambda ?? spec.lambda;
  const scale = options.scale ?? spec.scale;
  const correction = options.correction;
  if (correction !== undefined && correction !== 0 && correction !== 1) throw new RangeError(`silog: correction must be 0 or 1, got ${String(correction)}`);
  return scope(() => {
    const d = logDifference(pred, target, mask, options);
    if (options.safe && d.numel() === 0) return d.sum(); // 0, with a graph
    let arg = silogArgument(d, lambda, spec.form, correction);
    if (options.safe) arg = arg.clamp(0).add(options.eps ?? 1e-6);
    const l = arg.sqrt();
    return scale === 1 ? l : l.mul(scale);
  });
}

export interface DepthMetrics {
  /** mean |gt − pred| / gt */
  absRel: number;
  /** √mean (gt − pred)² in metres */
  rmse: number;
  /** fraction with max(gt/pred, pred/gt) < 1.25 */
  delta1: number;
  /** valid pixels counted */
  n: number;
}

/** AbsRel, RMSE and δ<1.25 over the valid pixels (no gradient). */
export function depthMetrics(pred: Tensor, target: Tensor, mask?: Tensor | null): DepthMetrics {
  return noGrad(() => scope(() => {
    const sel = (t: Tensor): Tensor => (mask ? ops.maskedSelect(t, mask.gt(0)) : t.reshape(-1)).double();
    const p = sel(pred);
    const g = sel(target);
    const n = p.numel();
    if (n === 0) return { absRel: Number.NaN, rmse: Number.NaN, delta1: Number.NaN, n: 0 };
    const absRel = g.sub(p).abs().div(g).mean().item() as number;
    const rmse = Math.sqrt(g.sub(p).square().mean().item() as number);
    const delta1 = ops.maximum(g.div(p), p.div(g)).lt(1.25).double().mean().item() as number;
    return { absRel, rmse, delta1, n };
  }));
}
