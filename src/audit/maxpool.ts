// MaxPool2d with a selectable backward rule (Boustany 2024, arXiv 2401.02736,
// "On the numerical reliability of nonsmooth autodiff: a MaxPool case study").
// The forward value is always libtorch's max_pool2d. Backward, per window with
// k maxima tied exactly (in the tensor's own floating-point values):
//
//   native    libtorch's rule: the window's whole gradient goes to the one
//             argmax that max_pool2d_with_indices recorded.
//   minimal   the gradient is split equally, g/k to each of the k tied maxima
//             (the minimal-norm element of the convex hull of the tied
//             elements' one-hot gradients). Windows that overlap (stride <
//             kernel) each send their share, and shares add up (col2im sums).
//   β         MaxPool-β = β·minimal + (1 − β)·native, for any β ≥ 0 (β = 0 is
//             native, β = 1 minimal; β > 1 leaves the subdifferential and
//             magnifies the difference at ties, as the paper uses it).
//
// Without ties all rules give the same gradient (bit for bit where windows
// do not overlap). ceil_mode is not supported (the column layout below
// assumes floor-mode windows).
import { Function, type FunctionContext } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { pair, type Size2 } from '../nn/pair.js';

export type MaxPoolRule = 'native' | 'minimal' | 'beta';

export interface MaxPoolConfig {
  kernelSize: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  beta: number;
}

/** Counts ties seen by backward (set `tieRecorder.current` to collect them). */
export interface TieRecord {
  /** a label per layer (the module's path when called through MaxPool2dBeta) */
  label: string;
  /** windows, windows whose maximum is tied (k ≥ 2), and of those, windows that received a nonzero gradient */
  windows: number;
  tiedWindows: number;
  tiedWithGradient: number;
}

export const tieRecorder: { current: TieRecord[] | null } = { current: null };

/**
 * Per window of x (any float dtype), as columns [N·C, K, L]: the 0/1 mask of
 * elements equal to the window's max and the count k of such elements [N·C, 1, L].
 */
function tieMask(x: Tensor, c: MaxPoolConfig): { mask: Tensor; count: Tensor; padded: [number, number] } {
  const [n, ch, h, w] = x.shape;
  const [ph, pw] = c.padding;
  let xs = x.reshape([n * ch, 1, h, w]);
  // max_pool2d pads with -inf; im2col would pad with 0, so pad first
  if (ph > 0 || pw > 0) xs = ops.constantPadNd(xs, [pw, pw, ph, ph], -Infinity);
  const cols = ops.im2col(xs, c.kernelSize, c.dilation, [0, 0], c.stride);
  const top = cols.amax(1, true);
  const mask = cols.eq(top).to(x.dtype);
  return { mask, count: mask.sum(1, true), padded: [h + 2 * ph, w + 2 * pw] };
}

/** The minimal rule's gradient for x from the output gradient g [N, C, Ho, Wo]. */
export function minimalMaxPoolBackward(g: Tensor, x: Tensor, c: MaxPoolConfig, label = 'maxpool'): Tensor {
  return scope(() => {
    const [n, ch, h, w] = x.shape;
    const { mask, count, padded } = tieMask(x, c);
    const gl = g.reshape([n * ch, 1, -1]);
    const rec = tieRecorder.current;
    if (rec !== null) {
      const tied = count.gt(1);
      rec.push({
        label,
        windows: count.numel(),
        tiedWindows: Number(tied.sum().item()),
        tiedWithGradient: Number(ops.logicalAnd(tied, gl.ne(0)).sum().item()),
      });
    }
    const cols = mask.mul(gl.div(count));
    let gx = ops.col2im(cols, padded, c.kernelSize, c.dilation, [0, 0], c.stride);
    const [ph, pw] = c.padding;
    if (ph > 0) gx = gx.narrow(2, ph, h);
    if (pw > 0) gx = gx.narrow(3, pw, w);
    return gx.reshape([n, ch, h, w]);
  });
}

/** max_pool2d forward; backward by MaxPool-β: `MaxPoolBeta.apply(x, config, label?)`. */
export class MaxPoolBeta extends Function {
  static override forward(ctx: FunctionContext, x: Tensor, c: MaxPoolConfig, label?: string): Tensor {
    const [y, idx] = ops.maxPool2dWithIndices(x, c.kernelSize, c.stride, c.padding, c.dilation, false);
    ctx.saveForBackward(x, idx);
    idx.dispose();
    ctx.data.config = c;
    ctx.data.label = label ?? 'maxpool';
    return y;
  }

  static override backward(ctx: FunctionContext, g: Tensor): (Tensor | null)[] {
    const [x, idx] = ctx.savedTensors;
    const c = ctx.data.config as MaxPoolConfig;
    const native = (): Tensor => ops.maxPool2dWithIndicesBackward(g, x, c.kernelSize, c.stride, c.padding, c.dilation, false, idx);
    const b = c.beta;
    let gx: Tensor;
    if (b === 0 && tieRecorder.current === null) gx = native();
    else {
      const minimal = minimalMaxPoolBackward(g, x, c, ctx.data.label as string);
      if (b === 1) gx = minimal;
      else if (b === 0) gx = native();
      // the paper's two-term form (in low precision it rounds differently from native + β·(minimal − native))
      else gx = minimal.mul(b).add(native().mul(1 - b));
    }
    return [gx, null, null];
  }
}

export interface MaxPool2dBetaOptions {
  stride?: Size2;
  padding?: Size2;
  dilation?: Size2;
  /** 0: native (default), 1: minimal, any β ≥ 0: β·minimal + (1 − β)·native. */
  beta?: number;
}

export function maxPoolConfig(kernelSize: Size2, { stride, padding = 0, dilation = 1, beta = 0 }: MaxPool2dBetaOptions = {}): MaxPoolConfig {
  if (!(Number.isFinite(beta) && beta >= 0)) throw new RangeError(`MaxPool-β: beta must be a finite number ≥ 0, got ${beta}`);
  return {
    kernelSize: pair(kernelSize, 'MaxPool2dBeta: kernelSize', { min: 1 }),
    stride: pair(stride ?? kernelSize, 'MaxPool2dBeta: stride', { min: 1 }),
    padding: pair(padding, 'MaxPool2dBeta: padding'),
    dilation: pair(dilation, 'MaxPool2dBeta: dilation', { min: 1 }),
    beta,
  };
}

/** Functional max_pool2d with the MaxPool-β backward (x: [N, C, H, W]). */
export function maxPool2dBeta(x: Tensor, kernelSize: Size2, options: MaxPool2dBetaOptions = {}, label?: string): Tensor {
  if (x.ndim !== 4) throw new RangeError(`maxPool2dBeta: expected [N, C, H, W], got [${x.shape.join(', ')}]`);
  return MaxPoolBeta.apply<Tensor>(x, maxPoolConfig(kernelSize, options), label);
}

/** nn.MaxPool2d (floor mode) with the MaxPool-β backward; forward value unchanged. */
export class MaxPool2dBeta extends Module {
  readonly config: MaxPoolConfig;
  /** a name for tie records (set by swapBackwardRules to the module's path) */
  label = 'maxpool';

  constructor(kernelSize: Size2, options: MaxPool2dBetaOptions = {}) {
    super();
    this.config = maxPoolConfig(kernelSize, options);
  }

  get beta(): number {
    return this.config.beta;
  }

  forward(x: Tensor): Tensor {
    return MaxPoolBeta.apply<Tensor>(x, this.config, this.label);
  }

  override extraRepr(): string {
    const c = this.config;
    return `kernel_size=(${c.kernelSize.join(', ')}), stride=(${c.stride.join(', ')}), padding=(${c.padding.join(', ')}), beta=${c.beta}`;
  }
}
