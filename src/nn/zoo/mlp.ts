// MLP: flatten, then Linear → activation (→ Dropout) per hidden width, then a
// Linear to numClasses. State dict keys: layers.0.weight, layers.0.bias, ...
// (as nn.Sequential numbers them, activations and dropouts included).
import type { Tensor } from '../../core/tensor.js';
import { GELU, ReLU, Sigmoid, Tanh } from '../activation.js';
import { Sequential } from '../container.js';
import { Dropout } from '../dropout.js';
import { Flatten } from '../flatten.js';
import { Linear } from '../linear.js';
import { Module } from '../module.js';
import { BatchNorm1d } from '../norm.js';

export type ActivationName = 'relu' | 'gelu' | 'tanh' | 'sigmoid';

export function activation(name: ActivationName): Module<[Tensor], Tensor> {
  switch (name) {
    case 'relu': return new ReLU();
    case 'gelu': return new GELU();
    case 'tanh': return new Tanh();
    case 'sigmoid': return new Sigmoid();
    default: throw new RangeError(`unknown activation '${String(name)}' (relu, gelu, tanh, sigmoid)`);
  }
}

export interface MLPOptions {
  /** Features of one flattened input sample (784 for 28×28 grayscale). */
  inFeatures: number;
  numClasses: number;
  /** Hidden layer widths, input side first. Default [256, 128]. */
  hidden?: number[];
  activation?: ActivationName;
  /** Dropout probability after each hidden activation (0: none). */
  dropout?: number;
  /** BatchNorm1d after each hidden Linear, before the activation. */
  batchNorm?: boolean;
}

export class MLP extends Module {
  flatten: Flatten;
  layers: Sequential;

  constructor({ inFeatures, numClasses, hidden = [256, 128], activation: act = 'relu', dropout = 0, batchNorm = false }: MLPOptions) {
    super();
    this.flatten = new Flatten();
    const mods: Module[] = [];
    let width = inFeatures;
    for (const h of hidden) {
      mods.push(new Linear(width, h));
      if (batchNorm) mods.push(new BatchNorm1d(h));
      mods.push(activation(act));
      if (dropout > 0) mods.push(new Dropout(dropout));
      width = h;
    }
    mods.push(new Linear(width, numClasses));
    this.layers = new Sequential(...mods);
  }

  forward(x: Tensor): Tensor {
    const flat = this.flatten.call(x);
    const out = this.layers.call(flat);
    if (flat !== x && flat !== out) flat.dispose();
    return out;
  }
}
