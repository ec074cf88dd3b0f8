// Scaled fp8 as fp8 is trained (Transformer Engine's delayed scaling): the
// inputs of the matrix products (linear, conv, matmul: autocast's
// low-precision list) are quantised to E4M3 with a per-tensor scale, and the
// gradient arriving at their outputs to E5M2 with its own; every other op runs
// in the input's precision. Each scale comes from a history of amax values
// (the largest |x| seen at that site in earlier steps): scale =
// fmax / max(history) / 2^margin. An amax of 0 (or not finite) keeps the
// previous scale: never a zero scale, never 0/0. The quantised values are
// round(x · scale) in the format (saturating), divided back by the scale (float32 storage).
import { Function, isGradEnabled, noGrad, type FunctionContext } from '../core/autograd.js';
import { intercept, unintercepted, type OpCall } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { LOWER_PRECISION_FP } from './autocast-lists.js';
import { formatOf, type FloatFormat, type FormatLike } from './formats.js';
import { roundValues } from './round.js';

export interface DelayedScalingOptions {
  /** The format (default 'fp8-e4m3'). */
  format?: FormatLike;
  /** How many steps of amax to keep (default 16). */
  historyLength?: number;
  /** scale = fmax / amax / 2^margin (default 0). */
  margin?: number;
  /** 'max' of the history (default) or the 'most_recent' amax. */
  algo?: 'max' | 'most_recent';
}

/** One site's delayed scaling: its amax history and scale, kept as tensors (no host reads). */
export class DelayedScaling {
  readonly format: FloatFormat;
  readonly historyLength: number;
  readonly margin: number;
  readonly algo: 'max' | 'most_recent';
  /** The scale the next quantisations use (float32, one element). */
  readonly scale: Tensor;
  /** amax per step, the newest at index 0. */
  readonly history: Tensor;
  private recorded = false;

  constructor(options: DelayedScalingOptions = {}) {
    this.format = formatOf(options.format ?? 'fp8-e4m3');
    this.historyLength = options.historyLength ?? 16;
    this.margin = options.margin ?? 0;
    this.algo = options.algo ?? 'max';
    if (!Number.isInteger(this.historyLength) || this.historyLength < 1) throw new RangeError(`DelayedScaling: historyLength must be a positive integer, got ${this.historyLength}`);
    if (!Number.isFinite(this.margin) || this.margin < 0) throw new RangeError(`DelayedScaling: margin must be ≥ 0, got ${this.margin}`);
    if (this.algo !== 'max' && this.algo !== 'most_recent') throw new TypeError(`DelayedScaling: algo must be 'max' or 'most_recent', got ${String(this.algo)}`);
    this.scale = ops.ones([], { dtype: 'float32' }).keep();
    this.history = ops.zeros([this.historyLength], { dtype: 'float32' }).keep();
  }

  /** x quantised with the current scale (not differentiable); records max |x| for the next update. */
  quantize(x: Tensor): Tensor {
    return unintercepted(() => noGrad(() => scope(() => {
      const amax = x.detach().abs().amax([]).to('float32');
      // the newest amax of this step (the largest when the site is used several times)
      if (this.recorded) ops.maximum.out(ops.select.int(this.history, 0, 0), amax, { out: ops.select.int(this.history, 0, 0) });
      else ops.copy_(ops.select.int(this.history, 0, 0), amax);
      this.recorded = true;
      const xs = x.detach().to('float32').mul(this.scale);
      // saturating, as Transformer Engine casts: a value past the delayed scale's range clips to ±fmax
      return roundValues(xs, this.format, { saturate: true }).div(this.scale).to(x.dtype);
    })));
  }

  /** At a step's end: the new scale from the history, then the history moves on (no host reads). */
  update(): void {
    if (!this.recorded) return;
    noGrad(() => scope(() => {
      const amax = this.algo === 'max' ? this.history.amax([]) : ops.select.int(this.history, 0, 0);
      const next = ops.full([], this.format.maxFinite / 2 ** this.margin, { dtype: 'float32' }).div(amax);
      // a zero (or non-finite) amax keeps the previous scale
      const ok = ops.logicalAnd(amax.gt(0), ops.isfinite(next));
      ops.copy_(this.scale, ops.where(ok, next, this.scale));
      ops.copy_(this.history, ops.roll(this.history, [1], [0]));
      ops.select.int(this.history, 0, 0).zero_();
    }));
    this.recorded = false;
  }

  dispose(): void {
    this.scale.dispose();
    this.history.dispose();
  }
}

export interface Fp8RecipeOptions {
  /** The forward format (default 'fp8-e4m3'; 'fp8-e4m3fnuz' for the fnuz variant). */
  forward?: FormatLike;
  /** The backward format (default 'fp8-e5m2'). */
  backward?: FormatLike;
  historyLength?: number;
  margin?: number;
  algo?: 'max' | 'most_recent';
}

/** x → its forward quantisation; the gradient passes straight through. */
class QuantizeInput extends Function {
  static override traced = false;
  static override forward(_ctx: FunctionContext, x: Tensor, s: DelayedScaling): Tensor {
    return s.quantize(x);
  }
  static override backward(_ctx: FunctionContext, g: Tensor): (Tensor | null)[] {
    return [g, null];
  }
}

/** Identity forward; the gradient arriving here is quantised (E5M2). */
class QuantizeGradient extends Function {
  static override traced = false;
  static override forward(ctx: FunctionContext, x: Tensor, s: DelayedScaling): Tensor {
    ctx.data.scaling = s;
    return x.detach().clone();
  }
  static override backward(ctx: FunctionContext, g: Tensor): (Tensor | null)[] {
    return [(ctx.data.scaling as DelayedScaling).quantize(g), null];
  }
}

/** The scaling state of every fp8 site of a model's step, kept across steps. */
export class Fp8Recipe {
  readonly options: Required<Fp8RecipeOptions>;
  private readonly forwardSites: DelayedScaling[] = [];
  private readonly backwardSites: DelayedScaling[] = [];
  private site = 0;
  private outputSite = 0;

  constructor(options: Fp8RecipeOptions = {}) {
    this.options = {
      forward: options.forward ?? 'fp8-e4m3', backward: options.backward ?? 'fp8-e5m2',
      historyLength: options.historyLength ?? 16, margin: options.margin ?? 0, algo: options.algo ?? 'max',
    };
    formatOf(this.options.forward);
    formatOf(this.options.backward);
  }

  private state(list: DelayedScaling[], i: number, format: FormatLike): DelayedScaling {
    while (list.length <= i) list.push(new DelayedScaling({ format, historyLength: this.options.historyLength, margin: this.options.margin, algo: this.options.algo }));
    return list[i];
  }

  /** The scales of the sites, forward then backward (for inspection and tests). */
  scales(): { forward: number[]; backward: number[] } {
    return { forward: this.forwardSites.map((s) => s.scale.item() as number), backward: this.backwardSites.map((s) => s.scale.item() as number) };
  }

  /** @internal a step begins: every site's scale moves on from the amaxes of the steps before (forward and backward). */
  begin(): void {
    for (const s of this.forwardSites) s.update();
    for (const s of this.backwardSites) s.update();
    this.site = 0;
    this.outputSite = 0;
  }

  /** @internal */
  before(call: OpCall): readonly unknown[] | undefined {
    if (!LOWER_PRECISION_FP.has(call.op) || call.mutable.includes(true)) return undefined;
    // the product's operands only: a bias (or addmm's added `self`) stays in its precision, as in Transformer Engine
    const added = call.op.startsWith('aten::add') || call.op.startsWith('aten::baddbmm') ? 'self' : 'bias';
    let replaced: unknown[] | undefined;
    call.inputs.forEach((t, i) => {
      if (!(t instanceof Tensor) || call.argNames[i] === added || call.argNames[i] === 'bias') return;
      if (t.dtype !== 'float32' && t.dtype !== 'float64') return;
      const s = this.state(this.forwardSites, this.site++, this.options.forward);
      (replaced ??= [...call.inputs])[i] = isGradEnabled() && t.requiresGrad ? QuantizeInput.apply<Tensor>(t, s) : s.quantize(t);
    });
    return replaced;
  }

  /** @internal */
  after(call: OpCall, result: unknown): unknown {
    if (!LOWER_PRECISION_FP.has(call.op) || !(result instanceof Tensor) || !isGradEnabled() || !result.requiresGrad) return result;
    const s = this.state(this.backwardSites, this.outputSite++, this.options.backward);
    const q = QuantizeGradient.apply<Tensor>(result, s);
    result.dispose();
    return q;
  }

  dispose(): void {
    for (const s of [...this.forwardSites, ...this.backwardSites]) s.dispose();
    this.forwardSites.length = 0;
    this.backwardSites.length = 0;
  }
}

/**
 * Runs fn (one training step's forward; call backward after it as usual)
 * with the matrix products in scaled fp8: E4M3 inputs, E5M2 output
 * gradients, delayed per-tensor scales kept in the recipe across steps.
 */
export function withFp8<T>(recipe: Fp8Recipe, fn: () => T): T {
  recipe.begin();
  const remove = intercept({ before: (c) => recipe.before(c), after: (c, r) => recipe.after(c, r) });
  try {
    const r = fn();
    if (r instanceof Promise) throw new TypeError('withFp8(recipe, fn): fn must be synchronous (it returned a Promise)');
    return r;
  } finally {
    remove();
  }
}
