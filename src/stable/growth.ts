// Empirical forward and backward growth through a block or network:
// ‖Φ(Y0 + δ) − Φ(Y0)‖ / ‖δ‖ for small random δ (forward), and ‖∂L/∂Y0‖
// (backward: what the loss gradient looks like at the input).
import { enableGrad, grad, noGrad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import { randnLike } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

export interface GrowthOptions {
  /** ‖δ‖ relative to ‖Y0‖ (absolute when Y0 = 0); default 1e-6 */
  eps?: number;
  /** random directions averaged (geometric mean); default 4 */
  trials?: number;
}

/**
 * ‖Φ(Y0 + δ) − Φ(Y0)‖/‖δ‖ (Frobenius norms over the whole batch), averaged
 * geometrically over random δ; Infinity when the output is not finite.
 * Uses the global RNG (keel.manualSeed).
 */
export function perturbationGrowth(fn: (Y: Tensor) => Tensor, Y0: Tensor, { eps = 1e-6, trials = 4 }: GrowthOptions = {}): number {
  return scope(() => noGrad(() => {
    const base = fn(Y0);
    const y0norm = Y0.norm().item() as number;
    const size = (y0norm > 0 ? y0norm : 1) * eps;
    let logSum = 0;
    for (let t = 0; t < trials; t++) {
      const d = randnLike(Y0);
      const dn = ops.mul(d, size / (d.norm().item() as number));
      const out = fn(ops.add(Y0, dn));
      const r = (ops.sub(out, base).norm().item() as number) / size;
      if (!Number.isFinite(r)) return Infinity;
      logSum += Math.log(Math.max(r, 1e-300));
    }
    return Math.exp(logSum / trials);
  }));
}

/** ‖∂L/∂Y0‖ for L = loss(Φ(Y0)). */
export function inputGradientNorm(fn: (Y: Tensor) => Tensor, Y0: Tensor, loss: (out: Tensor) => Tensor): number {
  return scope(() => enableGrad(() => {
    const x = Y0.detach().clone().requiresGrad_(true);
    const L = loss(fn(x));
    const [g] = grad(L, x, { allowUnused: true });
    if (!g) return 0;
    const v = g.norm().item() as number;
    return Number.isFinite(v) ? v : Infinity;
  }));
}
