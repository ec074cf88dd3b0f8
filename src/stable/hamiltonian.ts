// Hamiltonian two-layer network with Verlet (Haber & Ruthotto 2017, §3.2, eq. 3.9–3.10):
//   z_{j+½} = z_{j−½} − h·σ(K_jᵀ y_j + b_j),
//   y_{j+1} = y_j + h·σ(K_j z_{j+½} + b_j),      z_{−½} = 0,
// the symplectic discretisation of ∂ₜy = σ(K z + b), ∂ₜz = −σ(Kᵀ y + b).
// Its first-order state for the analysis is u = [y, z] (concatenated along
// the feature dimension); the Jacobian [[0, D₁K], [−D₂Kᵀ, 0]] (D = σ′ > 0)
// has purely imaginary eigenvalues, the region Verlet needs.
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { activate } from './activation.js';
import { OdeBlock, type Integration } from './block.js';
import { applyK, applyKT, FEATURE_DIM } from './operator.js';

export class HamiltonianBlock extends OdeBlock {
  readonly architecture = 'hamiltonian' as const;
  readonly integrator = 'verlet' as const;

  rhs(j: number, u: Tensor): Tensor {
    const K = this.K.select(0, j);
    const b = this.biasOf(this.b.select(0, j));
    const [y, z] = ops.chunk(u, 2, FEATURE_DIM);
    const dy = activate(this.activation, ops.add(applyK(this.kernel, K, z), b));
    const dz = ops.neg(activate(this.activation, ops.add(applyKT(this.kernel, K, y), b)));
    return ops.cat([dy, dz], FEATURE_DIM);
  }

  initialState(Y0: Tensor): Tensor {
    return ops.cat([Y0, ops.zerosLike(Y0)], FEATURE_DIM);
  }

  /** Integrates [y, z] from y_0 = Y0, z_{−½} = 0 (or from a given z). */
  integratePair(y0: Tensor, z0: Tensor | null, keepStates = false): { y: Tensor; z: Tensor; states: Tensor[] } {
    const { K, b } = this.layers();
    let y = y0;
    let z = z0 ?? ops.zerosLike(y0);
    const states: Tensor[] = [];
    for (let j = 0; j < this.depth; j++) {
      if (keepStates) states.push(ops.cat([y, z], FEATURE_DIM));
      const bj = this.biasOf(b[j]);
      z = ops.sub(z, activate(this.activation, ops.add(applyKT(this.kernel, K[j], y), bj)), { alpha: this.h });
      y = ops.add(y, activate(this.activation, ops.add(applyK(this.kernel, K[j], z), bj)), { alpha: this.h });
    }
    if (keepStates) states.push(ops.cat([y, z], FEATURE_DIM));
    return { y, z, states };
  }

  integrate(Y0: Tensor, keepStates = false): Integration {
    const { y, states } = this.integratePair(Y0, null, keepStates);
    return { out: y, states };
  }
}
