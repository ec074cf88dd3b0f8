// keel.stats: the one statistics module of the studies and the audit.
//
//   summary.ts    mean, median, quantile (d3-array), sample variance and std
//   intervals.ts  Wilson score intervals for a share k/n
//   tests.ts      Fisher's exact test (one-sided), Welch's t
//   format.ts     pct(): how a share prints
export { mean, median, quantile, sampleVariance, sampleStd } from './summary.js';
export { wilson, formatShare, type Share } from './intervals.js';
export { fisherGreater, welchT } from './tests.js';
export { pct } from './format.js';
