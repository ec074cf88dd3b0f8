// Elementwise regression losses on ATen's kernels: MSE, L1, smooth L1, Huber.
// Input and target broadcast as in PyTorch (with its warning).
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { broadcastPair, reductionCode, type Reduction } from './reduction.js';

export interface ReductionOptions {
  /** Default 'mean'. */
  reduction?: Reduction;
}

function elementwise(fn: string, input: Tensor, target: Tensor, run: (x: Tensor, y: Tensor) => Tensor): Tensor {
  const [x, y] = broadcastPair(input, target, fn);
  try {
    return run(x, y);
  } finally {
    if (x !== input) x.dispose();
    if (y !== target) y.dispose();
  }
}

/** (input - target)² (torch.nn.functional.mse_loss). */
export function mseLoss(input: Tensor, target: Tensor, options: ReductionOptions = {}): Tensor {
  const r = reductionCode(options.reduction, 'mseLoss');
  return elementwise('mseLoss', input, target, (x, y) => ops.mseLoss(x, y, r));
}

/** |input - target| (torch.nn.functional.l1_loss). */
export function l1Loss(input: Tensor, target: Tensor, options: ReductionOptions = {}): Tensor {
  const r = reductionCode(options.reduction, 'l1Loss');
  return elementwise('l1Loss', input, target, (x, y) => ops.l1Loss(x, y, r));
}

/**
 * 0.5·d²/β where |d| < β, |d| - 0.5·β elsewhere, d = input - target
 * (torch.nn.functional.smooth_l1_loss; β = 0 is L1). Default β = 1.
 */
export function smoothL1Loss(input: Tensor, target: Tensor, options: ReductionOptions & { beta?: number } = {}): Tensor {
  const r = reductionCode(options.reduction, 'smoothL1Loss');
  const beta = options.beta ?? 1;
  if (!(beta >= 0)) throw new RangeError(`smoothL1Loss: beta must be >= 0, got ${beta}`);
  return elementwise('smoothL1Loss', input, target, (x, y) => ops.smoothL1Loss(x, y, r, beta));
}

/**
 * 0.5·d² where |d| ≤ δ, δ·(|d| - 0.5·δ) elsewhere (torch.nn.functional.huber_loss;
 * equals δ·smoothL1Loss with β = δ). Default δ = 1.
 */
export function huberLoss(input: Tensor, target: Tensor, options: ReductionOptions & { delta?: number } = {}): Tensor {
  const r = reductionCode(options.reduction, 'huberLoss');
  const delta = options.delta ?? 1;
  if (!(delta > 0)) throw new RangeError(`huberLoss: delta must be > 0, got ${delta}`);
  return elementwise('huberLoss', input, target, (x, y) => ops.huberLoss(x, y, r, delta));
}
