// keel.optim: optimizers with PyTorch 1.13's update formulas (SGD, Adam,
// AdamW, RMSprop), SING and its gradient standardisation, learning-rate
// schedulers, and gradient clipping.
//
//   const opt = new keel.optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 1e-2 });
//   const sched = new keel.optim.SequentialLR(opt, {
//     schedulers: [new keel.optim.LinearLR(opt, { startFactor: 0.01, totalIters: 50 }),
//                  new keel.optim.CosineAnnealingLR(opt, { tMax: 950 })],
//     milestones: [50] });
//   loss.backward(); keel.optim.clipGradNorm(model.parameters(), 1.0); opt.step(); sched.step(); opt.zeroGrad();
export {
  Optimizer, type CopyDeferring, type OptimizerLike, type OptimizerStateDict, type ParamGroup, type ParamState, type ParamsArg, type HyperValue, type GroupOf,
} from './optimizer.js';
export { SGD, type SGDGroup, type SGDHyper, type SGDOptions } from './sgd.js';
export { Adam, AdamW, type AdamGroup, type AdamHyper, type AdamOptions } from './adam.js';
export { RMSprop, type RMSpropGroup, type RMSpropHyper, type RMSpropOptions } from './rmsprop.js';
export { SING, type SINGGroup, type SINGHyper, type SINGOptions } from './sing.js';
export {
  GradientStandardization, standardizeGradient, standardizeGradients, withStandardizedGradients, type StandardizeOptions,
} from './standardize.js';
export {
  LRScheduler, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, LambdaLR, CosineAnnealingLR, OneCycleLR,
  SequentialLR, ChainedScheduler, type OneCycleOptions, type SchedulerState,
} from './schedulers.js';
export { FINITE_STEP, type UpdateBounding } from './update-bound.js';
export { clipGradNorm, clipGradValue, gradNorm, type ClipGradNormOptions } from './clip.js';
