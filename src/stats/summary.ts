// Means, medians and quantiles of a sample, on d3-array (the maintained
// package that vega brings): d3's mean is the plain running sum over n, the
// same numbers as before; its median and quantile interpolate between order
// statistics (R-7, as numpy's default). d3 skips NaN; here a NaN in the sample
// makes the statistic NaN, and an empty sample gives NaN, never undefined.
//
// The sample variance stays two-pass (Σ(x − mean)² / (n − 1)): d3's deviation
// is Welford's update, which differs from it in the last bits and would change
// the results.json numbers the studies have already written.
import { mean as d3mean, median as d3median, quantile as d3quantile } from 'd3-array';

const undefinedIfNaN = (xs: readonly number[]): boolean => xs.length === 0 || xs.some(Number.isNaN);

/** The arithmetic mean; NaN for no values or a NaN among them. */
export function mean(xs: readonly number[]): number {
  return undefinedIfNaN(xs) ? Number.NaN : (d3mean(xs) as number);
}

/** The median (the mean of the two middle values for an even count); NaN for no values. */
export function median(xs: readonly number[]): number {
  return undefinedIfNaN(xs) ? Number.NaN : (d3median(xs) as number);
}

/** The p-quantile (0 ≤ p ≤ 1), interpolated between order statistics; NaN for no values. */
export function quantile(xs: readonly number[], p: number): number {
  return undefinedIfNaN(xs) ? Number.NaN : (d3quantile(xs, p) as number);
}

/** The sample variance (n − 1); 0 for fewer than two values. */
export function sampleVariance(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1);
}

/** The sample standard deviation (n − 1); 0 for fewer than two values. */
export function sampleStd(xs: readonly number[]): number {
  return Math.sqrt(sampleVariance(xs));
}
