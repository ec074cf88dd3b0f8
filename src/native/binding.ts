// Loads the addon built by scripts/build-native.mjs. This is the only file that
// knows the native module exists; everything else imports `native` from here.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addonFix, packageRoot } from './setup.js';

/** A tensor handle: an index into the addon's slot table. */
export type Handle = number;

export interface LibtorchInfo {
  version: string;
  library: string;
  cuda: boolean;
  cudaDevices: number;
  sgemm: string;
  /** openblas_get_corename() when OpenBLAS is loaded (the kernels it picked: 'Haswell', 'SkylakeX', 'Cooperlake', …), else '' */
  blasCore: string;
  threads: number;
  interopThreads: number;
  config: string;
  parallel: string;
}

export interface ArgumentSchema {
  name: string;
  type: string;
  kind: string;
  optional: boolean;
  n?: number;
  default?: string;
  kwargOnly: boolean;
  mutable: boolean;
}

export interface OperatorSchema {
  name: string;
  overload: string;
  schema: string;
  arguments: ArgumentSchema[];
  returns: ArgumentSchema[];
  vararg: boolean;
}

export interface NativeBinding {
  // tensors
  free(h: Handle): void;
  share(h: Handle): Handle;
  memory(): { tensors: number; bytes: number };
  shape(h: Handle): number[];
  strides(h: Handle): number[];
  dtype(h: Handle): number;
  device(h: Handle): string;
  numel(h: Handle): number;
  item(h: Handle): number | boolean;
  fromData(data: ArrayBufferView, dtype: number, shape: number[]): Handle;
  toBuffer(h: Handle): ArrayBuffer;
  sameTensor(a: Handle, b: Handle): boolean;
  // unboxed calls of the hottest overloads (native/fastops.cc); codes index fastOps()'s lists
  unary?(code: number, self: Handle): Handle;
  binary?(code: number, self: Handle, other: Handle): Handle;
  binaryScalar?(code: number, self: Handle, other: number | boolean): Handle;
  fastOps?(): { unary: string[]; binary: string[]; scalar: string[] };
  // dispatch
  resolveOp(name: string, overload: string): number;
  call(op: number, ...args: unknown[]): unknown;
  /** call under the innermost precision run, its rounding done inside; callDeclined when a tensor is off the CPU (nothing done). */
  callRounded(op: number, ...args: unknown[]): unknown;
  readonly callDeclined: symbol;
  schemas(): OperatorSchema[];
  // autograd
  backward(tensors: Handle[], grads: (Handle | null)[] | null, retainGraph: boolean | null, createGraph: boolean, inputs: Handle[] | null): void;
  grad(outputs: Handle[], inputs: Handle[], gradOutputs: (Handle | null)[] | null, retainGraph: boolean | null, createGraph: boolean, allowUnused: boolean): (Handle | null)[];
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  setAnomalyEnabled(enabled: boolean): boolean;
  requiresGrad(h: Handle): boolean;
  setRequiresGrad(h: Handle, value: boolean): void;
  getGrad(h: Handle): Handle | null;
  setGrad(h: Handle, grad: Handle | null): void;
  retainGrad(h: Handle): void;
  isLeaf(h: Handle): boolean;
  gradFnName(h: Handle): string | null;
  registerHook(h: Handle, fn: (grad: Handle) => Handle | null | undefined): number;
  removeHook(h: Handle, hook: number): void;
  customFunction(name: string, inputs: Handle[], outputs: Handle[], backward: (grads: Handle[]) => (Handle | null)[], release: (() => void) | null): Handle[];
  // autocast
  autocastEnter(device: 'cpu' | 'cuda', dtype: number, cacheEnabled: boolean, enabled: boolean): [boolean, number, boolean];
  autocastExit(device: 'cpu' | 'cuda', wasEnabled: boolean, previousDtype: number, previousCache: boolean): void;
  autocastState(): { cpu: boolean; cpuDtype: number; cuda: boolean; cudaDtype: number };
  // rounding to a format (native/round.cc: one pass; differentiable: a C++ autograd node). A format is
  // registered once (roundingFormat) and named by its id in every rounding call.
  roundingFormat(mantissaBits: number, minNormalExponent: number, maxFinite: number, hasInfinity: boolean, saturate: boolean, negativeZero: boolean): number;
  roundFormat(h: Handle, format: number, differentiable: boolean): Handle;
  /** An op's output rounded: in place (the same handle back) when nothing else holds it and inPlace, else a rounded copy; -1 off the CPU. */
  roundOutput(h: Handle, format: number, inPlace: boolean): Handle;
  /** Tensors an op wrote into, rounded in place. */
  roundInPlace(hs: Handle[], format: number): void;
  representable(h: Handle, format: number): boolean;
  // the precision policy's runs (native/round.cc): the innermost run's rounded inputs, and per tensor
  // (knowledge key: the format's id without saturation) whether it holds the format's values
  roundingRunBegin(format: number, key: number, narrowsFloat32: boolean, narrowsFloat64: boolean): void;
  roundingRunEnd(): void;
  /** An op's input under the innermost run: [its rounded copy (with grad, behind a rounding node), made by this call], null when, without grad, it holds the format already; -1 off the CPU. */
  roundingEntry(h: Handle, grad: boolean): [Handle, boolean] | null | -1;
  roundingKnown(h: Handle, key: number): boolean;
  markRoundingKnown(h: Handle, key: number): void;
  // info
  info(): LibtorchInfo;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  getRngState(): Handle;
  setRngState(state: Handle): void;
  // c10d process groups (native/distributed.cc)
  distInit(backend: string, rank: number, worldSize: number, masterAddr: string, masterPort: number, timeoutMs: number, checkCollectives: boolean): void;
  distDestroy(): void;
  distState(): { rank: number; worldSize: number; backend: string; timeoutMs: number; checkCollectives: boolean } | null;
  distAllReduce(t: Handle, op: string, async: boolean, check: boolean): number | undefined;
  distBroadcast(t: Handle, src: number, async: boolean, check: boolean): number | undefined;
  distAllGather(outputs: Handle[], input: Handle, async: boolean, check: boolean): number | undefined;
  distReduceScatter(output: Handle, input: Handle, op: string, async: boolean, check: boolean): number | undefined;
  distBarrier(async: boolean, check: boolean): number | undefined;
  distWait(work: number, timeoutMs: number | null): boolean;
  distIsCompleted(work: number): boolean;
  distBroadcastCoalesced(tensors: Handle[], src: number): void;
  distReducerNew(params: Handle[], bucketSizes: number[], onStart: () => void): number;
  distReducerArm(reducer: number, armed: boolean, forward: boolean): void;
  distReducerFinish(reducer: number, allowUnused: boolean): boolean | number[];
  distReducerFree(reducer: number): void;
  // guard (native/guard.cc); optional: the guard falls back to dispatched ops on an older addon
  guardNorms?(norms: Handle[], scalars: Handle[] | null, bufferNorms: Handle[] | null): Float64Array;
  /** As guardNorms, the first list being parameters whose gradients are normed (0 for one without). */
  guardGradNorms?(params: Handle[], scalars: Handle[] | null, bufferNorms: Handle[] | null): Float64Array;
  /** dst[i] ← src[i] when every pair has the same shape and dtype (true); else copies nothing (false). */
  copyTensors?(dst: Handle[], src: Handle[]): boolean;
  /** The default CPU generator's state into dst's bytes (a uint8 CPU tensor of ≥ ~2.5 KB), for rngRestore only. */
  rngSave?(dst: Handle): void;
  /** The default CPU generator back to a state rngSave wrote into src. */
  rngRestore?(src: Handle): void;
  // optimizer passes with no _foreach op (native/optim.cc); optional: an older addon takes the per-tensor path
  standardizeGradients?(grads: Handle[], centralize: boolean, normalize: boolean, eps: number): void;
  softplusInPlace?(ts: Handle[], beta: number, threshold: number): void;
  adamStep?(params: Handle[], grads: Handle[], expAvgs: Handle[], expAvgSqs: Handle[], negStepSizes: number[], bc2Sqrts: number[], lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, decoupled: boolean,
    paramCopies?: Handle[] | null, expAvgCopies?: Handle[] | null, expAvgSqCopies?: Handle[] | null): boolean;
  /** SGD's update in one pass per tensor (native/sgd.cc); buffers null without momentum, first[i]: buffers[i] is new (written with d). False: declined, nothing written. */
  sgdStep?(params: Handle[], grads: Handle[], buffers: Handle[] | null, first: boolean[] | null, lr: number, momentum: number, dampening: number,
    weightDecay: number, nesterov: boolean, maximize: boolean): boolean;
  /**
   * SING's multi-tensor step (native/sing.cc): per tensor the standardisation, then moments, decay,
   * softplus denominator and update in one pass; hyper = [beta1, beta2, lr, weightDecay, eps, softplusBeta, threshold].
   */
  singStep?(params: Handle[], grads: Handle[], expAvgs: Handle[], expAvgSqs: Handle[], bc2Sqrts: number[], stepSizes: number[],
    hyper: number[], softplus: boolean, centralize: boolean, normalize: boolean): void;
  /** '' when singStep's fused pass matched ATen's ops bitwise on its probe (the first call checks), else why each tensor takes ATen's ops. */
  singKernel?(): string;
  /** Lookahead's merge per pair: fast ← fast·alpha + (1 − alpha)·slow, slow ← fast (one pass each when singKernel() is ''). */
  lookaheadMerge?(fast: Handle[], slow: Handle[], alpha: number): void;
}

function load(): NativeBinding {
  // OpenMP's worker threads spin while waiting by default; on a machine whose
  // cores are shared with other work that collapses throughput (measured on
  // this 2-core machine under load: a LeNet-5 step took 49 ms spinning, 12 ms
  // passive, 14 ms on one thread). libgomp reads this when the addon loads it.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  const root = packageRoot();
  const file = join(root, 'build', 'keel.node');
  if (!existsSync(file)) {
    throw new Error(`Keel's native addon is not built (${file} is missing).\n${addonFix(root)}`);
  }
  try {
    return createRequire(import.meta.url)(file) as NativeBinding;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // the addon links libtorch by path: it was removed or moved since the build
    throw new Error(`Keel's native addon (${file}) did not load: ${msg.split('\n')[0]}\n${addonFix(root)}`, { cause: e });
  }
}

// The addon's exports object is in dictionary mode (58 functions set one by
// one); every `native.x` load on it went through V8's generic LoadIC. A copy
// made by spread has fast properties: measured ~2 % of a small op's time.
export const native: NativeBinding = { ...load() };
