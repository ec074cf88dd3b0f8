// The Optimizer base, as torch.optim.Optimizer: parameter groups with their
// own hyper-parameters, per-parameter state, step(), zeroGrad() and a state
// dict that keeps tensors (for safetensors) apart from JSON-able scalars.
import { enableGrad, noGrad } from '../core/autograd.js';
import { isFloatingDType } from '../core/dtype.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { copyAll } from './multi-tensor.js';
import type { StepBound, UpdateBounding } from './update-bound.js';

/** A hyper-parameter value: what JSON can carry. */
export type HyperValue = number | boolean | string | null | number[];

/**
 * One parameter group: its tensors and hyper-parameters. Schedulers write
 * `lr` (and `momentum` / `betas`) and add their own keys (`initialLr`, ...).
 */
export interface ParamGroup {
  params: Tensor[];
  lr: number;
  [key: string]: HyperValue | Tensor[] | undefined;
}

/** A group of an optimizer whose hyper-parameters are H. */
export type GroupOf<H> = H & ParamGroup;

/** What a constructor takes: tensors, or groups that override the defaults. */
export type ParamsArg<H> = Tensor[] | Tensor | (Partial<H> & { params: Tensor[] | Tensor })[];

/** A parameter's state: scalars (JSON) and tensors (kept past every scope). */
export interface ParamState {
  scalars: Record<string, number>;
  tensors: Record<string, Tensor>;
}

/**
 * An optimizer's state. `tensors` are keyed `<param index>.<name>` with
 * PyTorch's state names (`0.exp_avg`, `3.momentum_buffer`): save them as
 * safetensors. `state` and `paramGroups` are plain JSON. Parameters are
 * numbered 0, 1, ... through the groups in order, as in PyTorch.
 */
export interface OptimizerStateDict {
  state: Record<string, Record<string, number>>;
  paramGroups: (Record<string, HyperValue> & { params: number[] })[];
  tensors: Record<string, Tensor>;
}

/**
 * An optimizer that takes a pre-update copy inside its next step (the NaN
 * guard's, for skip and repair to undo an update): see Optimizer.deferCopy.
 */
export interface CopyDeferring {
  deferCopy(src: readonly Tensor[], dst: Tensor[]): void;
  settleCopy(): void;
}

/** What schedulers and wrappers need of an optimizer. */
export interface OptimizerLike {
  readonly paramGroups: ParamGroup[];
  readonly defaults: Readonly<Record<string, unknown>>;
  step<T = undefined>(closure?: () => T): T | undefined;
  zeroGrad(setToNone?: boolean): void;
  stateDict(): OptimizerStateDict;
  loadStateDict(state: OptimizerStateDict): void;
}

export abstract class Optimizer<H extends { lr: number } = { lr: number }> implements OptimizerLike, UpdateBounding {
  readonly defaults: Readonly<H>;
  readonly paramGroups: GroupOf<H>[] = [];
  /** Per-parameter state, made on a parameter's first step. */
  protected readonly state = new Map<Tensor, ParamState>();

  constructor(params: ParamsArg<H>, defaults: H) {
    this.defaults = Object.freeze({ ...defaults });
    const list = params instanceof Tensor ? [params] : params;
    if (!Array.isArray(list) || list.length === 0) throw new Error(`${this.constructor.name}: got an empty parameter list`);
    const groups = list.every((p) => p instanceof Tensor) ? [{ params: list as Tensor[] }] : list;
    for (const g of groups) {
      if (g instanceof Tensor) throw new TypeError(`${this.constructor.name}: give either tensors or groups ({ params, ... }), not both`);
      this.addParamGroup(g as Partial<H> & { params: Tensor[] | Tensor });
    }
  }

  /** Adds a group; hyper-parameters it leaves out come from the defaults. */
  addParamGroup(spec: Partial<H> & { params: Tensor[] | Tensor }): void {
    const params = spec.params instanceof Tensor ? [spec.params] : [...spec.params];
    for (const [i, p] of params.entries()) {
      if (!(p instanceof Tensor)) throw new TypeError(`${this.constructor.name}: params[${i}] is not a Tensor`);
      if (!p.isLeaf) throw new Error(`${this.constructor.name}: can't optimize a non-leaf tensor (params[${i}])`);
    }
    if (new Set(params).size !== params.length) throw new Error(`${this.constructor.name}: a parameter appears twice in one group`);
    for (const g of this.paramGroups) {
      if (g.params.some((p) => params.includes(p))) throw new Error(`${this.constructor.name}: some parameters appear in more than one parameter group`);
    }
    for (const key of Object.keys(spec)) {
      if (key !== 'params' && !(key in this.defaults)) throw new TypeError(`${this.constructor.name}: unknown option '${key}' (options: ${Object.keys(this.defaults).join(', ')})`);
    }
    const group = { ...this.defaults, ...spec, params } as unknown as GroupOf<H>;
    this.validateGroup(group);
    this.paramGroups.push(group);
  }

  /** Throws on hyper-parameters out of range. */
  protected validateGroup(_group: GroupOf<H>): void {}

  /**
   * Updates every parameter that has a gradient (under noGrad; temporaries
   * are freed). A closure, if given, is run first with grad enabled to
   * recompute the loss, which step returns.
   */
  step<T = undefined>(closure?: () => T): T | undefined {
    const loss = closure ? enableGrad(closure) : undefined;
    // a deferred copy is taken before anything is written, unless the update takes it in its own pass
    if (!this.copiesInPass) this.settleCopy();
    // the state's bounds carry forward only through a step updateBound announced (optim/update-bound.ts)
    const announced = this.announcedBounds;
    this.announcedBounds = undefined;
    this.stateBounds = undefined;
    scope(() => noGrad(() => this.update()));
    this.stateBounds = announced;
    return loss;
  }

  /**
   * Upper bounds on the state's magnitudes (max |m|, max |momentum buffer|)
   * for stepBound (optim/update-bound.ts), carried from step to step;
   * undefined when unknown: a step ran unannounced, or the state was loaded
   * or handed out by stateDict().
   */
  protected stateBounds: Readonly<Record<string, number>> | undefined;
  private announcedBounds: Readonly<Record<string, number>> | undefined;

  /**
   * A sound bound on every |Δp| of the next step() if every gradient entry
   * has |g| ≤ gradMax, or undefined where the optimizer has none
   * (optim/update-bound.ts; SGD, Adam and AdamW have one).
   */
  updateBound(gradMax: number): number | undefined {
    return this.stepBound(gradMax)?.step;
  }

  /** updateBound, for the step() that follows at once: it carries the state's bounds forward. */
  boundNextStep(gradMax: number): number | undefined {
    const b = this.stepBound(gradMax);
    if (b !== undefined) this.announcedBounds = b.state;
    return b?.step;
  }

  /** The bound on the next step and on the state after it (none by default). */
  protected stepBound(_gradMax: number): StepBound | undefined {
    return undefined;
  }

  /** Whether update() takes a deferred copy itself (it calls settleCopy() before writing what it does not copy). */
  protected readonly copiesInPass: boolean = false;
  private deferred: { index: Map<Tensor, number>; dst: Tensor[] } | undefined;

  /**
   * dst[i] ← src[i] as they are before the next step() writes them (the
   * guard's pre-update copy). An update that reads the values anyway writes
   * the copies in its own pass (Adam's fused pass); otherwise step() copies
   * first. settleCopy() must follow the step (or stand in for a step that
   * did not run, as when a loss scaler skips it): it copies what the step did
   * not write. A copy whose shape no longer fits its source is replaced in
   * dst by a new one.
   */
  deferCopy(src: readonly Tensor[], dst: Tensor[]): void {
    this.settleCopy();
    this.deferred = { index: new Map(src.map((t, i) => [t, i])), dst };
  }

  /** Takes the deferred copy of everything not yet copied (their values are still the pre-update ones). */
  settleCopy(): void {
    const d = this.deferred;
    if (d === undefined) return;
    this.deferred = undefined;
    const src = [...d.index.keys()];
    const idx = src.map((t) => d.index.get(t)!);
    if (copyAll(idx.map((i) => d.dst[i]), src)) return;
    noGrad(() => {
      src.forEach((t, k) => {
        const i = idx[k];
        if (copyAll([d.dst[i]], [t])) return;
        d.dst[i].dispose();
        d.dst[i] = t.detach().clone().keep();
      });
    });
  }

  /**
   * The deferred copies of these lists of tensors, if every tensor has one
   * (then they are no longer pending: the caller writes them); 'none' when no
   * copy is pending; 'partial' when some have one and some not.
   */
  protected takeDeferredCopies(lists: readonly (readonly Tensor[])[]): Tensor[][] | 'none' | 'partial' {
    const d = this.deferred;
    if (d === undefined) return 'none';
    const out: Tensor[][] = [];
    for (const list of lists) {
      const copies: Tensor[] = [];
      for (const t of list) {
        const i = d.index.get(t);
        if (i === undefined) return 'partial';
        copies.push(d.dst[i]);
      }
      out.push(copies);
    }
    return out;
  }

  /** These tensors' deferred copies were written (by the update's own pass). */
  protected deferredCopiesTaken(lists: readonly (readonly Tensor[])[]): void {
    const d = this.deferred;
    if (d === undefined) return;
    for (const list of lists) for (const t of list) d.index.delete(t);
  }

  /** One update of every group (runs in a scope, under noGrad). */
  protected update(): void {
    for (const group of this.paramGroups) {
      const withGrad: [Tensor, Tensor][] = [];
      for (const p of group.params) {
        const g = p.grad;
        if (g !== undefined) withGrad.push([p, g]);
      }
      this.updateGroup(group, withGrad);
    }
  }

  /** Updates the group's parameters that have gradients, [param, grad] pairs in order. */
  protected abstract updateGroup(group: GroupOf<H>, params: [Tensor, Tensor][]): void;

  /** This parameter's state, made by `init` on first use. */
  protected stateOf(p: Tensor, init: (s: ParamState) => void): ParamState {
    let s = this.state.get(p);
    if (s === undefined) {
      s = { scalars: {}, tensors: {} };
      init(s);
      for (const t of Object.values(s.tensors)) t.keep();
      this.state.set(p, s);
    }
    return s;
  }

  /**
   * Clears gradients: to none (frees them; the default, as PyTorch 2), or to
   * zero in place.
   */
  zeroGrad(setToNone = true): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        if (setToNone) {
          p.grad = null;
          continue;
        }
        const g = p.grad;
        if (g === undefined) continue;
        noGrad(() => {
          // as PyTorch: a gradient with history is detached, then zeroed in place
          if (g.gradFn !== null) ops.detach_(g);
          else if (g.requiresGrad) g.requiresGrad_(false);
          g.zero_();
        });
      }
    }
  }

  private indexOfParams(): Map<Tensor, number> {
    const index = new Map<Tensor, number>();
    for (const g of this.paramGroups) for (const p of g.params) index.set(p, index.size);
    return index;
  }

  /**
   * The state as JSON-able scalars and hyper-parameters plus named tensors.
   * The tensors are the optimizer's own (not copies): do not dispose them.
   */
  stateDict(): OptimizerStateDict {
    // the caller holds the state's own tensors now: bounds carried on them may no longer hold
    this.stateBounds = undefined;
    const index = this.indexOfParams();
    const state: OptimizerStateDict['state'] = {};
    const tensors: Record<string, Tensor> = {};
    for (const [p, s] of this.state) {
      const i = index.get(p);
      if (i === undefined) continue;
      state[i] = { ...s.scalars };
      for (const [name, t] of Object.entries(s.tensors)) tensors[`${i}.${name}`] = t;
    }
    const paramGroups = this.paramGroups.map((g) => {
      const out: Record<string, HyperValue> = {};
      for (const [k, v] of Object.entries(g)) {
        if (k === 'params' || v === undefined) continue;
        out[k] = Array.isArray(v) ? [...(v as number[])] : (v as HyperValue);
      }
      return { ...out, params: g.params.map((p) => index.get(p) as number) };
    });
    return { state, paramGroups, tensors };
  }

  /**
   * Restores a state dict (from this optimizer's stateDict, possibly through
   * JSON + safetensors): hyper-parameters per group, and per parameter its
   * scalars and copies of its tensors (floating ones cast to the parameter's
   * dtype and device, as PyTorch does). Group and parameter counts must match.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const name = this.constructor.name;
    if (!sd || !Array.isArray(sd.paramGroups)) throw new TypeError(`${name}.loadStateDict: not an optimizer state dict`);
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`${name}.loadStateDict: the state has ${sd.paramGroups.length} parameter groups, this optimizer ${this.paramGroups.length}`);
    }
    const ids: number[] = [];
    const params: Tensor[] = [];
    sd.paramGroups.forEach((g, gi) => {
      const own = this.paramGroups[gi].params;
      if (g.params.length !== own.length) {
        throw new Error(`${name}.loadStateDict: group ${gi} has ${g.params.length} parameters in the state, ${own.length} here`);
      }
      g.params.forEach((id, k) => {
        ids.push(id);
        params.push(own[k]);
      });
    });
    const byId = new Map(ids.map((id, k) => [String(id), params[k]]));
    const newState = new Map<Tensor, ParamState>();
    const tensorsById = new Map<string, Record<string, Tensor>>();
    for (const [key, t] of Object.entries(sd.tensors ?? {})) {
      const dot = key.indexOf('.');
      if (dot < 0) throw new Error(`${name}.loadStateDict: tensor key '${key}' is not '<param index>.<name>'`);
      const id = key.slice(0, dot);
      if (!byId.has(id)) throw new Error(`${name}.loadStateDict: tensor '${key}' names no parameter of the state's groups`);
      let rec = tensorsById.get(id);
      if (!rec) tensorsById.set(id, (rec = {}));
      rec[key.slice(dot + 1)] = t;
    }
    const made: Tensor[] = [];
    try {
      noGrad(() => {
        for (const id of new Set([...Object.keys(sd.state ?? {}), ...tensorsById.keys()])) {
          const p = byId.get(id);
          if (p === undefined) throw new Error(`${name}.loadStateDict: state for parameter ${id}, which no group lists`);
          const s: ParamState = { scalars: { ...(sd.state?.[id] ?? {}) }, tensors: {} };
          for (const [k, t] of Object.entries(tensorsById.get(id) ?? {})) {
            const shape = t.shape;
            const want = p.shape;
            if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
              throw new Error(`${name}.loadStateDict: state '${id}.${k}' has shape [${shape.join(', ')}], its parameter [${want.join(', ')}]`);
            }
            const target = isFloatingDType(t.dtype) ? { dtype: p.dtype, device: p.device } : { device: p.device };
            const converted = t.to(target);
            const copy = converted.clone();
            if (converted !== t) converted.dispose();
            copy.keep();
            made.push(copy);
            s.tensors[k] = copy;
          }
          newState.set(p, s);
        }
      });
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    this.disposeState();
    for (const [p, s] of newState) this.state.set(p, s);
    sd.paramGroups.forEach((g, gi) => {
      const own = this.paramGroups[gi];
      for (const [k, v] of Object.entries(g)) {
        if (k === 'params') continue;
        (own as Record<string, unknown>)[k] = Array.isArray(v) ? [...v] : v;
      }
    });
  }

  /** Frees the optimizer's state tensors (the parameters are not touched). */
  dispose(): void {
    this.disposeState();
  }

  private disposeState(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.state.clear();
    this.stateBounds = undefined;
    this.announcedBounds = undefined;
  }
}

/** Throws unless lo ≤ v (and v ≤ hi, or < hi when `open`). */
export function checkRange(opt: string, what: string, v: unknown, lo: number, hi = Infinity, open = false): void {
  if (typeof v !== 'number' || Number.isNaN(v) || v < lo || (open ? v >= hi : v > hi)) {
    const upper = hi === Infinity ? '' : open ? `, < ${hi}` : `, ≤ ${hi}`;
    throw new RangeError(`${opt}: invalid ${what} ${String(v)} (must be ≥ ${lo}${upper})`);
  }
}

/** Throws on an option the optimizer does not know (a typo would otherwise be ignored). */
export function knownOptions<O extends object>(opt: string, options: O, known: readonly string[]): O {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`${opt}: unknown option '${key}' (options: ${known.join(', ')})`);
  }
  return options;
}
