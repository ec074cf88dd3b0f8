// Stability analysis of a block along its own trajectory: at the state u_j
// where layer j is evaluated (for one sample), the exact Jacobian of the
// right-hand side F_j, its eigenvalues, and whether h·λ lies in the region
// of the block's integrator.
import { noGrad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import type { OdeBlock } from './block.js';
import { eigenvalues, summarize, type Eigenvalues, type SpectrumSummary } from './eigen.js';
import { jacobian } from './jacobian.js';
import { checkStability, type RegionCheck } from './regions.js';

/** The Jacobian ∂F_j/∂u at u (u a single sample: batch dimension 1). */
export function rhsJacobian(block: OdeBlock, j: number, u: Tensor): Tensor {
  return jacobian((x) => block.rhs(j, x), u);
}

export interface LayerAnalysis {
  layer: number;
  eigenvalues: Eigenvalues;
  spectrum: SpectrumSummary;
  region: RegionCheck;
}

export interface BlockAnalysis {
  architecture: string;
  integrator: string;
  h: number;
  depth: number;
  layers: LayerAnalysis[];
  /** over all analysed layers */
  spectrum: SpectrumSummary;
  stable: boolean;
  maxAmplification: number;
}

export interface AnalyzeOptions {
  /** which layers to analyse; default up to 8 spread over the depth */
  layers?: number[];
}

/** Analyses `block` along the trajectory from Y0 (its first sample is used). */
export function analyzeBlock(block: OdeBlock, Y0: Tensor, { layers }: AnalyzeOptions = {}): BlockAnalysis {
  return scope(() => {
    const sample = Y0.narrow(0, 0, 1);
    const states = noGrad(() => block.integrate(sample, true).states);
    const N = block.depth;
    const picks = layers ?? [...new Set(Array.from({ length: Math.min(8, N) }, (_, i) => Math.round((i * (N - 1)) / Math.max(1, Math.min(8, N) - 1))))];
    const out: LayerAnalysis[] = [];
    const all: Eigenvalues = { re: [], im: [] };
    for (const j of picks) {
      const J = rhsJacobian(block, j, states[j]);
      const e = eigenvalues(J);
      all.re.push(...e.re);
      all.im.push(...e.im);
      out.push({ layer: j, eigenvalues: e, spectrum: summarize(e), region: checkStability(block.integrator, block.h, e) });
    }
    return {
      architecture: block.architecture,
      integrator: block.integrator,
      h: block.h,
      depth: N,
      layers: out,
      spectrum: summarize(all),
      stable: out.every((l) => l.region.stable),
      maxAmplification: Math.max(...out.map((l) => l.region.maxAmplification)),
    };
  });
}
