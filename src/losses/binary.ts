// Binary (multi-label) cross-entropy on probabilities and on logits, on
// ATen's kernels. Target and input must have the same shape, as in PyTorch.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { reductionCode, sameShape, type Reduction } from './reduction.js';

export interface BCEOptions {
  /** A rescaling weight broadcast against the input (e.g. per element or per class). */
  weight?: Tensor | null;
  /** Default 'mean'. */
  reduction?: Reduction;
}

/**
 * -w·[y·log p + (1 - y)·log(1 - p)] for probabilities p in [0, 1]
 * (torch.nn.functional.binary_cross_entropy; log is clamped at -100 as there).
 */
export function binaryCrossEntropy(input: Tensor, target: Tensor, options: BCEOptions = {}): Tensor {
  const r = reductionCode(options.reduction, 'binaryCrossEntropy');
  sameShape(input, target, 'binaryCrossEntropy');
  const w = options.weight ?? null;
  // ATen wants the weight at the target's shape
  const expanded = w !== null && !sameDims(w.shape, target.shape) ? w.expand(target.shape) : w;
  try {
    return ops.binaryCrossEntropy(input, target, expanded, r);
  } finally {
    if (expanded !== null && expanded !== w) expanded.dispose();
  }
}

/**
 * Binary cross-entropy of sigmoid(input), computed stably from the logits
 * (torch.nn.functional.binary_cross_entropy_with_logits). `posWeight`
 * weighs the positive term per class (broadcast along the last dim):
 * -w·[posWeight·y·log σ(x) + (1 - y)·log(1 - σ(x))].
 */
export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  options: BCEOptions & { posWeight?: Tensor | null } = {},
): Tensor {
  const r = reductionCode(options.reduction, 'binaryCrossEntropyWithLogits');
  sameShape(input, target, 'binaryCrossEntropyWithLogits');
  return ops.binaryCrossEntropyWithLogits(input, target, options.weight ?? null, options.posWeight ?? null, r);
}

function sameDims(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
