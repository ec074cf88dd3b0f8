// Keel: numerically reliable deep-learning training in TypeScript, on libtorch.
import './core/methods.js';
import { native } from './native/binding.js';
import { applyDefaultThreads } from './core/threads.js';

applyDefaultThreads();

export { Tensor, type NestedArray, type BackwardOptions, type RemovableHandle } from './core/tensor.js';
export type { IndexEntry } from './core/methods.js';
export {
  tensor, zeros, ones, empty, full, arange, linspace, eye, rand, randn, randint, zerosLike, onesLike, randnLike,
  cat, stack, where, manualSeed, getRngState, setRngState, type TensorOptions,
} from './core/creation.js';
export { scope, memory } from './core/memory.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled, detectAnomaly, setAnomalyEnabled } from './core/autograd.js';
export * as autograd from './core/autograd.js';
export { DTYPES, isFloatingDType, type DType, type DeviceLike, type Layout, type MemoryFormat, type Scalar } from './core/dtype.js';
export { intercept, unintercepted, type Interceptor, type OpCall } from './core/dispatch.js';
export * as ops from './ops/index.js';
export { classifyBlas, isFastBlas, type BlasKind } from './native/blas.js';

import { Tensor } from './core/tensor.js';

/** Frees a tensor (or every tensor in an array or object) now. */
export function dispose(value: Tensor | Tensor[] | Record<string, Tensor>): void {
  if (value instanceof Tensor) value.dispose();
  else for (const t of Object.values(value)) t.dispose();
}

/** Keeps a tensor past the end of its scope. */
export function keep<T extends Tensor>(t: T): T {
  return t.keep();
}

export { setNumThreads, getNumThreads } from './core/threads.js';

/** libtorch's version, location, CUDA, BLAS and threads. */
export function libtorchInfo() {
  return native.info();
}

/** Whether this libtorch has CUDA and a GPU is visible. */
export const cuda = {
  isAvailable: (): boolean => native.info().cuda,
  deviceCount: (): number => native.info().cudaDevices,
};
export * as safetensors from './io/safetensors.js';
export { round, isRepresentable, withPrecision, PrecisionPolicy, currentPrecision, FORMATS as PRECISION_FORMATS, formatOf, RoundToFormat, DelayedScaling, Fp8Recipe, withFp8, RoundingCounter, countRounding, roundingCounter, type RoundingTally, type DelayedScalingOptions, type Fp8RecipeOptions, type FloatFormat, type FormatName, type FormatLike, type RoundOptions, type PrecisionOptions } from './precision/index.js';
export * as nn from './nn/index.js';
export * as losses from './losses/index.js';
export * as optim from './optim/index.js';
export * as data from './data/index.js';
export * as train from './train/index.js';
export * as audit from './audit/index.js';
export * as stats from './stats/index.js';
export * as stable from './stable/index.js';
export * as plot from './plot/index.js';
export * as amp from './amp/index.js';
export { autocast, type AutocastOptions } from './amp/autocast.js';
export { Guard, NonFiniteError, guard, type GuardOptions, type GuardStepResult } from './guard/index.js';
export * as log from './log/index.js';
export * as dashboard from './dashboard/index.js';
export * as distributed from './distributed/index.js';
