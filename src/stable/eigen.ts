// Eigenvalues of a (real, square) Jacobian as real and imaginary parts.
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

export interface Eigenvalues {
  re: number[];
  im: number[];
}

export function eigenvalues(J: Tensor): Eigenvalues {
  if (J.shape.length !== 2 || J.shape[0] !== J.shape[1]) throw new RangeError(`eigenvalues: need a square matrix, got [${J.shape.join(', ')}]`);
  return scope(() => {
    // linalg_eig wants float/double; compute in float64 for the analysis
    const lam = ops.linalgEigvals(J.detach().to('float64'));
    const parts = ops.viewAsReal(lam).toArray<number[][]>();
    return { re: parts.map((p) => p[0]), im: parts.map((p) => p[1]) };
  });
}

export interface SpectrumSummary {
  count: number;
  reMin: number;
  reMax: number;
  imMaxAbs: number;
  absMax: number;
}

export function summarize(e: Eigenvalues): SpectrumSummary {
  let reMin = Infinity, reMax = -Infinity, imMaxAbs = 0, absMax = 0;
  for (let i = 0; i < e.re.length; i++) {
    reMin = Math.min(reMin, e.re[i]);
    reMax = Math.max(reMax, e.re[i]);
    imMaxAbs = Math.max(imMaxAbs, Math.abs(e.im[i]));
    absMax = Math.max(absMax, Math.hypot(e.re[i], e.im[i]));
  }
  return { count: e.re.length, reMin, reMax, imMaxAbs, absMax };
}
