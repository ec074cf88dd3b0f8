// Linear: y = x Wᵀ + b, with torch.nn.Linear's parameters and initialisation.
import { noGrad } from '../core/autograd.js';
import { empty } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { calculateFanInAndFanOut, kaimingUniform_, uniform_ } from './init.js';
import { Module, Parameter } from './module.js';
import { factory, type FactoryOptions } from './pair.js';

export interface LinearOptions extends FactoryOptions {
  bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** [outFeatures, inFeatures] */
  weight: Tensor;
  /** [outFeatures], or null with bias: false */
  bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, { bias = true, ...rest }: LinearOptions = {}) {
    super();
    for (const [n, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`Linear: ${n} must be a non-negative integer, got ${v}`);
    }
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = Parameter(empty([outFeatures, inFeatures], factory(rest)));
    this.bias = bias ? Parameter(empty([outFeatures], factory(rest))) : null;
    this.resetParameters();
  }

  /** torch's reset_parameters: kaiming_uniform_(a=√5), then bias U(±1/√fan_in). */
  resetParameters(): void {
    noGrad(() => {
      kaimingUniform_(this.weight, { a: Math.sqrt(5) });
      if (this.bias) {
        const [fanIn] = calculateFanInAndFanOut(this.weight);
        const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
        uniform_(this.bias, -bound, bound);
      }
    });
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null ? 'True' : 'False'}`;
  }
}
