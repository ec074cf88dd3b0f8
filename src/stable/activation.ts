// The activation σ of the layer functions. tanh is the authors' choice for the
// 2-D examples (Meganet's tanhActivation); identity gives the linear blocks
// whose eigenvalues the tests know exactly.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

export type ActivationName = 'tanh' | 'relu' | 'identity';

export function activate(name: ActivationName, x: Tensor): Tensor {
  switch (name) {
    case 'tanh': return ops.tanh(x);
    case 'relu': return ops.relu(x);
    case 'identity': return x;
    default: throw new TypeError(`unknown activation '${String(name)}' (tanh, relu, identity)`);
  }
}
