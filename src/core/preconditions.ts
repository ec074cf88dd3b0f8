// Argument checks for public operators whose libtorch 1.13 kernels crash the
// process (SIGSEGV, SIGFPE) or never return on malformed input instead of
// raising; found by test/fuzz.test.ts. One table, by ATen name (every
// overload): a check throws a RangeError naming the argument, and the call
// never reaches the kernel. (Internal operators with such kernels are not
// generated at all: scripts/gen-ops.mjs, CRASHES_ON_BAD_INPUT.)
import { Tensor } from './tensor.js';

/** Reads an argument of the call by its schema name. */
export type ArgOf = (name: string) => unknown;
export type Precondition = (arg: ArgOf, op: string) => void;

function fail(op: string, message: string): never {
  throw new RangeError(`${op}: ${message}`);
}

function shapeOf(v: unknown): number[] | undefined {
  return v instanceof Tensor && !v.isDisposed ? v.shape : undefined;
}

/** Adaptive pooling loops over every output cell: a huge output size runs for days. */
function adaptiveOutputSize(arg: ArgOf, op: string): void {
  const size = arg('output_size');
  const sizes = typeof size === 'number' ? [size] : Array.isArray(size) ? (size as unknown[]) : [];
  let cells = 1;
  for (const s of sizes) {
    if (typeof s !== 'number') continue;
    if (s < 0) fail(op, `output_size must be non-negative, got ${JSON.stringify(size)}`);
    cells *= Math.max(1, s);
  }
  if (cells > 2 ** 31) fail(op, `output_size ${JSON.stringify(size)} asks for ${cells} output cells per channel (at most 2^31)`);
}

function channelShuffle(arg: ArgOf, op: string): void {
  const groups = arg('groups');
  const shape = shapeOf(arg('self'));
  if (typeof groups === 'number' && groups <= 0) fail(op, `groups must be positive, got ${groups}`);
  if (shape !== undefined && shape.length < 3) fail(op, `expects a tensor of at least 3 dims (N, C, *), got shape [${shape.join(', ')}]`);
  if (shape !== undefined && shape.some((d) => d === 0)) {
    fail(op, `the input is empty (shape [${shape.join(', ')}]): libtorch 1.13's kernel divides by zero on empty input`);
  }
  if (shape !== undefined && typeof groups === 'number' && shape[1] % groups !== 0) {
    fail(op, `the number of channels (${shape[1]}) must be divisible by groups (${groups})`);
  }
}

export const PRECONDITIONS: Record<string, Precondition> = {
  align_tensors: (arg, op) => {
    const list = arg('tensors');
    if (Array.isArray(list) && list.length === 0) fail(op, 'tensors must not be empty');
  },
  native_channel_shuffle: channelShuffle,
  channel_shuffle: channelShuffle,
  matrix_exp_backward: (arg, op) => {
    const self = shapeOf(arg('self'));
    const grad = shapeOf(arg('grad'));
    if (self === undefined || grad === undefined) return;
    if (self.length < 2 || self[self.length - 1] !== self[self.length - 2]) fail(op, `self must be a batch of square matrices, got shape [${self.join(', ')}]`);
    if (self.length !== grad.length || self.some((d, i) => d !== grad[i])) {
      fail(op, `grad has shape [${grad.join(', ')}] but self has shape [${self.join(', ')}]`);
    }
  },
  adaptive_avg_pool1d: adaptiveOutputSize,
  adaptive_avg_pool2d: adaptiveOutputSize,
  adaptive_avg_pool3d: adaptiveOutputSize,
  adaptive_max_pool1d: adaptiveOutputSize,
  adaptive_max_pool2d: adaptiveOutputSize,
  adaptive_max_pool3d: adaptiveOutputSize,
  _adaptive_avg_pool2d: adaptiveOutputSize,
  _adaptive_avg_pool3d: adaptiveOutputSize,
  mkldnn_adaptive_avg_pool2d: adaptiveOutputSize,
};
