// Confidence intervals for a share k/n of Bernoulli trials (the share of
// minibatches in the bifurcation zone, of runs that went NaN): Wilson's score
// interval, which stays inside [0, 1] and is informative at k = 0 and k = n,
// unlike the Wald one. (Neither d3-array nor simple-statistics has it.)
import { pct } from './format.js';

export interface Share {
  k: number;
  n: number;
  /** k / n (0 when n = 0) */
  p: number;
  /** Wilson score interval at the given confidence */
  lo: number;
  hi: number;
}

/** Wilson score interval for k successes in n trials; z = 1.96 for 95 %. */
export function wilson(k: number, n: number, z = 1.96): Share {
  if (!(Number.isInteger(k) && Number.isInteger(n) && k >= 0 && n >= 0 && k <= n)) throw new RangeError(`wilson: need integers 0 ≤ k ≤ n, got k=${k}, n=${n}`);
  if (n === 0) return { k, n, p: 0, lo: 0, hi: 1 };
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { k, n, p, lo: Math.max(0, centre - half), hi: Math.min(1, centre + half) };
}

/** "12.5 % [8.1, 18.7]" */
export function formatShare(s: Share, digits = 1): string {
  return `${pct(s.p, digits)} % [${pct(s.lo, digits)}, ${pct(s.hi, digits)}]`;
}
