// keel.losses: loss functions with PyTorch's names (camelCase), options and
// numerics (ATen's own loss kernels). Every function takes `{ reduction }`:
// 'mean' (default) | 'sum' | 'none'.
export { crossEntropy, nllLoss, type CrossEntropyOptions, type NLLLossOptions } from './classification.js';
export { mseLoss, l1Loss, smoothL1Loss, huberLoss, type ReductionOptions } from './regression.js';
export { binaryCrossEntropy, binaryCrossEntropyWithLogits, type BCEOptions } from './binary.js';
export type { Reduction } from './reduction.js';
export { silog, logDifference, depthMetrics, type SILogOptions, type SILogVariant, type DepthMetrics } from './depth.js';
