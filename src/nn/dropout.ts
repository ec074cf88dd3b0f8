// Dropout: zeroes each element with probability p in training mode and scales
// the rest by 1/(1-p); the identity in eval mode. Draws from the default
// generator through aten::dropout, as torch.nn.Dropout, so masks match
// PyTorch's after the same seed.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from './module.js';

export class Dropout extends Module {
  readonly p: number;
  readonly inplace: boolean;

  constructor(p = 0.5, { inplace = false }: { inplace?: boolean } = {}) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: probability must be in [0, 1], got ${p}`);
    this.p = p;
    this.inplace = inplace;
  }

  forward(x: Tensor): Tensor {
    return this.inplace ? ops.dropout_(x, this.p, this.training) : ops.dropout(x, this.p, this.training);
  }

  override extraRepr(): string {
    return `p=${this.p}, inplace=${this.inplace ? 'True' : 'False'}`;
  }
}
