// Stability analysis of a block along its own trajectory: at the state u_j
// where layer j is evaluated (for one sample), the eigenvalues of the
// Jacobian of the right-hand side F_j, and whether h·λ lies in the region of
// the block's integrator. Two ways to the eigenvalues: 'dense' builds the
// exact Jacobian (one backward pass per state component) and factors it —
// all n eigenvalues; 'arnoldi' estimates the outer ones matrix-free
// (jacobian-ritz.ts: Ritz values of Jᵀ through vector-Jacobian products) —
// the k of largest magnitude and the k of largest real part, computed in
// float64 on a float64 copy of the block. 'auto' (default) takes 'dense' up
// to 512 state dimensions.
import { noGrad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import type { OdeBlock } from './block.js';
import { eigenvalues, summarize, type Eigenvalues, type SpectrumSummary } from './eigen.js';
import { jacobian } from './jacobian.js';
import { jacobianRitzValues, ritzEigenvalues } from './jacobian-ritz.js';
import { checkStability, type RegionCheck } from './regions.js';

/** The Jacobian ∂F_j/∂u at u (u a single sample: batch dimension 1). */
export function rhsJacobian(block: OdeBlock, j: number, u: Tensor): Tensor {
  return jacobian((x) => block.rhs(j, x), u);
}

export interface LayerAnalysis {
  layer: number;
  /** all eigenvalues ('dense') or the selected Ritz values ('arnoldi') */
  eigenvalues: Eigenvalues;
  /** 'arnoldi' only: the residual ‖Jᵀx − θx‖ of each Ritz value in `eigenvalues` */
  residuals?: number[];
  /** over the eigenvalues ('arnoldi': the resolved Ritz values only) */
  spectrum: SpectrumSummary;
  region: RegionCheck;
}

export interface BlockAnalysis {
  architecture: string;
  integrator: string;
  h: number;
  depth: number;
  /** how the eigenvalues were found */
  method: 'dense' | 'arnoldi';
  /** the first-order state's dimension (the Jacobian is n × n) */
  n: number;
  layers: LayerAnalysis[];
  /** over all analysed layers */
  spectrum: SpectrumSummary;
  stable: boolean;
  maxAmplification: number;
}

export interface AnalyzeOptions {
  /** which layers to analyse; default up to 8 spread over the depth */
  layers?: number[];
  /** 'dense', 'arnoldi', or 'auto' (dense up to 512 dimensions); default 'auto' */
  method?: 'dense' | 'arnoldi' | 'auto';
  /** arnoldi: how many eigenvalues of each kind (largest |λ|, largest Re λ); default 6 */
  k?: number;
  /** arnoldi: the Krylov dimension; default min(n, max(40, 6k)) */
  steps?: number;
  /** arnoldi: thick restarts at most; default 20 */
  restarts?: number;
  /**
   * arnoldi: a Ritz value enters the spectrum summary when its residual is
   * ≤ resolvedTol·max|θ| (default 1e-3); the region check takes every Ritz
   * value within its residual (regions.ts)
   */
  resolvedTol?: number;
}

/** Analyses `block` along the trajectory from Y0 (its first sample is used). */
export function analyzeBlock(block: OdeBlock, Y0: Tensor, { layers, method = 'auto', k = 6, steps, restarts, resolvedTol = 1e-3 }: AnalyzeOptions = {}): BlockAnalysis {
  if (method !== 'dense' && method !== 'arnoldi' && method !== 'auto') throw new TypeError(`analyzeBlock: method must be 'dense', 'arnoldi' or 'auto', got '${String(method)}'`);
  return scope(() => {
    const N = block.depth;
    const picks = layers ?? [...new Set(Array.from({ length: Math.min(8, N) }, (_, i) => Math.round((i * (N - 1)) / Math.max(1, Math.min(8, N) - 1))))];
    for (const j of picks) if (!Number.isInteger(j) || j < 0 || j >= N) throw new RangeError(`analyzeBlock: layer ${j} is not in 0..${N - 1}`);
    const n = noGrad(() => block.initialState(Y0.narrow(0, 0, 1)).numel());
    const how: 'dense' | 'arnoldi' = method === 'auto' ? (n <= 512 ? 'dense' : 'arnoldi') : method;
    // the Krylov estimate runs in float64: a float64 copy of a float32 block
    const blk = how === 'arnoldi' && block.K.dtype !== 'float64' ? block.withDtype('float64') : block;
    const sample = Y0.narrow(0, 0, 1).to(blk.K.dtype);
    const states = noGrad(() => blk.integrate(sample, true).states);
    const out: LayerAnalysis[] = [];
    const all: Eigenvalues = { re: [], im: [] };
    try {
      for (const j of picks) {
        let e: Eigenvalues;
        let residuals: number[] | undefined;
        let resolved: Eigenvalues;
        if (how === 'dense') resolved = e = eigenvalues(rhsJacobian(blk, j, states[j]));
        else {
          const r = ritzEigenvalues(jacobianRitzValues((x) => blk.rhs(j, x), states[j], { k, steps, restarts }));
          e = { re: r.re, im: r.im };
          residuals = r.residual;
          // the ranges from the resolved Ritz values (residual ≤ resolvedTol·max|θ|); the region check from all, each within its residual
          const scale = Math.max(...r.re.map((re, i) => Math.hypot(re, r.im[i])));
          const keep = r.residual.map((res) => res <= resolvedTol * scale);
          resolved = { re: r.re.filter((_, i) => keep[i]), im: r.im.filter((_, i) => keep[i]) };
        }
        all.re.push(...resolved.re);
        all.im.push(...resolved.im);
        out.push({ layer: j, eigenvalues: e, ...(residuals ? { residuals } : {}), spectrum: summarize(resolved), region: checkStability(blk.integrator, blk.h, { ...e, ...(residuals ? { residuals } : {}) }) });
      }
    } finally {
      if (blk !== block) blk.dispose(); // parameters outlive scopes
    }
    return {
      architecture: block.architecture,
      integrator: block.integrator,
      h: block.h,
      depth: N,
      method: how,
      n,
      layers: out,
      spectrum: summarize(all),
      stable: out.every((l) => l.region.stable),
      maxAmplification: Math.max(...out.map((l) => l.region.maxAmplification)),
    };
  });
}
