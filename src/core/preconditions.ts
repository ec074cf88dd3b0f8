// Argument checks for public operators whose libtorch 1.13 kernels crash the
// process (SIGSEGV, SIGFPE) or never return on malformed input instead of
// raising; found by test/fuzz.test.ts. One table, by ATen name (every
// overload): a check throws a RangeError naming the argument, and the call
// never reaches the kernel. (Internal operators with such kernels are not
// generated at all: scripts/gen-ops.mjs, CRASHES_ON_BAD_INPUT.)
import { native, type Handle } from '../native/binding.js';
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

function ndimOf(v: unknown): number | undefined {
  return shapeOf(v)?.length;
}

function dtypeOf(v: unknown): string | undefined {
  return v instanceof Tensor && !v.isDisposed ? v.dtype : undefined;
}

const sameShape = (a: number[], b: number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const show = (shape: number[]): string => `[${shape.join(', ')}]`;

let isfiniteOp = -1;
let allOp = -1;

/**
 * Does a tensor hold only finite values? One fused isfinite(x).all() through
 * the addon (not through dispatch: no interceptor sees it); true for integer
 * and bool tensors, and when the check itself cannot run (the kernel then
 * reports what is wrong).
 */
function allFinite(t: Tensor): boolean {
  if (!/^(float|bfloat|complex)/.test(t.dtype) || t.numel() === 0) return true;
  if (isfiniteOp < 0) {
    isfiniteOp = native.resolveOp('isfinite', '');
    allOp = native.resolveOp('all', '');
  }
  let finite: Handle | undefined;
  let all: Handle | undefined;
  try {
    finite = native.call(isfiniteOp, t._id) as Handle;
    all = native.call(allOp, finite) as Handle;
    return new Uint8Array(native.toBuffer(all))[0] === 1;
  } catch {
    return true;
  } finally {
    if (finite !== undefined) native.free(finite);
    if (all !== undefined) native.free(all);
  }
}

/**
 * LAPACK's SVD-based drivers (gesdd, gelsd, gelss) never return on a matrix
 * holding inf or NaN: refuse such input to the ops that reach them.
 */
function finiteMatrices(...names: string[]): Precondition {
  return (arg, op) => {
    for (const name of names) {
      const t = arg(name);
      if (t instanceof Tensor && !t.isDisposed && !allFinite(t)) {
        throw new Error(`${op}: input '${name}' holds non-finite values (LAPACK does not return on them)`);
      }
    }
  };
}

/**
 * The MKL-DNN (oneDNN) layout holds float32 only: libtorch 1.13 makes other
 * dtypes (bfloat16, ...) with the wrong element size and corrupts the heap.
 * Applies to every operator with a `layout` argument (factory functions).
 */
function mkldnnLayout(arg: ArgOf, op: string): void {
  if (arg('layout') !== 'mkldnn') return;
  const dtype = arg('dtype') ?? dtypeOf(arg('self')) ?? 'float32';
  if (typeof dtype === 'string' && dtype !== 'float32' && dtype !== 'float') {
    fail(op, `layout 'mkldnn' holds float32 tensors only, got dtype ${dtype}`);
  }
}

/** The volumetric convolution kernel divides by weight.size(1) (SIGFPE when it is 0). */
function conv3d(arg: ArgOf, op: string): void {
  const weight = shapeOf(arg('weight'));
  if (weight !== undefined && weight.length >= 2 && weight[1] === 0) {
    fail(op, `weight has size 0 in dim 1 (C_in / groups), shape ${show(weight)}`);
  }
}

function logcumsumexpOut(arg: ArgOf, op: string): void {
  const out = dtypeOf(arg('out'));
  const self = dtypeOf(arg('self'));
  if (out !== undefined && self !== undefined && out !== self) {
    fail(op, `out has dtype ${out} but self has dtype ${self}: they must match`);
  }
}

/** Batch norm's backward, fed what its forward saved: the statistics its mode reads must be there, one per channel. */
function batchNormBackward(gradName: string, invstdName: string): Precondition {
  return (arg, op) => {
    const input = shapeOf(arg('input'));
    const grad = shapeOf(arg(gradName));
    if (input === undefined) return;
    if (input.length < 2) fail(op, `input must have at least 2 dims (N, C, ...), got shape ${show(input)}`);
    if (grad !== undefined && !sameShape(grad, input)) fail(op, `${gradName} has shape ${show(grad)} but input has shape ${show(input)}`);
    const channels = input[1];
    const train = arg('train') === true;
    const needed = train ? ['save_mean', invstdName] : ['running_mean', 'running_var'];
    for (const name of ['weight', 'running_mean', 'running_var', 'save_mean', invstdName]) {
      const s = shapeOf(arg(name));
      if (s === undefined && needed.includes(name)) fail(op, `${name} is required (train = ${train})`);
      if (s !== undefined && (s.length !== 1 || s[0] !== channels)) fail(op, `${name} must have shape [${channels}] (one value per channel), got ${show(s)}`);
    }
  };
}

/**
 * The recurrent layers (lstm, gru, rnn_tanh, rnn_relu; padded input or packed
 * data + batch_sizes) index hidden states and weights by layer and direction
 * without checking them against num_layers: hidden states of other shapes,
 * too few weights or num_layers ≤ 0 read past the lists (SIGSEGV), and batch
 * sizes that grow or do not add up to the data read rows that are not there.
 */
function recurrent(kind: 'lstm' | 'gru' | 'rnn'): Precondition {
  return (arg, op) => {
    const layers = arg('num_layers');
    const directions = arg('bidirectional') === true ? 2 : 1;
    if (typeof layers === 'number' && layers < 1) fail(op, `num_layers must be at least 1, got ${layers}`);
    const stacks = typeof layers === 'number' ? layers * directions : undefined;
    const params = arg('params');
    if (Array.isArray(params) && stacks !== undefined) {
      const per = arg('has_biases') === false ? 2 : 4;
      const ok = params.length === stacks * per || (kind === 'lstm' && params.length === stacks * (per + 1));
      if (!ok) fail(op, `params must hold ${per} tensors per layer and direction (${stacks * per} for num_layers ${layers}${directions === 2 ? ', bidirectional' : ''}${kind === 'lstm' ? `; ${stacks * (per + 1)} with projections` : ''}), got ${params.length}`);
    }
    const hx = arg('hx');
    const states = kind === 'lstm' ? (Array.isArray(hx) ? hx : []) : [hx];
    if (kind === 'lstm' && Array.isArray(hx) && hx.length !== 2) fail(op, `hx must be [h0, c0] (2 tensors), got ${hx.length}`);
    const shapes = states.map(shapeOf);
    for (const [i, sh] of shapes.entries()) {
      const name = kind === 'lstm' ? `hx[${i}]` : 'hx';
      if (sh === undefined) continue;
      if (sh.length !== 3) fail(op, `${name} must be 3-D (num_layers × directions, batch, hidden), got shape ${show(sh)}`);
      if (stacks !== undefined && sh[0] !== stacks) fail(op, `${name} has ${sh[0]} layer states, num_layers ${layers}${directions === 2 ? ' × 2 directions' : ''} needs ${stacks}`);
    }
    if (shapes[0] !== undefined && shapes[1] !== undefined && shapes[0][1] !== shapes[1][1]) {
      fail(op, `h0 and c0 must have the same batch size, got shapes ${show(shapes[0])} and ${show(shapes[1])}`);
    }
    let batch: number | undefined;
    const input = shapeOf(arg('input'));
    if (input !== undefined) {
      if (input.length !== 3) fail(op, `input must be 3-D (sequence, batch, features; batch first with batch_first), got shape ${show(input)}`);
      batch = arg('batch_first') === true ? input[0] : input[1];
    }
    const data = shapeOf(arg('data'));
    const sizes = arg('batch_sizes');
    if (data !== undefined) {
      if (data.length !== 2) fail(op, `data must be 2-D (packed steps, features), got shape ${show(data)}`);
      if (sizes instanceof Tensor && !sizes.isDisposed) {
        if (sizes.shape.length !== 1 || sizes.dtype !== 'int64') fail(op, `batch_sizes must be a 1-D int64 tensor, got ${sizes.dtype} of shape ${show(sizes.shape)}`);
        const v = Array.from(sizes.data() as ArrayLike<bigint | number>, Number);
        if (v.some((b, i) => b < 1 || (i > 0 && b > v[i - 1]))) fail(op, `batch_sizes must be positive and non-increasing (as pack_padded_sequence makes them), got [${v.join(', ')}]`);
        const total = v.reduce((a, b) => a + b, 0);
        if (total !== data[0]) fail(op, `batch_sizes add up to ${total} but data has ${data[0]} rows`);
        batch = v[0];
      }
    }
    for (const [i, sh] of shapes.entries()) {
      if (sh !== undefined && batch !== undefined && sh[1] !== batch) fail(op, `${kind === 'lstm' ? `hx[${i}]` : 'hx'} is for batch ${sh[1]}, the input has batch ${batch}`);
    }
  };
}

/**
 * The backward of a k-d padding (k = 1, 2, 3) must be fed a gradient of the
 * padded output's shape: replication_pad3d_backward reads it by that shape
 * unchecked (SIGSEGV, fuzz seed 7500007).
 */
function paddingBackward(k: number): Precondition {
  return (arg, op) => {
    const self = shapeOf(arg('self'));
    const grad = shapeOf(arg('grad_output'));
    const pad = arg('padding');
    if (self === undefined || grad === undefined || !Array.isArray(pad) || pad.length !== 2 * k || !pad.every((p) => typeof p === 'number')) return;
    if (self.length !== k + 1 && self.length !== k + 2) fail(op, `self must have ${k + 1} or ${k + 2} dims, got shape ${show(self)}`);
    const want = [...self];
    for (let i = 0; i < k; i++) want[self.length - 1 - i] += (pad[2 * i] as number) + (pad[2 * i + 1] as number);
    if (want.some((d) => d < 0)) fail(op, `padding ${JSON.stringify(pad)} makes the padded shape ${show(want)} negative`);
    if (!sameShape(grad, want)) fail(op, `grad_output must have the padded output's shape ${show(want)}, got ${show(grad)}`);
  };
}

/**
 * Batch norm's statistics kernels divide by the values per channel: SIGFPE on
 * an input with no samples or no channels (batch_norm itself handles empty
 * input); per-channel tensors of another length are read past their end.
 */
function batchNormInput(arg: ArgOf, op: string): void {
  const input = shapeOf(arg('input'));
  if (input === undefined) return;
  if (input.length < 2) fail(op, `input must have at least 2 dims (N, C, ...), got shape ${show(input)}`);
  if (input[0] === 0 || input[1] === 0) fail(op, `input of shape ${show(input)} has no ${input[0] === 0 ? 'samples' : 'channels'}: libtorch 1.13's kernel divides by zero (batch_norm accepts it)`);
  for (const name of ['weight', 'bias', 'running_mean', 'running_var']) {
    const s = shapeOf(arg(name));
    if (s !== undefined && (s.length !== 1 || s[0] !== input[1])) fail(op, `${name} must have shape [${input[1]}] (one value per channel), got ${show(s)}`);
  }
}

/** An embedding's backward: one gradient row per index, every index a row of the num_weights-row result. */
function embeddingBackward(gradName: string): Precondition {
  return (arg, op) => {
    const grad = shapeOf(arg(gradName));
    const indices = arg('indices');
    const rows = arg('num_weights');
    if (typeof rows === 'number' && rows < 0) fail(op, `num_weights must be non-negative, got ${rows}`);
    if (!(indices instanceof Tensor) || indices.isDisposed || grad === undefined) return;
    const want = indices.shape;
    if (grad.length !== want.length + 1 || !sameShape(grad.slice(0, -1), want)) {
      fail(op, `${gradName} must have shape [${[...want, 'embedding_dim'].join(', ')}] (one row per index), got ${show(grad)}`);
    }
    if (typeof rows === 'number' && indices.numel() > 0 && (indices.dtype === 'int64' || indices.dtype === 'int32')) {
      const v = Array.from(indices.data() as ArrayLike<number | bigint>, Number);
      const bad = v.find((i) => i < 0 || i >= rows);
      if (bad !== undefined) fail(op, `index ${bad} is out of range for num_weights ${rows}`);
    }
  };
}

/** The embedding-bag kernel indexes a 2-D weight by rows and bags by 1-D offsets without checking either. */
function embeddingBag(arg: ArgOf, op: string): void {
  const weight = shapeOf(arg('weight'));
  const indices = shapeOf(arg('indices'));
  const offsets = shapeOf(arg('offsets'));
  if (weight !== undefined && weight.length !== 2) fail(op, `weight must be 2-D (num_embeddings, embedding_dim), got shape ${show(weight)}`);
  if (indices !== undefined && indices.length !== 1 && indices.length !== 2) fail(op, `indices must be 1-D or 2-D, got shape ${show(indices)}`);
  if (offsets !== undefined && offsets.length !== 1) fail(op, `offsets must be 1-D, got shape ${show(offsets)}`);
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
  embedding_bag: embeddingBag,
  _embedding_bag: embeddingBag,
  _embedding_bag_forward_only: embeddingBag,
  // found by the long fuzz late: SIGFPE (a division by step / by the size along dim)
  unfold_backward: (arg, op) => {
    const step = arg('step');
    const size = arg('size');
    if (typeof step === 'number' && step <= 0) fail(op, `step must be positive, got ${step}`);
    if (typeof size === 'number' && size < 0) fail(op, `size must be non-negative, got ${size}`);
    // grad_in must be the shape unfold gave: a window larger than the dim, or
    // fewer windows than unfold makes, write outside the result (heap corruption, seed 7400003)
    const sizes = arg('input_sizes');
    const dim = arg('dim');
    const grad = shapeOf(arg('grad_in'));
    if (!Array.isArray(sizes) || !sizes.every((d) => typeof d === 'number') || typeof dim !== 'number' || typeof size !== 'number' || typeof step !== 'number' || grad === undefined) return;
    const rank = Math.max(1, sizes.length);
    if (dim < -rank || dim >= rank) fail(op, `dim ${dim} is out of range for input_sizes ${show(sizes as number[])}`);
    const d = dim < 0 ? dim + rank : dim;
    const n = sizes.length === 0 ? 1 : (sizes[d] as number);
    if (size > n) fail(op, `size ${size} is larger than input_sizes[${d}] = ${n}`);
    const want = sizes.length === 0 ? [size] : [...(sizes as number[]).map((v, i) => (i === d ? Math.floor((n - size) / step) + 1 : v)), size];
    if (!sameShape(grad, want)) fail(op, `grad_in must have the shape unfold(${d}, ${size}, ${step}) gives for input_sizes ${show(sizes as number[])}: ${show(want)}, got ${show(grad)}`);
  },
  _weight_norm_interface: (arg, op) => {
    const v = shapeOf(arg('v'));
    if (v !== undefined && (v.length === 0 || v.some((d) => d === 0))) fail(op, `v must be a non-empty tensor of at least 1 dim, got shape ${show(v)}`);
  },
  slow_conv3d: conv3d,
  slow_conv3d_forward: conv3d,
  logcumsumexp: logcumsumexpOut,
  _logcumsumexp: logcumsumexpOut,
  // internal: reads rows of a matrix as if the input were 2-D
  _pdist_forward: (arg, op) => {
    const n = ndimOf(arg('self'));
    if (n !== undefined && n !== 2) fail(op, `expects a 2-D input (N, M), got ${n} dims`);
  },
  // internal: the fused kernel divides by the size of the normed dimension
  _weight_norm_interface_backward: (arg, op) => {
    const v = shapeOf(arg('saved_v'));
    const gw = shapeOf(arg('grad_w'));
    const dim = arg('dim');
    if (v === undefined) return;
    if (v.length === 0 || v.some((d) => d === 0)) fail(op, `saved_v must be a non-empty tensor of at least 1 dim, got shape ${show(v)}`);
    if (gw !== undefined && !sameShape(gw, v)) fail(op, `grad_w has shape ${show(gw)} but saved_v has shape ${show(v)}`);
    if (typeof dim === 'number' && dim !== 0 && dim !== v.length - 1) fail(op, `dim must be 0 or the last dim (${v.length - 1}), got ${dim}`);
    const along = typeof dim === 'number' && dim === v.length - 1 ? v[v.length - 1] : v[0];
    for (const name of ['saved_g', 'saved_norms']) {
      const s = shapeOf(arg(name));
      if (s !== undefined && s.reduce((a, b) => a * b, 1) !== along) fail(op, `${name} must hold ${along} values (one per slice along dim), got shape ${show(s)}`);
    }
  },
  // internal: the backward of _batch_norm_impl_index, fed what its forward saved
  _batch_norm_impl_index_backward: batchNormBackward('grad_output', 'save_var_transform'),
  replication_pad1d_backward: paddingBackward(1),
  replication_pad2d_backward: paddingBackward(2),
  replication_pad3d_backward: paddingBackward(3),
  reflection_pad1d_backward: paddingBackward(1),
  reflection_pad2d_backward: paddingBackward(2),
  reflection_pad3d_backward: paddingBackward(3),
  lstm: recurrent('lstm'),
  gru: recurrent('gru'),
  rnn_tanh: recurrent('rnn'),
  rnn_relu: recurrent('rnn'),
  native_batch_norm: batchNormInput,
  // the same statistics kernel (SIGFPE, fuzz seed 7500009)
  batch_norm_update_stats: batchNormInput,
  // the gradient is scattered into num_weights rows by the indices, unchecked:
  // an index past num_weights writes outside the result (heap corruption, SIGABRT: fuzz seed 7500003)
  embedding_backward: embeddingBackward('grad'),
  embedding_dense_backward: embeddingBackward('grad_output'),
  embedding_sparse_backward: embeddingBackward('grad'),
  // public, and the same kernel: SIGSEGV without the saved statistics (fuzz seed 7300004)
  native_batch_norm_backward: batchNormBackward('grad_out', 'save_invstd'),
  // the int-list bins are read for every dimension of the input's last axis
  // without a length check: [] or too few bins read past the list (SIGSEGV)
  histogramdd: (arg, op) => {
    const shape = shapeOf(arg('self'));
    const bins = arg('bins');
    if (shape === undefined) return;
    if (shape.length < 2) fail(op, `input must have at least 2 dims (…, N) with N the number of dimensions, got shape ${show(shape)}`);
    const n = shape[shape.length - 1];
    if (Array.isArray(bins) && bins.length !== n) {
      fail(op, `bins must give one count (or one tensor of edges) per dimension: ${n} for input of shape ${show(shape)}, got ${bins.length}`);
    }
  },
  pinverse: finiteMatrices('self'),
  svd: finiteMatrices('self'),
  linalg_svd: finiteMatrices('A'),
  linalg_pinv: finiteMatrices('self'),
  _linalg_svd: finiteMatrices('A'),
  linalg_lstsq: finiteMatrices('self', 'b'),
  // LU_pivots must be what lu_factor returns for LU_data: the kernel indexes
  // rows by pivots shaped by LU_data's batch and min(m, n)
  lu_unpack: (arg, op) => {
    const lu = shapeOf(arg('LU_data'));
    const piv = shapeOf(arg('LU_pivots'));
    if (lu === undefined || piv === undefined) return;
    if (lu.length < 2) fail(op, `LU_data must have at least 2 dims, got shape ${show(lu)}`);
    const want = [...lu.slice(0, -2), Math.min(lu[lu.length - 2], lu[lu.length - 1])];
    if (!sameShape(piv, want)) fail(op, `LU_pivots must have shape ${show(want)} for LU_data of shape ${show(lu)} (as lu_factor returns), got ${show(piv)}`);
  },
};

/**
 * The checks for one operator: its entry in PRECONDITIONS, and the checks that
 * go by argument name (every factory function with a `layout`).
 */
export function preconditionFor(opName: string, argNames: readonly string[]): Precondition | undefined {
  const own = Object.hasOwn(PRECONDITIONS, opName) ? PRECONDITIONS[opName] : undefined;
  if (!argNames.includes('layout')) return own;
  if (own === undefined) return mkldnnLayout;
  return (arg, op) => {
    mkldnnLayout(arg, op);
    own(arg, op);
  };
}
