// The Tensor: a handle to a libtorch tensor. This file holds what a handle is
// (identity, metadata, values, memory, autograd state); the operator methods
// (add, matmul, ...) are attached in core/methods.ts, above the generated ops.
import { native, type Handle } from '../native/binding.js';
import { dtypeName, type DType } from './dtype.js';
import { disposeTracked, keepTracked, scope, track, trackUnscoped, type Tracked } from './memory.js';

export type NestedArray<T> = T | NestedArray<T>[];

export interface BackwardOptions {
  retainGraph?: boolean;
  createGraph?: boolean;
  /** Accumulate gradients only into these tensors. */
  inputs?: Tensor[];
}

export interface RemovableHandle {
  remove(): void;
}

let backwardDepth = 0;
const afterBackward: (() => void)[] = [];

/**
 * Runs fn when the outermost `backward()` now running returns (as PyTorch's
 * Engine.queue_callback); a hook calls this during backward. Dropped if
 * backward throws.
 */
export function queueBackwardCallback(fn: () => void): void {
  if (backwardDepth === 0) throw new Error('queueBackwardCallback: no backward() is running');
  afterBackward.push(fn);
}

export class Tensor implements Tracked {
  /** @internal native handle, -1 once disposed */
  _id: Handle;
  /** @internal */
  _kept = false;
  /** @internal */
  _registered = false;

  /** @internal the handle `grad` returned last: owned by this tensor, freed with it */
  _owned: Tensor | undefined = undefined;

  /** @internal Wraps a native handle; use the creation functions instead. */
  constructor(id: Handle, owned = false) {
    this._id = id;
    if (owned) trackUnscoped(this);
    else track(this);
  }

  /** The native handle; throws if the tensor was disposed. */
  get id(): Handle {
    if (this._id < 0) throw new Error('this tensor was disposed');
    return this._id;
  }

  get isDisposed(): boolean {
    return this._id < 0;
  }

  get shape(): number[] {
    return native.shape(this.id);
  }

  get ndim(): number {
    return native.shape(this.id).length;
  }

  get dtype(): DType {
    return dtypeName(native.dtype(this.id));
  }

  get device(): string {
    return native.device(this.id);
  }

  numel(): number {
    return native.numel(this.id);
  }

  size(dim?: number): number | number[] {
    const s = native.shape(this.id);
    if (dim === undefined) return s;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`size(${dim}): dimension out of range for a ${s.length}-d tensor`);
    return s[d];
  }

  stride(): number[] {
    return native.strides(this.id);
  }

  /** The single value of a one-element tensor. */
  item(): number;
  item(): number | boolean;
  item(): number | boolean {
    return native.item(this.id);
  }

  /**
   * The values as a flat typed array (a copy). float16 and bfloat16 come back
   * widened to Float32Array; int64 as BigInt64Array; bool as Uint8Array.
   */
  data(): Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array {
    const dt = this.dtype;
    if (dt === 'float16' || dt === 'bfloat16') {
      return scope(() => {
        const wide = new Tensor(native.call(toDtypeOp(), this.id, 6) as Handle);
        return new Float32Array(native.toBuffer(wide.id));
      });
    }
    switch (dt) {
      case 'float32': return new Float32Array(native.toBuffer(this.id));
      case 'float64': return new Float64Array(native.toBuffer(this.id));
      case 'int64': return new BigInt64Array(native.toBuffer(this.id));
      case 'int32': return new Int32Array(native.toBuffer(this.id));
      case 'int16': return new Int16Array(native.toBuffer(this.id));
      case 'int8': return new Int8Array(native.toBuffer(this.id));
      case 'uint8': case 'bool': return new Uint8Array(native.toBuffer(this.id));
      case 'complex32': case 'complex64': case 'complex128':
        throw new Error(`data(): a ${dt} tensor has no JS typed array; read ops.viewAsReal(t) (complex32: t.to('complex64') first)`);
      default: throw new Error(`data(): a ${dt} tensor has no JS typed array; dequantize() it first`);
    }
  }

  /**
   * Nested arrays of numbers (booleans for bool), like PyTorch's tolist(); a
   * number for a 0-d tensor. Name the type you expect: `t.toArray<number[][]>()`.
   */
  toArray<T = any>(): T {
    const flat = this.data();
    const isBool = this.dtype === 'bool';
    const values: (number | boolean)[] = new Array(flat.length);
    for (let i = 0; i < flat.length; i++) {
      const v = flat[i];
      values[i] = isBool ? v !== 0 : Number(v);
    }
    const shape = this.shape;
    if (shape.length === 0) return values[0] as T;
    let pos = 0;
    const build = (d: number): NestedArray<number | boolean> => {
      const out: NestedArray<number | boolean>[] = new Array(shape[d]);
      for (let i = 0; i < shape[d]; i++) out[i] = d === shape.length - 1 ? values[pos++] : build(d + 1);
      return out;
    };
    return build(0) as T;
  }

  /** Frees the tensor now. Safe to call twice. */
  dispose(): void {
    disposeTracked(this);
  }

  /** Keeps this tensor past the end of the scope that made it. */
  keep(): this {
    keepTracked(this);
    return this;
  }

  // ---- autograd state ---------------------------------------------------------

  get requiresGrad(): boolean {
    return native.requiresGrad(this.id);
  }

  set requiresGrad(value: boolean) {
    native.setRequiresGrad(this.id, value);
  }

  requiresGrad_(value = true): this {
    native.setRequiresGrad(this.id, value);
    return this;
  }

  /**
   * The accumulated gradient, or undefined. The handle is owned by this
   * tensor: reading `grad` again returns the same object while the gradient
   * is the same tensor (reads never leak, in a scope or not), and it is freed
   * when the gradient is replaced or cleared. clone() it to keep a copy.
   */
  get grad(): Tensor | undefined {
    const g = native.getGrad(this.id);
    const last = this._owned;
    if (g === null) {
      this._owned = undefined;
      last?.dispose();
      return undefined;
    }
    if (last !== undefined && last._id >= 0 && native.sameTensor(last._id, g)) {
      native.free(g);
      return last;
    }
    last?.dispose();
    const t = new Tensor(g, true);
    this._owned = t;
    return t;
  }

  set grad(value: Tensor | undefined | null) {
    native.setGrad(this.id, value ? value.id : null);
    const last = this._owned;
    if (last !== undefined && last !== value) {
      this._owned = undefined;
      last.dispose();
    }
  }

  get isLeaf(): boolean {
    return native.isLeaf(this.id);
  }

  /** The name of the autograd node that made this tensor, e.g. 'MulBackward0'. */
  get gradFn(): string | null {
    return native.gradFnName(this.id);
  }

  retainGrad(): this {
    native.retainGrad(this.id);
    return this;
  }

  backward(gradient?: Tensor, options: BackwardOptions = {}): void {
    backwardDepth++;
    try {
      native.backward(
        [this.id],
        gradient ? [gradient.id] : null,
        options.retainGraph ?? null,
        options.createGraph ?? false,
        options.inputs ? options.inputs.map((t) => t.id) : null,
      );
    } catch (e) {
      if (backwardDepth === 1) afterBackward.length = 0;
      throw e;
    } finally {
      backwardDepth--;
    }
    // callbacks queued by hooks during this backward (DDP waits for its bucket all-reduces here)
    try {
      while (backwardDepth === 0 && afterBackward.length > 0) afterBackward.shift()!();
    } catch (e) {
      afterBackward.length = 0;
      throw e;
    }
  }

  /**
   * Calls fn with the gradient of this tensor during backward; a returned
   * tensor replaces the gradient. Tensors fn makes are freed after it returns.
   */
  registerHook(fn: (grad: Tensor) => Tensor | void | undefined | null): RemovableHandle {
    const owner = this.id;
    const hook = native.registerHook(owner, (gradId) =>
      scope(() => {
        const replacement = fn(new Tensor(gradId));
        if (replacement === undefined || replacement === null) return null;
        if (!(replacement instanceof Tensor)) {
          throw new TypeError(`registerHook: the hook must return a Tensor or nothing, got ${typeof replacement}`);
        }
        return native.share(replacement.id);
      }),
    );
    let removed = false;
    return {
      remove: () => {
        if (!removed && this._id >= 0) native.removeHook(this._id, hook);
        removed = true;
      },
    };
  }

  toString(): string {
    if (this._id < 0) return 'tensor(<disposed>)';
    const shape = this.shape;
    const n = shape.reduce((a, b) => a * b, 1);
    const body = n <= 64 ? JSON.stringify(this.toArray()) : `[${shape.join(', ')}] …`;
    const extra = this.requiresGrad ? ', requiresGrad=true' : '';
    return `tensor(${body}, dtype=${this.dtype}${this.device !== 'cpu' ? `, device=${this.device}` : ''}${extra})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

let toDtype = -1;
function toDtypeOp(): number {
  if (toDtype < 0) toDtype = native.resolveOp('to', 'dtype');
  return toDtype;
}

/** @internal Wraps a native handle (or null) returned by the addon. */
export function wrap(id: Handle | null): Tensor | null {
  return id === null ? null : new Tensor(id);
}
