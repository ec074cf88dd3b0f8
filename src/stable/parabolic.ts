// Parabolic network (Ruthotto & Haber 2018, arXiv 1804.04272, eq. 3.3):
//   ∂ₜY = −K(t)ᵀσ(K(t)Y + b(t)),   forward Euler Y_{j+1} = Y_j − h·K_jᵀσ(K_j Y_j + b_j).
// For σ non-decreasing the Jacobian −Kᵀ·diag(σ′)·K is symmetric negative
// semi-definite: real eigenvalues λ ≤ 0, and forward Euler is stable for
// h·|λ|max ≤ 2.
import type { Tensor } from '../core/tensor.js';
import { OdeBlock, type Integration } from './block.js';
import { symmetricForce } from './leapfrog.js';

export class ParabolicBlock extends OdeBlock {
  readonly architecture = 'parabolic' as const;
  readonly integrator = 'forward-euler' as const;

  rhs(j: number, u: Tensor): Tensor {
    return symmetricForce(this, this.K.select(0, j), this.b.select(0, j), u);
  }

  initialState(Y0: Tensor): Tensor {
    return Y0;
  }

  integrate(Y0: Tensor, keepStates = false): Integration {
    return this.forwardEuler(Y0, keepStates, (K, b, Y) => symmetricForce(this, K, b, Y));
  }
}
