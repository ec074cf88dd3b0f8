// Activation modules, each the torch.nn module of the same name over the
// same ATen op.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from './module.js';

export class ReLU extends Module {
  readonly inplace: boolean;

  constructor({ inplace = false }: { inplace?: boolean } = {}) {
    super();
    this.inplace = inplace;
  }

  forward(x: Tensor): Tensor {
    return this.inplace ? ops.relu_(x) : ops.relu(x);
  }

  override extraRepr(): string {
    return this.inplace ? 'inplace=True' : '';
  }
}

export class LeakyReLU extends Module {
  readonly negativeSlope: number;

  constructor({ negativeSlope = 0.01 }: { negativeSlope?: number } = {}) {
    super();
    this.negativeSlope = negativeSlope;
  }

  forward(x: Tensor): Tensor {
    return ops.leakyRelu(x, this.negativeSlope);
  }

  override extraRepr(): string {
    return `negative_slope=${this.negativeSlope}`;
  }
}

/** approximate: 'none' (exact, erf) or 'tanh'. */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';

  constructor({ approximate = 'none' }: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    this.approximate = approximate;
  }

  forward(x: Tensor): Tensor {
    return ops.gelu(x, { approximate: this.approximate });
  }

  override extraRepr(): string {
    return `approximate='${this.approximate}'`;
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return ops.sigmoid(x);
  }
}

/** log σ(x), computed stably (torch's log_sigmoid). */
export class LogSigmoid extends Module {
  forward(x: Tensor): Tensor {
    return ops.logSigmoid(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return ops.tanh(x);
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return ops.silu(x);
  }
}

/** log(1 + exp(βx)) / β, linear above βx > threshold. */
export class Softplus extends Module {
  readonly beta: number;
  readonly threshold: number;

  constructor({ beta = 1, threshold = 20 }: { beta?: number; threshold?: number } = {}) {
    super();
    this.beta = beta;
    this.threshold = threshold;
  }

  forward(x: Tensor): Tensor {
    return ops.softplus(x, this.beta, this.threshold);
  }

  override extraRepr(): string {
    return `beta=${this.beta}, threshold=${this.threshold}`;
  }
}

export class Softmax extends Module {
  constructor(readonly dim: number) {
    super();
  }

  forward(x: Tensor): Tensor {
    return ops.softmax.int(x, this.dim);
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}

export class LogSoftmax extends Module {
  constructor(readonly dim: number) {
    super();
  }

  forward(x: Tensor): Tensor {
    return ops.logSoftmax.int(x, this.dim);
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}
