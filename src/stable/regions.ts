// Stability regions of the integrators for the test equation ∂ₜu = λu:
// - forward Euler: u_{j+1} = (1 + hλ)u_j, stable iff |1 + hλ| ≤ 1 — the disc
//   of radius 1 centred at −1; it touches the imaginary axis only at 0, so
//   purely imaginary λ ≠ 0 always grows by √(1 + h²|λ|²) per step.
// - Verlet (symplectic, staggered) and leapfrog (ü = μu, λ = ±√μ): stable iff
//   hλ is purely imaginary with |hλ| < 2, i.e. hλ ∈ (−2i, 2i); at |hλ| = 2 the
//   two roots coincide and the growth is linear, beyond it exponential. Any
//   Re λ ≠ 0 makes one of the pair of roots grow (these methods are not
//   dissipative), so we accept |Re λ| ≤ tol·max(1, |λ|).
import type { Eigenvalues } from './eigen.js';
import type { Integrator } from './block.js';

export interface RegionOptions {
  /** tolerance for rounding: |1 + hλ| ≤ 1 + tol, |Re λ| ≤ tol·max(1,|λ|) */
  tol?: number;
  /**
   * an uncertainty radius r around λ (a Ritz value's residual: for a normal
   * Jacobian an eigenvalue lies within r of it): λ counts as inside when some
   * point within r of it is; default 0
   */
  radius?: number;
}

/** The amplification factor |R(hλ)| per step for one eigenvalue (largest root for Verlet/leapfrog). */
export function amplification(integrator: Integrator, h: number, re: number, im: number): number {
  if (integrator === 'forward-euler') return Math.hypot(1 + h * re, h * im);
  // two-step recurrence r² − (2 + h²λ²)r + 1 = 0 (leapfrog; Verlet is the same for linear systems)
  const zr = h * re, zi = h * im;
  // w = h²λ² = (zr + i zi)²
  const wr = zr * zr - zi * zi, wi = 2 * zr * zi;
  // r = (2 + w)/2 ± sqrt(((2 + w)/2)² − 1)
  const ar = 1 + wr / 2, ai = wi / 2;
  const dr = ar * ar - ai * ai - 1, di = 2 * ar * ai;
  const mod = Math.hypot(dr, di);
  const sr = Math.sqrt((mod + dr) / 2), si = Math.sign(di || 1) * Math.sqrt(Math.max(0, (mod - dr) / 2));
  return Math.max(Math.hypot(ar + sr, ai + si), Math.hypot(ar - sr, ai - si));
}

export function inStabilityRegion(integrator: Integrator, h: number, re: number, im: number, { tol = 1e-9, radius = 0 }: RegionOptions = {}): boolean {
  if (integrator === 'forward-euler') return Math.hypot(1 + h * re, h * im) <= 1 + tol + h * radius;
  const abs = Math.hypot(re, im);
  return Math.abs(re) <= tol * Math.max(1, abs) + radius && h * Math.abs(im) < 2 + h * radius;
}

export interface RegionCheck {
  integrator: Integrator;
  h: number;
  /** eigenvalues hλ outside the region */
  outside: number;
  total: number;
  stable: boolean;
  /** the largest per-step amplification over the eigenvalues */
  maxAmplification: number;
  /** the region in words */
  region: string;
}

export function describeRegion(integrator: Integrator): string {
  return integrator === 'forward-euler'
    ? '|1 + hλ| ≤ 1 (disc of radius 1 centred at −1)'
    : 'hλ ∈ (−2i, 2i): purely imaginary, |hλ| < 2';
}

/** With `residuals` (one per eigenvalue: Ritz values), each value is checked within its own radius. */
export function checkStability(integrator: Integrator, h: number, eig: Eigenvalues & { residuals?: number[] }, options: RegionOptions = {}): RegionCheck {
  let outside = 0;
  let maxAmp = 0;
  for (let i = 0; i < eig.re.length; i++) {
    const radius = eig.residuals ? eig.residuals[i] : options.radius;
    if (!inStabilityRegion(integrator, h, eig.re[i], eig.im[i], { ...options, radius })) outside++;
    maxAmp = Math.max(maxAmp, amplification(integrator, h, eig.re[i], eig.im[i]));
  }
  return { integrator, h, outside, total: eig.re.length, stable: outside === 0, maxAmplification: maxAmp, region: describeRegion(integrator) };
}
