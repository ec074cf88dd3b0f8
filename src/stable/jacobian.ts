// The exact Jacobian of a function at a point, through autograd: one
// backward pass per output component (fine for the small states the
// analysis looks at; use float64 for checks against finite differences).
import { grad, enableGrad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import { zeros } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

/**
 * J[i, k] = ∂f(x)_i / ∂x_k for the flattened input and output: [m, n].
 * `f` is called once on a leaf copy of x; x itself is not modified.
 */
export function jacobian(f: (x: Tensor) => Tensor, x: Tensor): Tensor {
  return scope(() => enableGrad(() => {
    const xi = x.detach().clone().requiresGrad_(true);
    const y = f(xi).reshape([-1]);
    const m = y.shape[0];
    const n = xi.numel();
    const rows: Tensor[] = [];
    for (let i = 0; i < m; i++) {
      const e = zeros([m], { dtype: y.dtype });
      e.select(0, i).fill_(1);
      const [g] = grad(y, xi, { gradOutputs: [e], retainGraph: true, allowUnused: true });
      rows.push(g ? g.reshape([-1]).detach() : zeros([n], { dtype: y.dtype }));
    }
    return ops.stack(rows, 0);
  }));
}

/** The same Jacobian by central finite differences (for checks), step eps. */
export function jacobianFiniteDifference(f: (x: Tensor) => Tensor, x: Tensor, eps = 1e-6): Tensor {
  return scope(() => {
    const flat = x.detach().clone().reshape([-1]);
    const n = flat.shape[0];
    const cols: Tensor[] = [];
    for (let k = 0; k < n; k++) {
      const plus = flat.clone();
      plus.select(0, k).add_(eps);
      const minus = flat.clone();
      minus.select(0, k).sub_(eps);
      const fp = f(plus.reshape(x.shape)).reshape([-1]);
      const fm = f(minus.reshape(x.shape)).reshape([-1]);
      cols.push(ops.mul(ops.sub(fp, fm), 1 / (2 * eps)).detach());
    }
    return ops.stack(cols, 1);
  });
}
