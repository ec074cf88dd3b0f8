// Autograd from TS: grad mode, autograd.grad, anomaly mode and custom functions
// whose forward and backward are TS (as torch.autograd.Function).
import { native, type Handle } from '../native/binding.js';
import { scope } from './memory.js';
import { Tensor } from './tensor.js';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn without recording operations for autograd (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs fn with autograd recording on (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export function setGradEnabled(enabled: boolean): boolean {
  return native.setGradEnabled(enabled);
}

/**
 * libtorch's anomaly mode (a backtrace per graph node: DESIGN.md measured it
 * 90-160x slower in forward, 1.7-2x around backward alone).
 */
export function setAnomalyEnabled(enabled: boolean): boolean {
  return native.setAnomalyEnabled(enabled);
}

export function detectAnomaly<T>(fn: () => T): T {
  const prev = native.setAnomalyEnabled(true);
  try {
    return fn();
  } finally {
    native.setAnomalyEnabled(prev);
  }
}

export interface GradOptions {
  gradOutputs?: (Tensor | null)[];
  retainGraph?: boolean;
  createGraph?: boolean;
  allowUnused?: boolean;
}

/** Gradients of outputs with respect to inputs (torch.autograd.grad). */
export function grad(outputs: Tensor | Tensor[], inputs: Tensor | Tensor[], options: GradOptions = {}): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  const ids = native.grad(
    outs.map((t) => t.id),
    ins.map((t) => t.id),
    options.gradOutputs ? options.gradOutputs.map((t) => (t ? t.id : null)) : null,
    options.retainGraph ?? null,
    options.createGraph ?? false,
    options.allowUnused ?? false,
  );
  return ids.map((h) => (h === null ? null : new Tensor(h)));
}

/** What forward leaves for backward (torch.autograd.function.FunctionCtx). */
export class FunctionContext {
  private saved: Tensor[] = [];
  private released = false;
  /** Anything else backward needs (shapes, flags, numbers). */
  readonly data: Record<string, unknown> = {};
  needsInputGrad: boolean[] = [];

  saveForBackward(...tensors: Tensor[]): void {
    // own handles, outside every scope: freed when libtorch frees the node
    for (const t of tensors) {
      const h = new Tensor(native.share(t.id));
      h.keep();
      this.saved.push(h);
    }
  }

  get savedTensors(): Tensor[] {
    if (this.released || this.saved.some((t) => t.isDisposed)) {
      throw new Error('Trying to backward through the graph a second time: the saved tensors were freed (use retainGraph: true)');
    }
    return this.saved;
  }

  /** @internal called when libtorch releases the graph node's variables */
  release(): void {
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.released = true;
  }
}

type Gradients = Tensor | null | undefined | (Tensor | null | undefined)[];

/**
 * Called after each custom Function.apply with its class name, tensor inputs
 * and outputs (the NaN guard's replay records a Function as one op, so that a
 * non-finite gradient made in its backward names it).
 */
export const functionObservers: ((name: string, inputs: Tensor[], outputs: Tensor[]) => void)[] = [];

/**
 * A differentiable operation written in TS. Subclass it with static
 * `forward(ctx, ...args)` (run without grad recording) and
 * `backward(ctx, ...gradOutputs)` (one gradient per forward argument, null
 * for those that need none), then call `MyFn.apply(...args)`.
 */
export abstract class Function {
  /**
   * The NaN guard's replay records each Function as one op, named by its
   * class. false: the Function stands for the op it wraps (the precision
   * policy's rounding; a fault injector) and is not recorded.
   */
  static traced = true;

  static forward(_ctx: FunctionContext, ..._args: unknown[]): Tensor | Tensor[] {
    throw new Error(`${this.name}.forward is not implemented`);
  }

  static backward(_ctx: FunctionContext, ..._grads: Tensor[]): Gradients {
    throw new Error(`${this.name}.backward is not implemented`);
  }

  static apply<T extends Tensor | Tensor[]>(this: { forward(ctx: FunctionContext, ...a: any[]): T; backward(ctx: FunctionContext, ...g: Tensor[]): Gradients; name: string }, ...args: unknown[]): T {
    const ctx = new FunctionContext();
    const tensorArgs: number[] = [];
    args.forEach((a, i) => {
      if (a instanceof Tensor) tensorArgs.push(i);
    });
    const inputs = tensorArgs.map((i) => args[i] as Tensor);
    ctx.needsInputGrad = args.map((a) => a instanceof Tensor && a.requiresGrad);
    const recorded = native.isGradEnabled() && inputs.some((t) => t.requiresGrad);
    const result = noGrad(() => this.forward(ctx, ...args));
    const outputs = Array.isArray(result) ? result : [result];
    outputs.forEach((o, i) => {
      if (!(o instanceof Tensor)) throw new TypeError(`${this.name}.forward must return a Tensor or an array of Tensors (output ${i} is not)`);
    });
    const backwardFn = (gradIds: Handle[]): (Handle | null)[] =>
      scope(() => {
        const grads = gradIds.map((h) => new Tensor(h));
        const r = this.backward(ctx, ...grads);
        const list = Array.isArray(r) ? r : [r];
        if (list.length !== args.length) {
          throw new Error(`${this.name}.backward returned ${list.length} gradients for ${args.length} forward arguments`);
        }
        return tensorArgs.map((i) => {
          const g = list[i];
          return g instanceof Tensor ? native.share(g.id) : null;
        });
      });
    const newIds = native.customFunction(this.name, inputs.map((t) => t.id), outputs.map((t) => t.id), backwardFn, () => ctx.release());
    const wrapped = newIds.map((h) => new Tensor(h));
    for (const o of outputs) if (!inputs.includes(o)) o.dispose();
    if ((this as { traced?: boolean }).traced !== false) for (const observe of functionObservers) observe(this.name, inputs, wrapped);
    if (!recorded) ctx.release();  // no graph node owns the context
    return (Array.isArray(result) ? wrapped : wrapped[0]) as T;
  }
}
export { queueBackwardCallback } from './tensor.js';
