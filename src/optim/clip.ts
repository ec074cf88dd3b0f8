// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_
// (PyTorch 1.13), op for op.
import { noGrad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

function gradsOf(params: Tensor | Tensor[]): Tensor[] {
  const out: Tensor[] = [];
  for (const p of params instanceof Tensor ? [params] : params) {
    const g = p.grad;
    if (g !== undefined) out.push(g);
  }
  return out;
}

export interface ClipGradNormOptions {
  /** The p of the p-norm; Infinity (or 'inf') for the max norm. Default 2. */
  normType?: number | 'inf';
  /** Throw, leaving the gradients as they are, when the total norm is NaN or ±inf. Default false. */
  errorIfNonfinite?: boolean;
}

/** The norm of order normType of tensors taken together as one vector (a 0-d tensor). */
function totalNorm(grads: Tensor[], normType: number): Tensor {
  if (normType === Infinity) {
    const norms = grads.map((g) => g.detach().abs().max());
    return norms.length === 1 ? norms[0] : ops.stack(norms).max();
  }
  const norms = grads.map((g) => ops.norm.ScalarOpt_dim(g.detach(), normType, allDims(g), false));
  return ops.norm.ScalarOpt_dim(ops.stack(norms), normType, [0], false);
}

/** The total L2 norm of the gradients (what clipGradNorm would clip), as a number; 0 without gradients. */
export function gradNorm(params: Tensor | Tensor[]): number {
  return scope(() =>
    noGrad(() => {
      const grads = gradsOf(params);
      return grads.length === 0 ? 0 : (totalNorm(grads, 2).item() as number);
    }),
  );
}

/**
 * Scales all gradients together, in place, so that their total norm (as if
 * concatenated into one vector) is at most maxNorm: g ← g·min(1, maxNorm /
 * (norm + 1e-6)). Returns the total norm before clipping, as a number.
 */
export function clipGradNorm(params: Tensor | Tensor[], maxNorm: number, options: ClipGradNormOptions = {}): number {
  const normType = options.normType === 'inf' ? Infinity : options.normType ?? 2;
  if (typeof normType !== 'number' || Number.isNaN(normType)) throw new TypeError(`clipGradNorm: normType must be a number or 'inf', got ${String(options.normType)}`);
  return scope(() =>
    noGrad(() => {
      const grads = gradsOf(params);
      if (grads.length === 0) return 0;
      const total = totalNorm(grads, normType);
      const value = total.item() as number;
      if (options.errorIfNonfinite && !Number.isFinite(value)) {
        throw new Error(
          `clipGradNorm: the total norm of order ${normType} of the gradients is ${value}, so they cannot be clipped; ` +
            'set errorIfNonfinite: false to scale them by the non-finite norm anyway',
        );
      }
      const coef = total.add(1e-6).reciprocal().mul(maxNorm).clamp(null, 1.0);
      for (const g of grads) g.detach().mul_(coef);
      return value;
    }),
  );
}

/** Clamps every gradient, in place, to [-value, value]. */
export function clipGradValue(params: Tensor | Tensor[], value: number): void {
  scope(() =>
    noGrad(() => {
      for (const g of gradsOf(params)) g.clamp_(-value, value);
    }),
  );
}

function allDims(t: Tensor): number[] {
  return Array.from({ length: t.ndim }, (_, i) => i);
}
