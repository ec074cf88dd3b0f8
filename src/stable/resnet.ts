// ResNet as forward Euler (Haber & Ruthotto 2017, eq. 2.2 / 3.2):
//   Y_{j+1} = Y_j + h·σ(K_j Y_j + b_j),   the ODE ∂ₜY = σ(K(t)Y + b(t)).
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { activate } from './activation.js';
import { OdeBlock, type Integration } from './block.js';
import { applyK } from './operator.js';

export class ResNetBlock extends OdeBlock {
  readonly architecture = 'resnet' as const;
  readonly integrator = 'forward-euler' as const;

  protected f(K: Tensor, b: Tensor, Y: Tensor): Tensor {
    return activate(this.activation, ops.add(applyK(this.kernel, K, Y), this.biasOf(b)));
  }

  rhs(j: number, u: Tensor): Tensor {
    const K = this.K.select(0, j);
    const b = this.b.select(0, j);
    return this.f(K, b, u);
  }

  initialState(Y0: Tensor): Tensor {
    return Y0;
  }

  integrate(Y0: Tensor, keepStates = false): Integration {
    return this.forwardEuler(Y0, keepStates, (K, b, Y) => this.f(K, b, Y));
  }
}
