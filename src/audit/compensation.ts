// The compensation zone: points where automatic differentiation is right over
// the reals but wrong in floating point. Example (Boustany 2024): for x with a
// unique maximum, f(t) = max_loop(t·x) − max(t·x) is 0 for every t > 0 and so
// is f'(t); AD over the reals gives f'(t) = x_argmax − x_argmax = 0. In floating
// point, t·x_i can round to equal values (and x_i themselves can round
// together), so the two programs' backward passes pick different tied
// elements: max_loop (b + relu(a − b) folded left to right, ReLU'(0) = s) picks
// the last tied element when s = 1, the first when s = 0; max_pool2d's native
// rule picks the first; the minimal rule averages them. Then f'(t) = x̃_j − x̃_i ≠ 0.
import { tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import { formatOf, type FormatName } from '../precision/formats.js';
import { maxLoop } from './max-via-relu.js';
import { maxPool2dBeta } from './maxpool.js';
import { computeDtype, inFormat } from './precision-run.js';

export interface CompensationPoint {
  t: number;
  /** f(t) in the format (0 over the reals) */
  value: number;
  /** f'(t) by AD in the format (0 over the reals) */
  derivative: number;
}

/** f(t) = max_loop(t·x; ReLU'(0) = s) − maxpool_β(t·x) and its AD derivative, computed in the format. */
export function compensationPoint(x: number[], t: number, format: FormatName, { s = 1, beta = 0 } = {}): CompensationPoint {
  return scope(() => {
    const dtype = computeDtype(format);
    const tt = tensor([t], { dtype }).requiresGrad_();
    const xs = tensor(x, { dtype });
    const f = inFormat(format, () => {
      const tx = xs.mul(tt);
      const loop = maxLoop(tx, s);
      const pool = maxPool2dBeta(tx.reshape([1, 1, 1, x.length]), [1, x.length], { beta }).reshape([1]);
      const out = loop.reshape([1]).sub(pool).sum();
      out.backward();
      return out;
    });
    return { t, value: Number(f.item()), derivative: Number(tt.grad!.item()) };
  });
}

export interface CompensationSweep {
  format: FormatName;
  s: number;
  beta: number;
  points: number;
  /** t at which f'(t) ≠ 0 (AD wrong; over the reals f' = 0 everywhere) */
  wrong: number;
  maxAbsDerivative: number;
  /** a few of the wrong points, for the report */
  examples: CompensationPoint[];
}

/**
 * x for a format: the 8 largest values below 2 of the format, decreasing,
 * x_i = 2 − (i + 1)·ε (distinct, exactly representable, unique argmax x_0).
 * Multiplying by t slightly above 1 takes them across 2, where the ulp doubles,
 * so neighbours merge: ties that exist only in floating point, in every format.
 */
export function adjacentX(format: FormatName, n = 8): number[] {
  const eps = formatOf(format).epsilon;
  return Array.from({ length: n }, (_, i) => 2 - (i + 1) * eps);
}

/** One x for every format: adjacentX('fp8-e4m3') = [1.875, 1.75, …, 1], exact in all of them. */
export const COMPENSATION_X = adjacentX('fp8-e4m3');

/** f'(t) over `points` values of t evenly spread in [lo, hi); x 'adjacent' takes adjacentX(format). */
export function compensationSweep(format: FormatName, { x = COMPENSATION_X as number[] | 'adjacent', s = 1, beta = 0, points = 64, lo = 0.75, hi = 2.25 } = {}): CompensationSweep {
  if (x === 'adjacent') x = adjacentX(format);
  let wrong = 0;
  let maxAbs = 0;
  const examples: CompensationPoint[] = [];
  for (let i = 0; i < points; i++) {
    const t = lo + ((hi - lo) * i) / points;
    const p = compensationPoint(x as number[], t, format, { s, beta });
    if (p.derivative !== 0) {
      wrong++;
      if (examples.length < 3) examples.push(p);
    }
    maxAbs = Math.max(maxAbs, Math.abs(p.derivative));
  }
  return { format, s, beta, points, wrong, maxAbsDerivative: maxAbs, examples };
}
