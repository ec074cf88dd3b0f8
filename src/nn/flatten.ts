// Shape modules: Flatten (torch's default keeps the batch dim), Unflatten,
// and Identity.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from './module.js';

export class Flatten extends Module {
  readonly startDim: number;
  readonly endDim: number;

  constructor({ startDim = 1, endDim = -1 }: { startDim?: number; endDim?: number } = {}) {
    super();
    this.startDim = startDim;
    this.endDim = endDim;
  }

  forward(x: Tensor): Tensor {
    return ops.flatten.using_ints(x, this.startDim, this.endDim);
  }

  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}

export class Unflatten extends Module {
  constructor(readonly dim: number, readonly sizes: number[]) {
    super();
  }

  forward(x: Tensor): Tensor {
    return ops.unflatten.int(x, this.dim, this.sizes);
  }

  override extraRepr(): string {
    return `dim=${this.dim}, unflattened_size=(${this.sizes.join(', ')})`;
  }
}

/** Returns its input (a placeholder, e.g. for an optional layer). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
