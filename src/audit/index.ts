// keel.audit: the nonsmooth-autodiff audit (Bertoin et al. 2021; Boustany 2024).
//
//   relu.ts           ReLU with a chosen ReLU'(0)
//   maxpool.ts        MaxPool2d with native / minimal / MaxPool-β backward
//   max-via-relu.ts   max(a, b) = b + relu(a − b), and a max written as a loop of it
//   swap.ts           put those rules into a built model (module replacement)
//   bifurcation.ts    compare two backward choices' gradients; the thresholds
//   compensation.ts   AD right over the reals, wrong in floating point
//   precision-run.ts  run a computation in fp64 / fp32 / an emulated format
//   (wilson, formatShare: src/stats, the one statistics module, re-exported here)
//   verdict.ts        a verdict line: statistic, threshold, sample size, or 'insufficient'
export { ReLUAt0, reluAt0, ReLUWithDerivativeAt0, zeroRecorder, type ZeroRecord } from './relu.js';
export {
  MaxPoolBeta, MaxPool2dBeta, maxPool2dBeta, maxPoolConfig, minimalMaxPoolBackward, tieRecorder,
  type MaxPoolConfig, type MaxPool2dBetaOptions, type MaxPoolRule, type TieRecord,
} from './maxpool.js';
export { maxViaRelu, maxLoop } from './max-via-relu.js';
export { swapBackwardRules, type BackwardRules, type SwapReport } from './swap.js';
export {
  unitRoundoff, bifurcationThreshold, absoluteThreshold, decadeHistogram, type DecadeBin, collectGradients, disposeGradients, compareGradients, type GradientComparison,
} from './bifurcation.js';
export { compensationPoint, compensationSweep, COMPENSATION_X, adjacentX, type CompensationPoint, type CompensationSweep } from './compensation.js';
export { AUDIT_FORMATS, AUDIT_FORMATS_ACCEPTED, computeDtype, inFormat, castFor } from './precision-run.js';
export { wilson, formatShare, type Share } from '../stats/index.js';
export { judge, verdictLine, type Verdict, type VerdictOutcome } from './verdict.js';
