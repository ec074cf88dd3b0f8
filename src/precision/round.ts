// Rounding a float32/float64 tensor to the nearest value of a format, returned
// in the input's dtype. Emulated exactly with tensor ops where every step is
// exact: find the format's ulp in |x|'s binade (a power of two, clamped at the
// subnormal ulp; from frexp in float64, or from the exponent bits of a float32),
// divide by it, round half to even, multiply back, then apply the format's
// overflow rule. libtorch's own
// float32 → float16/bfloat16 conversion is the fast path where it exists; the
// tests hold the emulation bit-exact against it.
import { isGradEnabled, noGrad, Function, type FunctionContext } from '../core/autograd.js';
import { unintercepted } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import { native } from '../native/binding.js';
import * as ops from '../ops/index.js';
import { formatOf, type FloatFormat, type FormatLike } from './formats.js';

export interface RoundOptions {
  /**
   * Clamp overflow (and ±inf) to ±maxFinite, as OCP's saturating conversion
   * does, instead of the format's rule (±inf for IEEE-like formats, NaN for E4M3).
   */
  saturate?: boolean;
  /** Always use the emulation, never libtorch's conversion (for testing). */
  emulate?: boolean;
}

/** Throws unless t can be rounded: a float32 or float64 tensor. */
export function checkRoundable(t: Tensor, what = 'round'): void {
  if (!(t instanceof Tensor)) throw new TypeError(`${what}: expected a Tensor, got ${typeof t}`);
  const dt = t.dtype;
  if (dt !== 'float32' && dt !== 'float64') {
    throw new TypeError(`${what}: expected a float32 or float64 tensor, got ${dt}` +
      (dt === 'float16' || dt === 'bfloat16' ? ' (convert it with .float() first)' : ''));
  }
}

/** Does rounding to f change some value of this dtype? (fp64 holds everything; fp32 holds float32.) */
export function formatNarrows(f: FloatFormat, dtype: string): boolean {
  if (dtype === 'float64') return f.name !== 'fp64';
  if (dtype === 'float32') return f.name !== 'fp64' && f.name !== 'fp32';
  return false;
}

/** 2^k for an integer tensor k in [-1022, 1023], built from its bits so that it is exact. */
function pow2(k: Tensor): Tensor {
  return ops.view.dtype(ops.bitwiseLeftShift(k.to('int64').add(1023), 52), 'float64');
}

/** The format's ulp in the binade of each |x| (float64), never below its subnormal ulp. */
function ulpFloat64(a: Tensor, f: FloatFormat): Tensor {
  const [, e] = ops.frexp(a);  // a = m · 2^e, m in [0.5, 1): the leading bit is 2^(e-1)
  // for 0, inf and NaN frexp gives e = 0, which the clamp makes harmless
  return pow2(e.sub(1 + f.mantissaBits).clamp(f.minNormalExponent - f.mantissaBits, 1000));
}

/**
 * The same for float32 x, from its bits: the exponent field alone is 2^E (0 for
 * zero and subnormals; clamped to 2^127 for inf and NaN), exact in float32
 * down to the subnormal ulp 2^-149 that every format here stays above.
 */
function ulpFloat32(x: Tensor, f: FloatFormat): Tensor {
  const binade = ops.view.dtype(ops.bitwiseAnd(ops.view.dtype(x, 'int32'), 0x7f800000).clamp(null, 0x7f000000), 'float32');
  return binade.mul(2 ** -f.mantissaBits).clamp(f.minSubnormal, null);
}

function fitsFloat32(f: FloatFormat): boolean {
  return f.minSubnormal >= 2 ** -149 && f.maxExponent <= 127 && f.mantissaBits <= 23;
}

function emulate(x: Tensor, f: FloatFormat, saturate: boolean): Tensor {
  // float32 inputs stay in float32 when the format's ulps are float32 numbers
  const x64 = x.dtype === 'float64' || !fitsFloat32(f);
  const xw = x64 ? x.to('float64') : x;
  const a = xw.abs();
  const ulp = x64 ? ulpFloat64(a, f) : ulpFloat32(xw, f);
  // a / ulp < 2^(mantissaBits+1) is exact, round() is half-to-even, and · ulp is exact
  let r = a.div(ulp).round().mul(ulp);
  // r rounded with an unbounded exponent: above maxFinite means overflow
  if (saturate) r = r.clamp(null, f.maxFinite);
  else r = ops.where(r.gt(f.maxFinite), f.hasInfinity ? Infinity : NaN, r);
  r = ops.copysign(r, xw);
  if (!f.negativeZero) r = ops.where(r.eq(0), 0, r); // fnuz: no −0
  return r.dtype === x.dtype ? r : r.to(x.dtype);
}

/**
 * Rounds without recording autograd and without interception (the precision
 * policy calls it from inside its interceptor and from backward).
 */
export function roundValues(x: Tensor, f: FloatFormat, options: RoundOptions = {}): Tensor {
  const saturate = options.saturate ?? false;
  return unintercepted(() => noGrad(() => scope(() => {
    const dt = x.dtype;
    if (!formatNarrows(f, dt)) return x.clone();
    // one native pass (bit-exact against libtorch's float16/bfloat16 conversion and the emulation below)
    if (!options.emulate && x.device === 'cpu') return nativeRound(x, f, saturate, false);
    return emulate(x, f, saturate);
  })));
}

/** f (saturating or not) → its id in the native rounding's format table */
const formatIds = [new Map<FloatFormat, number>(), new Map<FloatFormat, number>()];

/** The id naming (f, saturate) in native rounding calls. */
export function nativeFormatId(f: FloatFormat, saturate: boolean): number {
  const ids = formatIds[saturate ? 1 : 0];
  let id = ids.get(f);
  if (id === undefined) ids.set(f, (id = native.roundingFormat(f.mantissaBits, f.minNormalExponent, f.maxFinite, f.hasInfinity, saturate, f.negativeZero)));
  return id;
}

function nativeRound(x: Tensor, f: FloatFormat, saturate: boolean, differentiable: boolean): Tensor {
  return new Tensor(native.roundFormat(x.id, nativeFormatId(f, saturate), differentiable));
}

/**
 * x rounded, differentiable: the gradient passes straight through, rounded to
 * the format too (a C++ autograd node for CPU tensors: no JS call in backward).
 */
export function roundWithGrad(x: Tensor, f: FloatFormat, options: RoundOptions = {}): Tensor {
  if (!options.emulate && x.device === 'cpu' && formatNarrows(f, x.dtype)) return nativeRound(x, f, options.saturate ?? false, true);
  return unintercepted(() => RoundToFormat.apply<Tensor>(x, f, options));
}

/**
 * Rounding as a differentiable step: forward rounds, backward rounds the
 * incoming gradient to the same format (a straight-through estimator whose
 * gradient is stored in the format too).
 */
export class RoundToFormat extends Function {
  /** the rounding stands for the op whose output it rounds */
  static override traced = false;
  static override forward(ctx: FunctionContext, x: Tensor, f: FloatFormat, options: RoundOptions): Tensor {
    ctx.data.format = f;
    ctx.data.options = options;
    return roundValues(x, f, options);
  }

  static override backward(ctx: FunctionContext, grad: Tensor): (Tensor | null)[] {
    const f = ctx.data.format as FloatFormat;
    const options = ctx.data.options as RoundOptions;
    // apply (not roundValues) so that create_graph backward stays differentiable
    return [unintercepted(() => RoundToFormat.apply<Tensor>(grad, f, options)), null, null];
  }
}

/**
 * x rounded to the nearest value of `format` (round half to even, with the
 * format's subnormals and overflow rule), as a new tensor of x's dtype.
 * Differentiable: the gradient passes straight through, rounded to the format.
 */
export function round(x: Tensor, format: FormatLike, options: RoundOptions = {}): Tensor {
  const f = formatOf(format);
  checkRoundable(x);
  if (isGradEnabled() && x.requiresGrad) return roundWithGrad(x, f, options);
  return roundValues(x, f, options);
}

/** Whether every value of x is exactly representable in the format (NaN counts as representable). */
export function isRepresentable(x: Tensor, format: FormatLike, options: RoundOptions = {}): boolean {
  const f = formatOf(format);
  checkRoundable(x, 'isRepresentable');
  return unintercepted(() => noGrad(() => scope(() => {
    if (!formatNarrows(f, x.dtype)) return true;
    if (!options.emulate && x.device === 'cpu') return native.representable(x.id, nativeFormatId(f, options.saturate ?? false));
    return sameValues(roundValues(x, f, options), x);
  })));
}

/** Whether a and b hold the same values (NaN equal to NaN). */
export function sameValues(a: Tensor, b: Tensor): boolean {
  return unintercepted(() => noGrad(() => scope(() =>
    Boolean(ops.logicalOr(a.eq(b), ops.logicalAnd(a.isnan(), b.isnan())).all().item()))));
}
