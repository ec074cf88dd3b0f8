// Second-order network with leapfrog (Haber & Ruthotto 2017, §3.3, eq. 3.12–3.13):
//   Y_{j+1} = 2Y_j − Y_{j−1} − h²·K_jᵀσ(K_j Y_j + b_j),   Y_{−1} = Y_0,
// the discretisation of ∂ₜ²Y = −Kᵀσ(KY + b). Its first-order form, for the
// analysis, is u = [Y, V] with ∂ₜY = V, ∂ₜV = −Kᵀσ(KY + b); the Jacobian's
// eigenvalues are ±√μ for μ the eigenvalues of −Kᵀ·diag(σ′)·K ≤ 0, so they
// are purely imaginary, and leapfrog is stable for h·|λ| < 2.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { activate } from './activation.js';
import { OdeBlock, type Integration } from './block.js';
import { applyK, applyKT, FEATURE_DIM } from './operator.js';

/** −Kᵀσ(KY + b), shared by the leapfrog and parabolic blocks. */
export function symmetricForce(block: OdeBlock, K: Tensor, b: Tensor, Y: Tensor): Tensor {
  const bb = block.kernel.type === 'dense' ? b : b.reshape([-1, 1, 1]);
  return ops.neg(applyKT(block.kernel, K, activate(block.activation, ops.add(applyK(block.kernel, K, Y), bb))));
}

export class LeapfrogBlock extends OdeBlock {
  readonly architecture = 'leapfrog' as const;
  readonly integrator = 'leapfrog' as const;

  rhs(j: number, u: Tensor): Tensor {
    const [Y, V] = ops.chunk(u, 2, FEATURE_DIM);
    return ops.cat([V, symmetricForce(this, this.K.select(0, j), this.b.select(0, j), Y)], FEATURE_DIM);
  }

  initialState(Y0: Tensor): Tensor {
    return ops.cat([Y0, ops.zerosLike(Y0)], FEATURE_DIM);
  }

  integrate(Y0: Tensor, keepStates = false): Integration {
    const { K, b } = this.layers();
    const h2 = this.h * this.h;
    let prev = Y0;
    let Y = Y0;
    const states: Tensor[] = [];
    for (let j = 0; j < this.depth; j++) {
      // V_j = (Y_j − Y_{j−1})/h, the backward difference leapfrog carries
      if (keepStates) states.push(ops.cat([Y, ops.mul(ops.sub(Y, prev), 1 / this.h)], FEATURE_DIM));
      const next = ops.add(ops.sub(ops.mul(Y, 2), prev), symmetricForce(this, K[j], b[j], Y), { alpha: h2 });
      prev = Y;
      Y = next;
    }
    if (keepStates) states.push(ops.cat([Y, ops.mul(ops.sub(Y, prev), 1 / this.h)], FEATURE_DIM));
    return { out: Y, states };
  }
}
