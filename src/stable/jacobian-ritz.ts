// Matrix-free eigenvalue estimates of a Jacobian J = ∂f/∂x at a point, for
// states too large for the dense path (jacobian.ts + eigen.ts builds J with
// one backward pass per output and factors it: n = 3136 would mean 3136
// passes and an O(n³) eigendecomposition per layer). Arnoldi (arnoldi.ts)
// needs only products with the operator:
// - 'transpose' (default): Jᵀv, one vector-Jacobian product through autograd
//   on a retained graph. Jᵀ has the same eigenvalues as J (same
//   characteristic polynomial), so its Ritz values estimate J's spectrum.
// - 'jacobian': J v by the double-backward trick, J v = ∂/∂w ⟨Jᵀw, v⟩ with
//   Jᵀw built with create_graph (twice the work; every op on the path must be
//   twice differentiable).
// Returns the k eigenvalues of largest magnitude and the k of largest real
// part (Ritz values with their residuals), in float64. Thick restarts (on by
// default) keep those 2k and filter the rest, so the rightmost values — the
// ones forward Euler's stability hinges on — converge too.
import { enableGrad, grad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import { tensor, zeros } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import { arnoldi, selectRitz, type ArnoldiResult, type RitzValue } from './arnoldi.js';
import type { Eigenvalues } from './eigen.js';

export interface JacobianRitzOptions {
  /** how many eigenvalues of each kind; default 6 */
  k?: number;
  /** Krylov dimension m (≥ k, clamped to n); default min(n, max(40, 6k)) */
  steps?: number;
  /** thick restarts at most; default 20 (0: plain Arnoldi) */
  restarts?: number;
  /** stop restarting when every wanted residual ≤ rtol·max|θ|; default 1e-10 */
  rtol?: number;
  /** which operator Arnoldi runs on: Jᵀ by VJPs (default) or J by double backward */
  operator?: 'transpose' | 'jacobian';
  /** seed of the start vector; default 1 */
  seed?: number;
}

export interface JacobianRitz {
  /** the state dimension n (J is n × n) */
  n: number;
  operator: 'transpose' | 'jacobian';
  /** Arnoldi's Krylov dimension, products with the operator, restarts, whether it found an invariant subspace or met rtol, and V's orthogonality loss */
  steps: number;
  applies: number;
  restarts: number;
  invariant: boolean;
  converged: boolean;
  orthogonalityLoss: number;
  /** the k Ritz values of largest |λ|, largest first */
  largestMagnitude: RitzValue[];
  /** the k Ritz values of largest Re λ, largest first */
  largestReal: RitzValue[];
  /** all m Ritz values (for plots; inner ones are rough) */
  all: RitzValue[];
}

/** The union of the two selections as real/imaginary parts (no duplicates), for summarize() and checkStability(). */
export function ritzEigenvalues(r: JacobianRitz): Eigenvalues & { residual: number[] } {
  const seen = new Set<RitzValue>();
  const out = { re: [] as number[], im: [] as number[], residual: [] as number[] };
  for (const v of [...r.largestMagnitude, ...r.largestReal]) {
    if (seen.has(v)) continue;
    seen.add(v);
    out.re.push(v.re);
    out.im.push(v.im);
    out.residual.push(v.residual);
  }
  return out;
}

/**
 * Ritz values of J = ∂f(x)/∂x (flattened input and output of equal size) at
 * x, a float64 tensor; `f` is called once on a leaf copy of x.
 */
export function jacobianRitzValues(f: (x: Tensor) => Tensor, x: Tensor, options: JacobianRitzOptions = {}): JacobianRitz {
  if (x.dtype !== 'float64') throw new TypeError(`jacobianRitzValues: the state must be float64 (the estimate is computed in float64), got ${x.dtype}`);
  const n = x.numel();
  const k = options.k ?? 6;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`jacobianRitzValues: k must be a positive integer, got ${k}`);
  if (k > n) throw new RangeError(`jacobianRitzValues: k = ${k} exceeds the dimension of the state, n = ${n}`);
  const steps = Math.min(n, options.steps ?? Math.max(40, 6 * k));
  if (!Number.isInteger(steps) || steps < k) throw new RangeError(`jacobianRitzValues: steps (the Krylov dimension) must be an integer ≥ k = ${k}, got ${options.steps}`);
  const operator = options.operator ?? 'transpose';
  if (operator !== 'transpose' && operator !== 'jacobian') throw new TypeError(`jacobianRitzValues: operator must be 'transpose' or 'jacobian', got '${String(operator)}'`);

  const result: ArnoldiResult = scope(() => enableGrad(() => {
    const xi = x.detach().clone().requiresGrad_(true);
    const y = f(xi);
    if (y.numel() !== n) throw new RangeError(`jacobianRitzValues: f maps ${n} numbers to ${y.numel()}; eigenvalues need a square Jacobian`);
    if (y.dtype !== 'float64') throw new TypeError(`jacobianRitzValues: f returned ${y.dtype}; it must compute in float64`);
    const shapeOut = y.shape;
    let apply: (v: Float64Array) => Float64Array;
    if (operator === 'transpose') {
      apply = (v) => scope(() => {
        const [g] = grad(y, xi, { gradOutputs: [tensor(v, { shape: shapeOut })], retainGraph: true, allowUnused: true });
        return g ? (g.data() as Float64Array) : new Float64Array(n);
      });
    } else {
      // Jᵀw with a graph in w, then J v = ∂⟨Jᵀw, v⟩/∂w (independent of w: Jᵀw is linear in w)
      const w = zeros(shapeOut, { dtype: 'float64' }).requiresGrad_(true);
      const [jtw] = grad(y, xi, { gradOutputs: [w], retainGraph: true, createGraph: true, allowUnused: true });
      apply = (v) => scope(() => {
        if (!jtw) return new Float64Array(n);
        const [g] = grad(jtw, w, { gradOutputs: [tensor(v, { shape: x.shape })], retainGraph: true, allowUnused: true });
        return g ? (g.data() as Float64Array) : new Float64Array(n);
      });
    }
    return arnoldi(apply, n, { steps, seed: options.seed, restarts: options.restarts ?? 20, rtol: options.rtol, want: { k, orders: ['largest-magnitude', 'largest-real'] } });
  }));
  return {
    n,
    operator,
    steps: result.steps,
    applies: result.applies,
    restarts: result.restarts,
    invariant: result.invariant,
    converged: result.converged,
    orthogonalityLoss: result.orthogonalityLoss,
    largestMagnitude: selectRitz(result.ritz, k, 'largest-magnitude'),
    largestReal: selectRitz(result.ritz, k, 'largest-real'),
    all: result.ritz,
  };
}
