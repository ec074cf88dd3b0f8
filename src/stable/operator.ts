// The linear operator K of a layer and its adjoint Kᵀ, dense or convolutional.
// States are stored batch-first: dense [B, n], images [B, C, H, W]. In the
// papers' column convention K acts on a feature column; here, on rows, so
// "K Y" is Y·Kᵀ (ops.linear) and "Kᵀ Z" is Z·K. For images K is a same-size
// convolution (stride 1, odd kernel, padding k//2) and Kᵀ is the transposed
// convolution with the same weights, its exact adjoint.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

export type KernelSpec =
  | { type: 'dense'; width: number }
  | { type: 'conv'; channels: number; kernelSize?: number };

export function kernelShape(spec: KernelSpec): number[] {
  if (spec.type === 'dense') return [spec.width, spec.width];
  const k = spec.kernelSize ?? 3;
  if (k % 2 !== 1) throw new RangeError(`conv kernel size must be odd (same-size padding), got ${k}`);
  return [spec.channels, spec.channels, k, k];
}

/** Number of features a bias has (width or channels). */
export function biasSize(spec: KernelSpec): number {
  return spec.type === 'dense' ? spec.width : spec.channels;
}

/** The fan-in of K (for the random initialisation's scale). */
export function fanIn(spec: KernelSpec): number {
  if (spec.type === 'dense') return spec.width;
  const k = spec.kernelSize ?? 3;
  return spec.channels * k * k;
}

function pad(spec: KernelSpec): number {
  return spec.type === 'conv' ? Math.floor((spec.kernelSize ?? 3) / 2) : 0;
}

/** K Y + b (b may be null). */
export function applyK(spec: KernelSpec, K: Tensor, Y: Tensor, b: Tensor | null = null): Tensor {
  if (spec.type === 'dense') return ops.linear(Y, K, b);
  return ops.conv2d(Y, K, b, 1, pad(spec));
}

/** Kᵀ Z + b (b may be null). */
export function applyKT(spec: KernelSpec, K: Tensor, Z: Tensor, b: Tensor | null = null): Tensor {
  if (spec.type === 'dense') {
    const y = ops.matmul(Z, K);
    return b ? ops.add(y, b) : y;
  }
  return ops.convTranspose2d(Z, K, b, 1, pad(spec));
}

/** The feature dimension (where Hamiltonian/leapfrog states are concatenated). */
export const FEATURE_DIM = 1;
