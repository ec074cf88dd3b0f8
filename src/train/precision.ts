// Training precision by Lightning's names: how a step's forward, backward and
// update run.
//   32-true / 64-true       parameters and compute in float32 / float64
//   bf16-mixed              float32 parameters, libtorch's bf16 autocast (native on CPU)
//   fp16-mixed              float32 parameters, fp16 autocast (native on CUDA, emulated on
//                           CPU over the same op lists) and a GradScaler
//   bf16-true               parameters and compute in bfloat16 (CPU kernels exist)
//   fp16-emulated, fp8-e4m3-emulated, fp8-e5m2-emulated, bf16-emulated
//                           every op and gradient rounded to the format (withPrecision)
//   fp8-e4m3-scaled         matrix products in scaled fp8 (E4M3 forward, E5M2 backward, delayed scaling)
import { autocast } from '../amp/autocast.js';
import { GradScaler, type GradScalerOptions, type GradScalerState } from '../amp/grad-scaler.js';
import type { Tensor } from '../core/tensor.js';
import type { Module } from '../nn/module.js';
import type { OptimizerLike } from '../optim/optimizer.js';
import { Fp8Recipe, withFp8 } from '../precision/fp8.js';
import { withPrecision } from '../precision/policy.js';
import type { FormatName } from '../precision/formats.js';

export const PRECISIONS = [
  '32-true', '64-true', 'bf16-mixed', 'fp16-mixed', 'bf16-true',
  'bf16-emulated', 'fp16-emulated', 'fp8-e4m3-emulated', 'fp8-e5m2-emulated', 'fp8-e4m3-scaled',
] as const;
export type PrecisionName = (typeof PRECISIONS)[number];

export function isPrecisionName(v: unknown): v is PrecisionName {
  return typeof v === 'string' && (PRECISIONS as readonly string[]).includes(v);
}

export function checkPrecisionName(v: unknown, what = 'precision'): PrecisionName {
  if (isPrecisionName(v)) return v;
  throw new RangeError(`${what}: unknown precision ${JSON.stringify(v)} (one of ${PRECISIONS.join(', ')})` +
    (v === '16-mixed' ? "; Lightning's 16-mixed is fp16-mixed here" : v === 'fp16-true' || v === '16-true' ? '; float16 has no CPU kernels in libtorch 1.13: use fp16-emulated or fp16-mixed' : ''));
}

const EMULATED: Partial<Record<PrecisionName, FormatName>> = {
  'bf16-emulated': 'bf16', 'fp16-emulated': 'fp16', 'fp8-e4m3-emulated': 'fp8-e4m3', 'fp8-e5m2-emulated': 'fp8-e5m2',
};

/** How one training step runs in a precision: wrap the forward, scale the backward, step through the scaler. */
export class TrainingPrecision {
  readonly name: PrecisionName;
  /** fp16-mixed: the loss scaler. */
  readonly scaler: GradScaler | undefined;
  private readonly recipe: Fp8Recipe | undefined;

  constructor(name: PrecisionName | string, options: { scaler?: GradScalerOptions } = {}) {
    this.name = checkPrecisionName(name);
    this.scaler = this.name === 'fp16-mixed' ? new GradScaler(options.scaler) : undefined;
    this.recipe = this.name === 'fp8-e4m3-scaled' ? new Fp8Recipe() : undefined;
  }

  /** The parameter dtype this precision trains in. */
  get parameterDtype(): 'float32' | 'float64' | 'bfloat16' {
    return this.name === '64-true' ? 'float64' : this.name === 'bf16-true' ? 'bfloat16' : 'float32';
  }

  /** Puts the model's parameters (and buffers) in this precision's dtype; call before making the optimizer. */
  setupModel<M extends Module>(model: M): M {
    if (this.parameterDtype !== 'float32') model.to(this.parameterDtype);
    return model;
  }

  /** Input batches in the parameters' dtype (floating inputs only). */
  castInput(x: Tensor): Tensor {
    const d = x.dtype;
    if ((d === 'float32' || d === 'float64' || d === 'bfloat16') && d !== this.parameterDtype) return x.to(this.parameterDtype);
    return x;
  }

  /** Runs the forward (model and loss) in this precision. */
  forward<T>(fn: () => T): T {
    switch (this.name) {
      case 'bf16-mixed': return autocast({ dtype: 'bfloat16' }, fn);
      case 'fp16-mixed': return autocast({ dtype: 'float16' }, fn);
      case 'fp8-e4m3-scaled': return withFp8(this.recipe!, fn);
      default: {
        const f = EMULATED[this.name];
        return f !== undefined ? withPrecision(f, fn) : fn();
      }
    }
  }

  /** loss.backward(), through the scaler when there is one. */
  backward(loss: Tensor): void {
    if (this.scaler !== undefined) this.scaler.scale(loss).backward();
    else loss.backward();
  }

  /** Before clipping or reading gradients: their true values (unscaled). */
  unscale(optimizer: OptimizerLike): void {
    this.scaler?.unscale_(optimizer);
  }

  /** The optimizer step (skipped by the scaler on inf/NaN gradients); whether it stepped. */
  step(optimizer: OptimizerLike): boolean {
    if (this.scaler === undefined) {
      optimizer.step();
      return true;
    }
    const stepped = this.scaler.step(optimizer);
    this.scaler.update();
    return stepped;
  }

  /** What a checkpoint keeps (the scaler's state). */
  stateDict(): { name: PrecisionName; scaler?: GradScalerState | Record<string, never> } {
    return { name: this.name, ...(this.scaler ? { scaler: this.scaler.stateDict() } : {}) };
  }

  loadStateDict(state: { name?: unknown; scaler?: unknown }): void {
    if (state.name !== undefined && state.name !== this.name) throw new Error(`precision: the checkpoint was trained in ${String(state.name)}, not ${this.name}`);
    if (this.scaler !== undefined && state.scaler !== undefined) this.scaler.loadStateDict(state.scaler as GradScalerState);
  }

  dispose(): void {
    this.recipe?.dispose();
  }
}
