// Upsample: nearest or bilinear resizing of [N, C, H, W] inputs, as
// torch.nn.Upsample / F.interpolate call the same ATen ops (.vec overloads,
// scale factors passed through unless recomputeScaleFactor).
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from './module.js';

export interface UpsampleOptions {
  /** Output [h, w] (or one number for both); give this or scaleFactor. */
  size?: number | [number, number];
  /** Multiplier of the input's h and w. */
  scaleFactor?: number | [number, number];
  mode?: 'nearest' | 'bilinear';
  /** bilinear only: align the corner pixels' centres (torch's align_corners; default false). */
  alignCorners?: boolean;
  /** Compute the output size from scaleFactor and interpolate for that size, not for the factor. */
  recomputeScaleFactor?: boolean;
}

export class Upsample extends Module {
  readonly size: [number, number] | null;
  readonly scaleFactor: [number, number] | null;
  readonly mode: 'nearest' | 'bilinear';
  readonly alignCorners: boolean | null;
  readonly recomputeScaleFactor: boolean;

  constructor({ size, scaleFactor, mode = 'nearest', alignCorners, recomputeScaleFactor = false }: UpsampleOptions) {
    super();
    if ((size === undefined) === (scaleFactor === undefined)) throw new RangeError('Upsample: give exactly one of size and scaleFactor');
    if (mode !== 'nearest' && mode !== 'bilinear') throw new RangeError(`Upsample: mode must be 'nearest' or 'bilinear', got '${String(mode)}'`);
    if (mode === 'nearest' && alignCorners !== undefined) {
      throw new RangeError("Upsample: alignCorners only applies to 'bilinear' (as in PyTorch, where it is an error for 'nearest')");
    }
    const two = <T>(v: T | [T, T]): [T, T] => (Array.isArray(v) ? [v[0], v[1]] : [v, v]);
    this.size = size === undefined ? null : two(size);
    this.scaleFactor = scaleFactor === undefined ? null : two(scaleFactor);
    if (this.size && this.size.some((d) => !Number.isInteger(d) || d < 1)) throw new RangeError(`Upsample: size must be positive integers, got ${JSON.stringify(size)}`);
    if (this.scaleFactor && this.scaleFactor.some((d) => !(d > 0))) throw new RangeError(`Upsample: scaleFactor must be positive, got ${JSON.stringify(scaleFactor)}`);
    this.mode = mode;
    this.alignCorners = mode === 'bilinear' ? alignCorners ?? false : null;
    this.recomputeScaleFactor = recomputeScaleFactor;
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new RangeError(`Upsample: expected a 4D [N, C, H, W] input, got ${x.ndim}D`);
    let outputSize: number[] | null = this.size;
    let scales: number[] | null = this.scaleFactor;
    if (scales && this.recomputeScaleFactor) {
      const shape = x.shape;
      outputSize = scales.map((s, i) => Math.floor(shape[2 + i] * s));
      scales = null;
    }
    if (this.mode === 'nearest') return ops.upsampleNearest2d.vec(x, outputSize, scales);
    return ops.upsampleBilinear2d.vec(x, outputSize, this.alignCorners ?? false, scales);
  }

  override extraRepr(): string {
    const what = this.size ? `size=(${this.size.join(', ')})` : `scale_factor=(${this.scaleFactor!.join(', ')})`;
    return `${what}, mode='${this.mode}'${this.alignCorners !== null ? `, align_corners=${this.alignCorners ? 'True' : 'False'}` : ''}`;
  }
}
