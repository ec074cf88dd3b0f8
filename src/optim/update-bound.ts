// How far can the next step move a parameter? A sound bound on every |Δp| of
// an optimizer's next step, from a bound on every gradient entry (the NaN
// guard's checked ‖g‖₂ ≥ max|gᵢ|), so that the guard's skip and repair take
// their pre-update copy only when the update could be large (guard/guard.ts
// asks that no tensor move by more than 1e15 in L2 norm).
//
// Why a bound on Δ suffices: an update writes p' = c·p + Δ with |c| ≤ 1
// (decoupled weight decay; 1 otherwise) and p finite. |c·p| ≤ FLT_MAX, and
// when |Δ| < 2^103 (half an ulp at FLT_MAX) the exact sum lies below
// FLT_MAX + 2^103, which round-to-nearest brings back to at most FLT_MAX:
// whatever the parameter's magnitude, it stays finite. A NaN needs 0/0, ∞ − ∞
// or 0·∞, which finite operands and a denominator ≥ eps > 0 cannot give.
//
// The optimizers carry upper bounds on their state (max |m|, max |momentum
// buffer|) from step to step by the update's own recursion, each widened for
// the few float32 roundings it has, and read them from the tensors (one pass)
// whenever the recursion was broken: a step updateBound did not announce, a
// state loaded or handed out by stateDict().
import { noGrad } from '../core/autograd.js';
import { unintercepted } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

/** Below this every |Δp| leaves a finite float32 parameter finite (2^103 with room for Δ's own roundings). */
export const FINITE_STEP = 2 ** 100;

/** An optimizer that can bound its next step. */
export interface UpdateBounding {
  /**
   * A sound upper bound on |Δp| for every parameter entry in the next step(),
   * given |g| ≤ gradMax for every gradient entry; undefined when it cannot
   * bound it (e.g. Adam with eps = 0).
   */
  updateBound(gradMax: number): number | undefined;
  /**
   * updateBound, for the step() that follows at once with these gradients
   * (the NaN guard's): that step carries the bounds on the state forward, so
   * the next bound need not read the state.
   */
  boundNextStep(gradMax: number): number | undefined;
}

/** What an optimizer's bound computes: the step's bound and the state's bounds after it. */
export interface StepBound {
  step: number;
  state: Readonly<Record<string, number>>;
}

export function isUpdateBounding(o: unknown): o is UpdateBounding {
  return typeof (o as Partial<UpdateBounding> | null)?.boundNextStep === 'function';
}

/**
 * The update is the one the bound describes: `o` is an instance of exactly
 * one of these classes, and no own property replaces step, update or
 * updateGroup (a subclass or a patched instance may update otherwise).
 */
export function ownUpdate(o: object, classes: readonly (abstract new (...args: never[]) => object)[]): boolean {
  const proto = Object.getPrototypeOf(o) as object;
  if (!classes.some((c) => c.prototype === proto)) return false;
  return !['step', 'update', 'updateGroup'].some((k) => Object.prototype.hasOwnProperty.call(o, k));
}

/**
 * Every parameter is float32 or float64: the bound's argument is float32's
 * (float64 has more room). A 16-bit parameter has less (float16 overflows
 * past 65,504, half an ulp there is 16) and its state rounds by 2⁻⁹ a step,
 * beyond what the recursion widens: those get no bound.
 */
export function boundableDTypes(groups: readonly { params: readonly Tensor[] }[]): boolean {
  return groups.every((g) => g.params.every((p) => {
    const dt = p.dtype;
    return dt === 'float32' || dt === 'float64';
  }));
}

/** x widened for a few float32 roundings (2⁻²⁴ each) and float32 hyper-parameters. */
export function widen(x: number): number {
  return x * (1 + 2 ** -20);
}

/** max |x| over the tensors (0 for none), in one read; NaN if some value is NaN. */
export function maxAbs(ts: readonly Tensor[]): number {
  if (ts.length === 0) return 0;
  // unintercepted: a precision policy must not round the bound (down)
  return unintercepted(() => noGrad(() => scope(() => ops.stack(ops._foreachNorm.Scalar([...ts], Infinity)).max().item() as number)));
}
