// GradScaler: dynamic loss scaling with PyTorch's semantics and defaults
// (torch.cuda.amp.GradScaler of 1.13). Its two CUDA kernels have no CPU
// implementation in 1.13, so on CPU the same rules run as _foreach ops:
// unscale is one fused multiply, the finite check one fused max-|g| (before
// unscaling, as the kernel checks its input), and the host reads the flag once,
// in step(). The scale update follows _amp_update_scale_ exactly, in float32.
import { noGrad } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import type { OptimizerLike } from '../optim/optimizer.js';

export interface GradScalerOptions {
  /** Initial scale (default 2^16). */
  initScale?: number;
  /** Scale ×= this after growthInterval steps without inf/NaN (default 2). */
  growthFactor?: number;
  /** Scale ×= this on a step with inf/NaN (default 0.5). */
  backoffFactor?: number;
  /** Steps without inf/NaN before the scale grows (default 2000). */
  growthInterval?: number;
  /** false: scale() returns its input, step() just steps (default true). */
  enabled?: boolean;
}

export interface GradScalerState {
  scale: number;
  growth_factor: number;
  backoff_factor: number;
  growth_interval: number;
  _growth_tracker: number;
}

type Stage = 'ready' | 'unscaled' | 'stepped';

interface PerOptimizer {
  stage: Stage;
  /** 1 when some gradient held inf/NaN (a float32 tensor, read in step()). */
  foundInf?: Tensor;
  /** The host value, once read. */
  skipped?: boolean;
}

const f32 = Math.fround;

export class GradScaler {
  private scaleValue: number;
  private growthTracker = 0;
  private growthFactor: number;
  private backoffFactor: number;
  private growthInterval: number;
  readonly enabled: boolean;
  private readonly perOptimizer = new Map<OptimizerLike, PerOptimizer>();
  /** Steps skipped because a gradient was not finite (since construction). */
  skippedSteps = 0;
  /** The last step() of each optimizer was skipped. */
  lastStepSkipped = false;

  constructor(options: GradScalerOptions = {}) {
    const known = ['initScale', 'growthFactor', 'backoffFactor', 'growthInterval', 'enabled'];
    for (const k of Object.keys(options)) if (!known.includes(k)) throw new TypeError(`GradScaler: unknown option '${k}' (${known.join(', ')})`);
    this.enabled = options.enabled ?? true;
    this.scaleValue = f32(options.initScale ?? 2 ** 16);
    this.growthFactor = options.growthFactor ?? 2;
    this.backoffFactor = options.backoffFactor ?? 0.5;
    this.growthInterval = options.growthInterval ?? 2000;
    if (!(this.scaleValue > 0) || !Number.isFinite(this.scaleValue)) throw new RangeError(`GradScaler: initScale must be a positive finite number, got ${String(options.initScale)}`);
    if (!(this.growthFactor > 1)) throw new RangeError(`GradScaler: growthFactor must be > 1, got ${this.growthFactor}`);
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1)) throw new RangeError(`GradScaler: backoffFactor must be in (0, 1), got ${this.backoffFactor}`);
    if (!Number.isInteger(this.growthInterval) || this.growthInterval <= 0) throw new RangeError(`GradScaler: growthInterval must be a positive integer, got ${this.growthInterval}`);
  }

  private state(optimizer: OptimizerLike): PerOptimizer {
    let s = this.perOptimizer.get(optimizer);
    if (s === undefined) this.perOptimizer.set(optimizer, (s = { stage: 'ready' }));
    return s;
  }

  /** outputs × scale (a tensor, or each tensor of an array). */
  scale<T extends Tensor | Tensor[]>(outputs: T): T {
    if (!this.enabled) return outputs;
    const one = (t: Tensor): Tensor => {
      if (!(t instanceof Tensor)) throw new TypeError('GradScaler.scale: expected a Tensor or an array of Tensors');
      return t.mul(this.scaleValue);
    };
    return (Array.isArray(outputs) ? outputs.map(one) : one(outputs)) as T;
  }

  /** Divides the optimizer's gradients by the scale in place and records whether any was inf/NaN. */
  unscale_(optimizer: OptimizerLike): void {
    if (!this.enabled) return;
    const s = this.state(optimizer);
    if (s.stage === 'unscaled') throw new Error('GradScaler.unscale_() has already been called on this optimizer since the last update()');
    if (s.stage === 'stepped') throw new Error('GradScaler.unscale_() is being called after step()');
    // as PyTorch: the reciprocal in float64, then float32
    const invScale = f32(1 / this.scaleValue);
    const grads: Tensor[] = [];
    for (const g of optimizer.paramGroups) for (const p of g.params) {
      const grad = p.grad;
      if (grad !== undefined) grads.push(grad);
    }
    s.foundInf?.dispose();
    s.foundInf = noGrad(() => scope(() => {
      if (grads.length === 0) return ops.zeros([], { dtype: 'float32' }).keep();
      const maxAbs = ops._foreachNorm(grads, Infinity) as Tensor[];
      const any = ops.isfinite(ops.stack(maxAbs.map((m) => (m.dtype === 'float32' ? m : m.to('float32'))))).all().logicalNot().to('float32').keep();
      if (invScale !== 1) ops._foreachMul_(grads, invScale);
      return any;
    }));
    s.stage = 'unscaled';
  }

  /**
   * Whether unscale_() found inf/NaN in this optimizer's gradients since the
   * last update(): the step() that follows skips exactly then (PyTorch keeps
   * it in `_found_inf_per_device`). One host read, reused by step() and
   * update(). false when disabled.
   */
  foundInf(optimizer: OptimizerLike): boolean {
    if (!this.enabled) return false;
    const s = this.perOptimizer.get(optimizer);
    if (s?.foundInf === undefined) throw new Error('GradScaler.foundInf(): unscale_() has not been called on this optimizer since the last update()');
    s.skipped ??= (s.foundInf.item() as number) !== 0;
    return s.skipped;
  }

  /** Unscales (if not done yet) and runs optimizer.step() unless a gradient was inf/NaN; returns whether it stepped. */
  step(optimizer: OptimizerLike): boolean {
    if (!this.enabled) {
      optimizer.step();
      return true;
    }
    const s = this.state(optimizer);
    if (s.stage === 'stepped') throw new Error('GradScaler.step() has already been called since the last update()');
    if (s.stage === 'ready') this.unscale_(optimizer);
    if (s.foundInf === undefined) throw new Error('GradScaler.step(): no inf checks were recorded for this optimizer');
    const skipped = s.skipped ?? (s.foundInf.item() as number) !== 0;
    s.skipped = skipped;
    s.stage = 'stepped';
    this.lastStepSkipped = skipped;
    if (skipped) {
      this.skippedSteps++;
      return false;
    }
    optimizer.step();
    return true;
  }

  /**
   * Updates the scale (as _amp_update_scale_): a step with inf/NaN multiplies
   * it by backoffFactor and resets the growth tracker; growthInterval clean
   * steps in a row multiply it by growthFactor (if the result is finite).
   * newScale sets it instead.
   */
  update(newScale?: number): void {
    if (!this.enabled) return;
    if (newScale !== undefined) {
      if (!(newScale > 0) || !Number.isFinite(newScale)) throw new RangeError(`GradScaler.update(newScale): a positive finite number, got ${newScale}`);
      this.scaleValue = f32(newScale);
    } else {
      const states = [...this.perOptimizer.values()].filter((s) => s.foundInf !== undefined);
      if (states.length === 0) throw new Error('GradScaler.update(): no inf checks were recorded prior to update (call step() or unscale_() first)');
      let foundInf = false;
      for (const s of states) foundInf = foundInf || (s.skipped ?? (s.foundInf!.item() as number) !== 0);
      if (foundInf) {
        this.scaleValue = f32(this.scaleValue * f32(this.backoffFactor));
        this.growthTracker = 0;
      } else {
        const successful = this.growthTracker + 1;
        if (successful === this.growthInterval) {
          const grown = f32(this.scaleValue * f32(this.growthFactor));
          if (Number.isFinite(grown)) this.scaleValue = grown;
          this.growthTracker = 0;
        } else {
          this.growthTracker = successful;
        }
      }
    }
    for (const s of this.perOptimizer.values()) s.foundInf?.dispose();
    this.perOptimizer.clear();
  }

  getScale(): number {
    return this.enabled ? this.scaleValue : 1;
  }
  getGrowthFactor(): number { return this.growthFactor; }
  setGrowthFactor(v: number): void { this.growthFactor = v; }
  getBackoffFactor(): number { return this.backoffFactor; }
  setBackoffFactor(v: number): void { this.backoffFactor = v; }
  getGrowthInterval(): number { return this.growthInterval; }
  setGrowthInterval(v: number): void { this.growthInterval = v; }
  isEnabled(): boolean { return this.enabled; }

  /** PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval, _growth_tracker ({} when disabled). */
  stateDict(): GradScalerState | Record<string, never> {
    if (!this.enabled) return {};
    return { scale: this.scaleValue, growth_factor: this.growthFactor, backoff_factor: this.backoffFactor, growth_interval: this.growthInterval, _growth_tracker: this.growthTracker };
  }

  loadStateDict(state: GradScalerState | Record<string, never>): void {
    if (!this.enabled) return;
    if (Object.keys(state).length === 0) throw new Error('GradScaler.loadStateDict: the state dict is empty, possibly because it was saved from a disabled GradScaler');
    const s = state as GradScalerState;
    for (const k of ['scale', 'growth_factor', 'backoff_factor', 'growth_interval', '_growth_tracker'] as const) {
      if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) throw new TypeError(`GradScaler.loadStateDict: '${k}' must be a finite number, got ${JSON.stringify(s[k])}`);
    }
    if (!(s.scale > 0)) throw new RangeError(`GradScaler.loadStateDict: 'scale' must be positive, got ${s.scale}`);
    if (!Number.isInteger(s._growth_tracker) || s._growth_tracker < 0) throw new RangeError(`GradScaler.loadStateDict: '_growth_tracker' must be a non-negative integer, got ${s._growth_tracker}`);
    this.scaleValue = f32(s.scale);
    this.growthFactor = s.growth_factor;
    this.backoffFactor = s.backoff_factor;
    this.growthInterval = s.growth_interval;
    this.growthTracker = s._growth_tracker;
  }
}
