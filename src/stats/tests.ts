// Hypothesis tests the studies judge claims by. Neither d3-array nor
// simple-statistics has Fisher's exact test or Welch's t, so they are here.
import { mean, sampleVariance } from './summary.js';

/** One-sided Fisher exact test: P(X ≥ a) for the top-left cell of [[a, b], [c, d]] (a = events in group 1). */
export function fisherGreater(a: number, b: number, c: number, d: number): number {
  const lf = (n: number): number => { let s = 0; for (let i = 2; i <= n; i++) s += Math.log(i); return s; };
  const n = a + b + c + d;
  const r1 = a + b;
  const c1 = a + c;
  const p = (x: number): number => Math.exp(lf(r1) + lf(n - r1) + lf(c1) + lf(n - c1) - lf(n) - lf(x) - lf(r1 - x) - lf(c1 - x) - lf(n - r1 - c1 + x));
  let s = 0;
  for (let x = a; x <= Math.min(r1, c1); x++) s += p(x);
  return Math.min(1, s);
}

/** Welch's t of mean(b) − mean(a) (unequal variances); NaN unless both samples have two values or more. */
export function welchT(a: readonly number[], b: readonly number[]): number {
  if (a.length < 2 || b.length < 2) return Number.NaN;
  return (mean(b) - mean(a)) / Math.sqrt(sampleVariance(a) / a.length + sampleVariance(b) / b.length);
}
