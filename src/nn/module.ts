// Module: the base of every layer and model, as torch.nn.Module. Parameters
// and child modules are found by walking the module's own fields in
// definition order (a Parameter-marked Tensor, a Module), so dotted paths
// (`decoder.up3.conv.weight`) match PyTorch's when fields are named as
// PyTorch names them. Buffers are registered explicitly.
import { noGrad } from '../core/autograd.js';
import { isDType, isFloatingDType, type DType, type DeviceLike } from '../core/dtype.js';
import { Tensor } from '../core/tensor.js';

const PARAMETER = Symbol('keel.parameter');

/** Marks a tensor as a module parameter (requiresGrad on, kept past scopes). */
export function Parameter(t: Tensor, requiresGrad = true): Tensor {
  (t as Tensor & { [PARAMETER]?: boolean })[PARAMETER] = true;
  if (t.requiresGrad !== requiresGrad) t.requiresGrad_(requiresGrad);
  return t.keep();
}

export function isParameter(v: unknown): v is Tensor {
  return v instanceof Tensor && (v as Tensor & { [PARAMETER]?: boolean })[PARAMETER] === true;
}

/** The module paths being run, outermost first (the NaN guard names ops by them). */
const callStack: { path: string; module: Module }[] = [];

/** The dotted path of the module whose forward is running, or '' at top level. */
export function currentModulePath(): string {
  return callStack.length > 0 ? callStack[callStack.length - 1].path : '';
}

export type ForwardHook = (module: Module, inputs: unknown[], output: unknown) => void;

/**
 * A layer or model. `In` are forward's arguments and `Out` its result:
 * `class Net extends Module<[Tensor], Tensor>`. `call` takes its types from
 * the subclass's own `forward`, so `class Net extends Module { forward(x: Tensor): Tensor }`
 * gives `net.call(x): Tensor` as well.
 */
export abstract class Module<In extends unknown[] = any[], Out = unknown> {
  training = true;
  /** @internal buffers by name (running statistics...) */
  private readonly _buffers = new Map<string, Tensor | null>();
  /** @internal this module's path when called inside a parent's forward */
  private _path = '';
  private readonly _forwardHooks: ForwardHook[] = [];

  abstract forward(...inputs: In): Out;

  /**
   * Runs forward, recording this module's path for the tools that name
   * modules (the guard, reports), and runs forward hooks.
   */
  call<M extends Module<In, Out>>(this: M, ...inputs: Parameters<M['forward']>): ReturnType<M['forward']> {
    const parent = callStack.length > 0 ? callStack[callStack.length - 1] : undefined;
    if (parent !== undefined && this._path === '') {
      for (const [name, child] of parent.module.namedChildren()) {
        if (child === this) this._path = parent.path ? `${parent.path}.${name}` : name;
      }
    }
    callStack.push({ path: parent === undefined ? '' : this._path, module: this });
    try {
      const out = this.forward(...inputs) as ReturnType<M['forward']>;
      for (const hook of this._forwardHooks) hook(this, inputs, out);
      return out;
    } finally {
      callStack.pop();
    }
  }

  registerForwardHook(hook: ForwardHook): { remove(): void } {
    this._forwardHooks.push(hook);
    return {
      remove: () => {
        const i = this._forwardHooks.indexOf(hook);
        if (i >= 0) this._forwardHooks.splice(i, 1);
      },
    };
  }

  /** A tensor saved in the state dict but not trained (e.g. BatchNorm's running mean). */
  registerBuffer(name: string, t: Tensor | null): Tensor | null {
    if (t) t.keep();
    this._buffers.set(name, t);
    return t;
  }

  /** @internal replaces a buffer's tensor (the old one is freed). */
  protected setBuffer(name: string, t: Tensor): void {
    const old = this._buffers.get(name);
    if (!this._buffers.has(name)) throw new Error(`${this.constructor.name} has no buffer '${name}'`);
    t.keep();
    this._buffers.set(name, t);
    if (old && old !== t) old.dispose();
  }

  buffer(name: string): Tensor | null {
    const b = this._buffers.get(name);
    if (b === undefined) throw new Error(`${this.constructor.name} has no buffer '${name}'`);
    return b;
  }

  /** Own fields that are parameters or child modules, in definition order. */
  private ownEntries(): [string, unknown][] {
    return Object.entries(this).filter(([k]) => !k.startsWith('_'));
  }

  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of this.ownEntries()) if (v instanceof Module) out.push([k, v]);
    return out;
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and every descendant with its dotted path ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.namedChildren()) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  namedParameters(prefix = '', recurse = true): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, v] of this.ownEntries()) if (isParameter(v)) out.push([prefix ? `${prefix}.${k}` : k, v]);
    if (recurse) {
      for (const [name, child] of this.namedChildren()) out.push(...child.namedParameters(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  parameters(recurse = true): Tensor[] {
    return this.namedParameters('', recurse).map(([, p]) => p);
  }

  namedBuffers(prefix = '', recurse = true): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, v] of this._buffers) if (v) out.push([prefix ? `${prefix}.${k}` : k, v]);
    if (recurse) {
      for (const [name, child] of this.namedChildren()) out.push(...child.namedBuffers(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  buffers(recurse = true): Tensor[] {
    return this.namedBuffers('', recurse).map(([, b]) => b);
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Calls fn on every module, children first (as torch's Module.apply). */
  apply(fn: (m: Module) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  /** Sets every parameter's gradient to none (frees it), or to zero. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (setToNone) p.grad = null;
      else {
        const g = p.grad;
        if (g) noGrad(() => g.zero_());
      }
    }
  }

  /**
   * Parameters and buffers by their dotted names (PyTorch's key names). The
   * tensors are the module's own (not copies): do not dispose them.
   */
  stateDict(): Record<string, Tensor> {
    // PyTorch's order: each module's own parameters, then its own buffers,
    // then its children's entries (so keys list in the order torch lists them)
    const out: Record<string, Tensor> = {};
    const visit = (m: Module, prefix: string): void => {
      for (const [k, p] of m.namedParameters(prefix, false)) out[k] = p;
      for (const [k, b] of m.namedBuffers(prefix, false)) out[k] = b;
      for (const [name, child] of m.namedChildren()) visit(child, prefix ? `${prefix}.${name}` : name);
    };
    visit(this, '');
    return out;
  }

  /**
   * Copies values in from a state dict. strict: every key must match both
   * ways. Shapes must always match; dtypes are converted.
   */
  loadStateDict(state: Record<string, Tensor>, { strict = true } = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
    const own = this.stateDict();
    const missingKeys = Object.keys(own).filter((k) => !(k in state));
    const unexpectedKeys = Object.keys(state).filter((k) => !(k in own));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      throw new Error(
        `loadStateDict: keys do not match ${this.constructor.name}` +
          (missingKeys.length ? `; missing: ${missingKeys.join(', ')}` : '') +
          (unexpectedKeys.length ? `; unexpected: ${unexpectedKeys.join(', ')}` : ''),
      );
    }
    const mismatched: string[] = [];
    for (const [k, dst] of Object.entries(own)) {
      const src = state[k];
      if (src === undefined) continue;
      const a = dst.shape;
      const b = src.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) mismatched.push(`${k}: expected [${a.join(', ')}], got [${b.join(', ')}]`);
    }
    if (mismatched.length > 0) throw new Error(`loadStateDict: shape mismatch for ${mismatched.join('; ')}`);
    noGrad(() => {
      for (const [k, dst] of Object.entries(own)) {
        const src = state[k];
        if (src !== undefined) dst.copy_(src);
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  /** Converts parameters and buffers in place (dtype and/or device). */
  to(target: DType | DeviceLike | { dtype?: DType; device?: DeviceLike }): this {
    noGrad(() => {
      for (const m of this.modules()) {
        for (const [k, v] of m.ownEntries()) {
          if (!isParameter(v)) continue;
          const converted = v.to(floatOnly(v, target));
          if (converted === v) continue;
          const p = Parameter(converted.detach(), v.requiresGrad);
          converted.dispose();
          (m as unknown as Record<string, unknown>)[k] = p;
          v.dispose();
        }
        for (const [name, b] of m._buffers) {
          if (!b) continue;
          const converted = b.to(floatOnly(b, target));
          if (converted !== b) m.setBuffer(name, converted);
        }
      }
    });
    return this;
  }

  /** Frees every parameter and buffer of this module and its children. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const b of this.buffers()) b.dispose();
  }

  /** The layer's settings for toString(), as torch's extra_repr (e.g. 'in_features=3, out_features=2'). */
  extraRepr(): string {
    return '';
  }

  toString(): string {
    const extra = this.extraRepr();
    const lines = this.namedChildren().map(([n, c]) => `  (${n}): ${c.toString().replace(/\n/g, '\n  ')}`);
    if (extra) lines.unshift(...extra.split('\n').map((l) => `  ${l}`));
    if (lines.length === 0) return `${this.constructor.name}()`;
    if (this.namedChildren().length === 0 && !extra.includes('\n')) return `${this.constructor.name}(${extra})`;
    return `${this.constructor.name}(\n${lines.join('\n')}\n)`;
  }
}

/**
 * As torch's Module.to: a dtype applies to floating-point tensors only, so
 * integer buffers (BatchNorm's num_batches_tracked) keep their dtype.
 */
function floatOnly(t: Tensor, target: DType | DeviceLike | { dtype?: DType; device?: DeviceLike }): DType | DeviceLike | { dtype?: DType; device?: DeviceLike } {
  if (isFloatingDType(t.dtype)) return target;
  if (typeof target === 'string') return isDType(target) ? t.dtype : target;
  if (typeof target === 'object' && target !== null && 'dtype' in target) return { ...target, dtype: t.dtype };
  return target;
}
