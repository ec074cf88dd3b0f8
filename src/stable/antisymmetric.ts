// Antisymmetric ResNet (Haber & Ruthotto 2017, §3.1, eq. 3.6):
//   Y_{j+1} = Y_j + h·σ(A_j Y_j + b_j),   A_j = W_j − W_jᵀ − γI.
// The paper writes ½(W − Wᵀ − γI); the ½ only rescales the free W and halves
// the damping, so we use A = W − Wᵀ − γI by default (eigenvalues of a linear
// block then have real part exactly −γ) and offer `halfFactor: true` for the
// paper's form (real part −γ/2). Meganet's denseAntiSym uses (θ − θᵀ)/2
// without γ. Without γ > 0 the eigenvalues of the Jacobian sit on the
// imaginary axis and forward Euler, whose region |1 + hλ| ≤ 1 touches that
// axis only at 0, amplifies every oscillatory mode by √(1 + h²ω²) per step.
// Convolutional form: A Y = conv(Y, W) − convᵀ(Y, W) − γY, antisymmetric as
// an operator because convᵀ is the exact adjoint of the same-size conv.
import { eye } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { activate } from './activation.js';
import { OdeBlock, type Integration, type OdeBlockOptions } from './block.js';
import { applyK, applyKT } from './operator.js';

export class AntisymmetricBlock extends OdeBlock {
  readonly architecture = 'antisymmetric' as const;
  readonly integrator = 'forward-euler' as const;
  readonly gamma: number;
  readonly halfFactor: boolean;

  constructor(options: OdeBlockOptions) {
    super(options);
    this.gamma = options.gamma ?? 0.1;
    this.halfFactor = options.halfFactor ?? false;
  }

  /** A Y + b for one layer, from its W. */
  protected affine(W: Tensor, b: Tensor, Y: Tensor): Tensor {
    const s = this.halfFactor ? 0.5 : 1;
    if (this.kernel.type === 'dense') {
      const n = this.kernel.width;
      const A = ops.mul(ops.sub(ops.sub(W, W.t()), ops.mul(eye(n, undefined, { dtype: W.dtype }), this.gamma)), s);
      return ops.linear(Y, A, b);
    }
    const AY = ops.sub(ops.sub(applyK(this.kernel, W, Y), applyKT(this.kernel, W, Y)), ops.mul(Y, this.gamma));
    return ops.add(ops.mul(AY, s), this.biasOf(b));
  }

  /** The matrix A_j = s·(W_j − W_jᵀ − γI) of a dense layer (for inspection). */
  denseOperator(j: number): Tensor {
    if (this.kernel.type !== 'dense') throw new TypeError('denseOperator: convolutional block');
    const W = this.K.select(0, j);
    const s = this.halfFactor ? 0.5 : 1;
    return ops.mul(ops.sub(ops.sub(W, W.t()), ops.mul(eye(this.kernel.width, undefined, { dtype: W.dtype }), this.gamma)), s);
  }

  rhs(j: number, u: Tensor): Tensor {
    return activate(this.activation, this.affine(this.K.select(0, j), this.b.select(0, j), u));
  }

  initialState(Y0: Tensor): Tensor {
    return Y0;
  }

  integrate(Y0: Tensor, keepStates = false): Integration {
    return this.forwardEuler(Y0, keepStates, (K, b, Y) => activate(this.activation, this.affine(K, b, Y)));
  }
}
