// The precision policy: while it runs, every floating-point op output is rounded
// to the format, inputs enter ops as if stored in the format, and backward
// through the recorded graph rounds each gradient (rounding nodes).
//
// libtorch 1.13 on CPU has no float16 arithmetic (conversion works), and no
// fp8 at all, so fp16 and fp8 are always emulated: ops compute in float32 (or
// float64) and their results are rounded. bf16 is emulated the same way, for
// uniformity, although CPU bf16 kernels exist: the results are the format's
// values, held in float32 tensors. float16/bfloat16 tensors are left alone.
//
// Before each op runs, its inputs that are not yet known to hold the format's
// values (parameters, data, tensors made outside the policy) are replaced by
// rounded copies; tensors the policy produced are remembered (with their
// version counter) and never checked again. Both memories are native
// (native/round.cc): what each tensor handle is known to hold, and each
// run's rounded inputs.
//
// An op's output is rounded where it lies when nothing else holds it (no
// view, no autograd node that saved it) and backward's rounding of its
// gradient is then a C++ hook on it; otherwise it is replaced by a rounded
// copy behind a C++ rounding node (native/round.cc). Both round the same
// values; the copy keeps the exact output for the node that saved it. When
// another interceptor sees the ops too (the guard's replay, which hooks
// outputs before the policy does), every output takes the copy, so that its
// hooks see gradients rounded as before.
//
// Alone (no other interceptor, no rounding counter, no per-op select), the
// policy does its whole work on an op inside the op's native call
// (`roundsNatively`, native.callRounded): the same rounding, without an
// OpCall, a JS call per tensor or a JS object per rounded input. Its rounded
// inputs then have no JS handle: `roundedFrom` and `gradientRounded` (the
// guard's replay, itself an interceptor) know only the JS path's tensors.
import { isGradEnabled, noGrad } from '../core/autograd.js';
import { intercept, interceptorCount, replaceTensorInputs, type OpCall } from '../core/dispatch.js';
import { native } from '../native/binding.js';
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { formatOf, type FloatFormat, type FormatLike } from './formats.js';
import { roundingCounter } from './rounding-count.js';
import { formatNarrows, nativeFormatId, roundValues, roundWithGrad, sameValues, type RoundOptions } from './round.js';

export interface PrecisionOptions {
  /** Saturate overflow to ±maxFinite instead of ±inf (or NaN for E4M3). */
  saturate?: boolean;
  /**
   * Which ops run in the format (autocast's emulation): 'lower' rounds inputs
   * and output; 'fp32' leaves both; 'promote' rounds the output only when
   * every floating input already holds the format's values (an op on
   * low-precision tensors stays low precision, mixed with float32 promotes).
   * Without it every op is 'lower'.
   */
  select?: (op: string) => 'lower' | 'fp32' | 'promote';
}

/** Ops whose outputs view (alias) an input, by 'aten::name.overload'. */
let aliasing: Set<string> | undefined;
function isAliasingOp(label: string): boolean {
  if (aliasing === undefined) {
    aliasing = new Set();
    for (const s of native.schemas()) {
      const ret = s.schema.slice(s.schema.lastIndexOf('->'));
      if (/\([a-z](?: -> \*)?\)/.test(ret) && !ret.includes('!')) aliasing.add(`aten::${s.name}${s.overload ? '.' + s.overload : ''}`);
    }
  }
  return aliasing.has(label);
}

/** KEEL_ROUND_NATIVE=0: every op takes the JS interceptor, never the native path (tests compare the two). */
const roundNatively = process.env.KEEL_ROUND_NATIVE !== '0';

/** A rounded copy an op got instead of its input → that input (the guard's replay names a parameter seen through its copy). */
const roundedSources = new WeakMap<Tensor, Tensor>();

/** The tensor a policy's rounded copy was made from, if t is one. */
export function roundedFrom(t: Tensor): Tensor | undefined {
  return roundedSources.get(t);
}

/** Outputs of a policy's rounding nodes: backward rounds the gradient that reaches them. */
const gradRounded = new WeakSet<Tensor>();

/**
 * Backward rounds t's gradient to the format (t came out of a rounding node).
 * Under autocast's emulation only the low-precision ops' inputs and outputs
 * are such tensors: the gradient of a float32 op is not rounded.
 */
export function gradientRounded(t: Tensor): boolean {
  return gradRounded.has(t);
}

function tensorsOf(result: unknown): Tensor[] {
  if (result instanceof Tensor) return [result];
  if (Array.isArray(result)) return result.filter((r): r is Tensor => r instanceof Tensor);
  return [];
}

function mapTensors(result: unknown, fn: (t: Tensor) => Tensor): unknown {
  if (result instanceof Tensor) return fn(result);
  if (Array.isArray(result)) return result.map((r) => (r instanceof Tensor ? fn(r) : r));
  return result;
}

/** A format to round to, with the memory of which tensors already hold its values. */
export class PrecisionPolicy {
  readonly format: FloatFormat;
  readonly options: Readonly<RoundOptions>;
  readonly select: ((op: string) => 'lower' | 'fp32' | 'promote') | undefined;

  constructor(format: FormatLike, options: PrecisionOptions = {}) {
    this.format = formatOf(format);
    this.options = Object.freeze({ saturate: options.saturate ?? false });
    this.select = options.select;
  }

  /** Runs fn (synchronous) under this policy; the innermost running policy wins. */
  run<T>(fn: () => T): T {
    const run = new PolicyRun(this);
    active.push(run);
    if (active.length === 1) uninstall = intercept(interceptor);
    let result: T;
    try {
      result = fn();
    } finally {
      active.pop();
      if (active.length === 0 && uninstall) {
        uninstall();
        uninstall = undefined;
      }
      run.end();
    }
    if (result instanceof Promise) throw new TypeError('PrecisionPolicy.run(fn): fn must be synchronous (it returned a Promise)');
    return result;
  }

  /** x rounded to this policy's format (differentiable, like `round`). */
  round(x: Tensor): Tensor {
    return isGradEnabled() && x.requiresGrad ? roundWithGrad(x, this.format, this.options) : roundValues(x, this.format, this.options);
  }
}

/** Runs fn with every floating-point op output (and gradient) rounded to the format. */
export function withPrecision<T>(format: FormatLike, fn: () => T, options: PrecisionOptions = {}): T {
  return new PrecisionPolicy(format, options).run(fn);
}

/** The format of the innermost running policy, or undefined outside every policy. */
export function currentPrecision(): FloatFormat | undefined {
  return active.length > 0 ? active[active.length - 1].policy.format : undefined;
}

/** The innermost running policy, or undefined outside every policy. */
export function currentPolicy(): PrecisionPolicy | undefined {
  return active.length > 0 ? active[active.length - 1].policy : undefined;
}

const active: PolicyRun[] = [];
let uninstall: (() => void) | undefined;

const interceptor = {
  roundsNatively: (): boolean => active.length > 0 && active[active.length - 1].native && roundingCounter() === undefined,
  before: (call: OpCall): readonly unknown[] | undefined => (active.length > 0 ? active[active.length - 1].before(call) : undefined),
  after: (call: OpCall, result: unknown): unknown => (active.length > 0 ? active[active.length - 1].after(call, result) : result),
};

/** One run of a policy: its interceptor's state (the native run holds the rounded inputs). */
class PolicyRun {
  /** handles this run's JS path took on rounded inputs */
  private readonly handles: Tensor[] = [];
  /** the format's id for native rounding calls */
  private readonly formatId: number;
  /** the key of the native knowledge of which tensors hold the format's values (shared by the format's policies) */
  private readonly knownKey: number;
  /** whether the whole per-op work may be done natively (see `roundsNatively`) */
  readonly native: boolean;

  constructor(readonly policy: PrecisionPolicy) {
    const f = policy.format;
    this.formatId = nativeFormatId(f, policy.options.saturate ?? false);
    this.knownKey = nativeFormatId(f, false);
    this.native = roundNatively && f.name !== 'fp64' && policy.select === undefined;
    native.roundingRunBegin(this.formatId, this.knownKey, formatNarrows(f, 'float32'), formatNarrows(f, 'float64'));
  }

  end(): void {
    native.roundingRunEnd();
    // the graph holds its own references to the rounded inputs; our handles end with the run
    for (const t of this.handles) t.dispose();
    this.handles.length = 0;
  }

  private narrows(t: Tensor): boolean {
    return formatNarrows(this.policy.format, t.dtype);
  }

  /** t held only the format's values at its present version. */
  private isKnown(t: Tensor): boolean {
    return native.roundingKnown(t.id, this.knownKey);
  }

  private markKnown(t: Tensor): void {
    native.markRoundingKnown(t.id, this.knownKey);
  }

  /**
   * t as if stored in the format: the run's rounded copy of t at its present
   * version (made once, shared with the native path); with grad, through a
   * rounding node; without, undefined when t already holds only values of
   * the format (then known).
   */
  private entry(t: Tensor, grad: boolean, op: string): Tensor | undefined {
    const e = native.roundingEntry(t.id, grad);
    if (e === null) return undefined;
    let rounded: Tensor;
    if (e !== -1) {
      rounded = new Tensor(e[0]);
      // an input entering the format (data, a parameter) loses values too
      if (e[1]) roundingCounter()?.add(op, t, rounded);
    } else {
      // off the CPU: a copy per use
      const { format, options } = this.policy;
      rounded = grad ? roundWithGrad(t, format, options) : roundValues(t, format, options);
      if (!grad && !sameValues(rounded, t)) {
        rounded.dispose();
        this.markKnown(t);
        return undefined;
      }
      roundingCounter()?.add(op, t, rounded);
    }
    rounded.keep();
    this.handles.push(rounded);
    roundedSources.set(rounded, t);
    if (grad) gradRounded.add(rounded);
    this.markKnown(rounded);
    return rounded;
  }

  /** Inputs enter the op as if stored in the format (not for ops that write into an input: their output is rounded in place). */
  before(call: OpCall): readonly unknown[] | undefined {
    if (this.policy.format.name === 'fp64' || call.mutable.includes(true)) return undefined;
    if (this.policy.select !== undefined && this.policy.select(call.op) !== 'lower') return undefined;
    const inputs = call.inputs;
    const needsGrad = isGradEnabled() && inputs.some((x) => (x instanceof Tensor ? x.requiresGrad : Array.isArray(x) && x.some((y) => y instanceof Tensor && y.requiresGrad)));
    return replaceTensorInputs(inputs, (t) => {
      if (!this.narrows(t)) return t;
      const known = this.isKnown(t);
      // a leaf (parameter) or a tensor from outside the policy that needs a
      // gradient goes through a rounding node, so that its gradient is rounded too
      if (needsGrad && t.requiresGrad && (!known || t.isLeaf)) return this.entry(t, true, call.op) ?? t;
      return known ? t : this.entry(t, false, call.op) ?? t;
    });
  }

  /** Outputs are rounded to the format. */
  after(call: OpCall, result: unknown): unknown {
    const f = this.policy.format;
    if (f.name === 'fp64') return result;
    const outs = tensorsOf(result);
    // ops that write into their arguments and return nothing (the _foreach_*_ ops)
    if (outs.length === 0) return call.mutable.includes(true) ? this.roundWritten(call, result) : result;
    const args = call.inputs;
    const cast = this.policy.select?.(call.op) ?? 'lower';
    if (cast === 'fp32' || (cast === 'promote' && !this.allKnownFloating(args))) return result;
    // only an op that writes into an argument returns it
    const mutated = new Set<Tensor>();
    if (call.mutable.includes(true)) {
      for (const o of outs) {
        for (const x of args) if (x === o || (Array.isArray(x) && x.includes(o))) mutated.add(o);
      }
    }
    const gradMode = isGradEnabled();
    const counter = roundingCounter();
    // alone, the policy may round outputs where they lie (see the top of this file)
    const inPlace = counter === undefined && interceptorCount() === 1;

    const viewsKnownInputs = mutated.size === 0 && isAliasingOp(call.op) && this.allKnownFloating(args);
    return mapTensors(result, (o) => {
      if (!this.narrows(o)) return o;
      if (mutated.has(o)) {
        // in place: round in place too, unless that would corrupt a recorded graph
        if (!(gradMode && o.requiresGrad)) this.roundInPlace([o], call.op);
        return o;
      }
      if (viewsKnownInputs) {
        // a view of values already in the format: keep it a view
        this.markKnown(o);
        return o;
      }
      const withGrad = gradMode && o.requiresGrad;
      const h = counter === undefined ? native.roundOutput(o.id, this.formatId, inPlace) : -1;
      if (h !== -1) {
        if (h === o._id) {
          if (withGrad) gradRounded.add(o);
          this.markKnown(o);
          return o;
        }
        const r = new Tensor(h);
        if (withGrad) gradRounded.add(r);
        o.dispose();
        this.markKnown(r);
        return r;
      }
      const r = withGrad ? roundWithGrad(o, f, this.policy.options) : roundValues(o, f, this.policy.options);
      if (withGrad) gradRounded.add(r);
      counter?.add(call.op, o, r);
      o.dispose();
      this.markKnown(r);
      return r;
    });
  }

  /** Tensors an op wrote into, rounded where they lie; known from then on. */
  private roundInPlace(ts: Tensor[], op: string): void {
    const counter = roundingCounter();
    if (counter === undefined && ts.every((t) => t.device === 'cpu')) {
      native.roundInPlace(ts.map((t) => t.id), this.formatId);
    } else {
      noGrad(() => {
        for (const o of ts) {
          const r = roundValues(o, this.policy.format, this.policy.options);
          counter?.add(op, o, r);
          ops.copy_(o, r);
          r.dispose();
        }
      });
    }
    for (const t of ts) this.markKnown(t);
  }

  /**
   * An op that wrote into its arguments and returned nothing: the floating
   * tensors it wrote into are rounded in place (as an in-place op's output
   * is), unless that would corrupt a recorded graph.
   */
  private roundWritten(call: OpCall, result: unknown): unknown {
    const cast = this.policy.select?.(call.op) ?? 'lower';
    if (cast === 'fp32' || (cast === 'promote' && !this.allKnownFloating(call.inputs))) return result;
    const gradMode = isGradEnabled();
    const written: Tensor[] = [];
    call.mutable.forEach((m, i) => {
      if (!m) return;
      const x = call.inputs[i];
      const list = x instanceof Tensor ? [x] : Array.isArray(x) ? x : [];
      for (const t of list) {
        if (t instanceof Tensor && !t.isDisposed && this.narrows(t) && !(gradMode && t.requiresGrad)) written.push(t);
      }
    });
    if (written.length > 0) this.roundInPlace(written, call.op);
    return result;
  }

  /** Some input is a float32/float64 tensor and all such inputs hold values of the format. */
  private allKnownFloating(args: readonly unknown[]): boolean {
    let any = false;
    for (const x of args) {
      const list = x instanceof Tensor ? [x] : Array.isArray(x) ? x : [];
      for (const t of list) {
        if (!(t instanceof Tensor) || !(t.dtype === 'float32' || t.dtype === 'float64')) continue;
        if (!this.narrows(t)) return false;
        if (!this.isKnown(t)) return false;
        any = true;
      }
    }
    return any;
  }
}
