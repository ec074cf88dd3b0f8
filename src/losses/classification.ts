// Multi-class losses: cross-entropy and negative log-likelihood, on ATen's
// own loss kernels (aten::cross_entropy_loss, aten::nll_loss_nd), so values
// and gradients are PyTorch's.
import { Tensor } from '../core/tensor.js';
import { isFloatingDType } from '../core/dtype.js';
import * as ops from '../ops/index.js';
import { reductionCode, type Reduction } from './reduction.js';

export interface NLLLossOptions {
  /** A rescaling weight per class, shape [C]. */
  weight?: Tensor | null;
  /** Targets equal to this class index add nothing, neither to the loss nor to the mean's denominator. Default -100. */
  ignoreIndex?: number;
  /** Default 'mean': with class weights, the weighted mean (divided by the sum of the targets' weights). */
  reduction?: Reduction;
}

export interface CrossEntropyOptions extends NLLLossOptions {
  /**
   * In [0, 1]: the target becomes (1 - ε)·onehot + ε/C (Szegedy et al. 2016),
   * as torch.nn.functional.cross_entropy's label_smoothing. Default 0.
   */
  labelSmoothing?: number;
}

/** Class-index targets must be int64 for ATen; other integer dtypes are widened. */
function classIndices(input: Tensor, target: Tensor, fn: string): Tensor {
  const dt = target.dtype;
  if (dt === 'int64') return target;
  if (dt === 'int32' || dt === 'int16' || dt === 'int8' || dt === 'uint8') return target.long();
  if (isFloatingDType(dt)) {
    throw new TypeError(
      `${fn}: class-index targets must be an integer tensor (int64), got ${dt} of shape [${target.shape.join(', ')}] ` +
        `for input [${input.shape.join(', ')}]; make them with { dtype: 'int64' } or .long()` +
        (fn === 'crossEntropy' ? ', or give class probabilities of the input\'s shape' : ''),
    );
  }
  throw new TypeError(`${fn}: targets must be int64 class indices, got ${dt}`);
}

/**
 * Cross-entropy between logits and targets (torch.nn.functional.cross_entropy).
 *
 * `input` holds unnormalised logits of shape [N, C], [C] or [N, C, d1, ...];
 * `target` holds class indices (an integer tensor of shape [N], [] or
 * [N, d1, ...]) or class probabilities (a floating tensor of the input's
 * shape; then ignoreIndex does not apply).
 */
export function crossEntropy(input: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const { weight = null, ignoreIndex = -100, labelSmoothing = 0 } = options;
  const reduction = reductionCode(options.reduction, 'crossEntropy');
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) {
    throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${labelSmoothing}`);
  }
  const probabilities = isFloatingDType(target.dtype) && sameShape(input, target);
  const t = probabilities ? target : classIndices(input, target, 'crossEntropy');
  try {
    return ops.crossEntropyLoss(input, t, weight, reduction, ignoreIndex, labelSmoothing);
  } finally {
    if (t !== target) t.dispose();
  }
}

/**
 * Negative log-likelihood of class indices under log-probabilities
 * (torch.nn.functional.nll_loss): `input` [N, C], [C] or [N, C, d1, ...]
 * (e.g. from logSoftmax(1)), `target` class indices [N], [] or [N, d1, ...].
 */
export function nllLoss(input: Tensor, target: Tensor, options: NLLLossOptions = {}): Tensor {
  const { weight = null, ignoreIndex = -100 } = options;
  const reduction = reductionCode(options.reduction, 'nllLoss');
  const t = classIndices(input, target, 'nllLoss');
  try {
    return ops.nllLossNd(input, t, weight, reduction, ignoreIndex);
  } finally {
    if (t !== target) t.dispose();
  }
}

function sameShape(a: Tensor, b: Tensor): boolean {
  const x = a.shape;
  const y = b.shape;
  return x.length === y.length && x.every((d, i) => d === y[i]);
}
