// Creating tensors: from JS data, and the factory functions with PyTorch's names.
import { native } from '../native/binding.js';
import * as ops from '../ops/index.js';
import { canonicalDType, dtypeCode, isFloatingDType, type DType, type DeviceLike } from './dtype.js';
import { scope } from './memory.js';
import { Tensor, type NestedArray } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  device?: DeviceLike;
  requiresGrad?: boolean;
}

type TypedData = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array;

function dtypeOfTypedArray(data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof BigInt64Array) return 'int64';
  throw new TypeError(`tensor(): unsupported typed array ${data.constructor.name}`);
}

function inferShape(data: unknown): number[] {
  const shape: number[] = [];
  let cur: unknown = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0];
  }
  return shape;
}

function flatten(data: unknown, shape: number[], dim: number, out: unknown[]): void {
  if (dim === shape.length) {
    if (typeof data !== 'number' && typeof data !== 'boolean') {
      throw new TypeError(`tensor(): elements must be numbers or booleans, got ${typeof data}`);
    }
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    throw new TypeError(`tensor(): ragged nested array: expected length ${shape[dim]} at depth ${dim}, got ${Array.isArray(data) ? data.length : typeof data}`);
  }
  for (const d of data) flatten(d, shape, dim + 1, out);
}

function bufferFor(values: unknown[], dtype: DType): TypedData {
  switch (dtype) {
    case 'float64': return Float64Array.from(values as number[]);
    case 'int64': return BigInt64Array.from(values as number[], (v) => BigInt(Math.trunc(Number(v))));
    case 'int32': return Int32Array.from(values as number[], Number);
    case 'int16': return Int16Array.from(values as number[], Number);
    case 'int8': return Int8Array.from(values as number[], Number);
    case 'uint8': case 'bool': return Uint8Array.from(values as number[], Number);
    default: return Float32Array.from(values as number[], Number);
  }
}

function finish(t: Tensor, options: TensorOptions): Tensor {
  let out = t;
  if (options.device !== undefined && options.device !== 'cpu') {
    const moved = ops.to.device(out, options.device, out.dtype) as Tensor;
    out.dispose();
    out = moved;
  }
  if (options.requiresGrad) out.requiresGrad_(true);
  return out;
}

/**
 * A tensor from nested arrays or a typed array (a copy). Numbers become
 * float32 unless `dtype` says otherwise (JS cannot tell 1 from 1.0, so
 * PyTorch's int64 inference for Python ints does not apply); booleans
 * become bool; typed arrays keep their type.
 */
export function tensor(data: NestedArray<number | boolean> | ArrayBufferView, options: TensorOptions & { shape?: number[] } = {}): Tensor {
  let values: ArrayBufferView;
  let shape: number[];
  let from: DType;
  if (ArrayBuffer.isView(data)) {
    from = dtypeOfTypedArray(data);
    values = data;
    const n = (data as TypedData).length;
    shape = options.shape ?? [n];
  } else {
    shape = inferShape(data);
    const flat: unknown[] = [];
    flatten(data, shape, 0, flat);
    from = flat.length > 0 && typeof flat[0] === 'boolean' ? 'bool' : 'float32';
    const target = options.dtype ? canonicalDType(options.dtype) : from;
    if (from !== 'bool' && !(target === 'float16' || target === 'bfloat16')) from = target;
    values = bufferFor(flat, from);
    if (options.shape) shape = options.shape;
  }
  const target = options.dtype ? canonicalDType(options.dtype) : from;
  let t = new Tensor(native.fromData(values, dtypeCode(from), shape));
  if (target !== from) {
    const cast = ops.to.dtype(t, target) as Tensor;
    t.dispose();
    t = cast;
  }
  return finish(t, options);
}

function factoryArgs(options: TensorOptions): { dtype: DType; device?: DeviceLike } {
  return { dtype: options.dtype ? canonicalDType(options.dtype) : 'float32', ...(options.device ? { device: options.device } : {}) };
}

function sizeArg(size: number | number[], what: string): number[] {
  const s = typeof size === 'number' ? [size] : size;
  if (!Array.isArray(s) || s.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TypeError(`${what}: size must be non-negative integers, got ${JSON.stringify(size)}`);
  }
  return s;
}

export function zeros(size: number | number[], options: TensorOptions = {}): Tensor {
  return finish(ops.zeros(sizeArg(size, 'zeros'), factoryArgs(options)), { requiresGrad: options.requiresGrad });
}

export function ones(size: number | number[], options: TensorOptions = {}): Tensor {
  return finish(ops.ones(sizeArg(size, 'ones'), factoryArgs(options)), { requiresGrad: options.requiresGrad });
}

export function empty(size: number | number[], options: TensorOptions = {}): Tensor {
  return finish(ops.empty.memory_format(sizeArg(size, 'empty'), factoryArgs(options)), { requiresGrad: options.requiresGrad });
}

export function full(size: number | number[], value: number | boolean, options: TensorOptions = {}): Tensor {
  const dtype = options.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32');
  return finish(ops.full(sizeArg(size, 'full'), value, { ...factoryArgs(options), dtype }), { requiresGrad: options.requiresGrad });
}

/** arange(end) or arange(start, end, step?), float32 unless dtype says otherwise. */
export function arange(startOrEnd: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  if (step === 0) throw new RangeError('arange: step must be non-zero');
  return finish(ops.arange.start_step(s, e, step, factoryArgs(options)), { requiresGrad: options.requiresGrad });
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  return finish(ops.linspace(start, end, steps, factoryArgs(options)), { requiresGrad: options.requiresGrad });
}

export function eye(n: number, m?: number, options: TensorOptions = {}): Tensor {
  const t = m === undefined ? ops.eye(n, factoryArgs(options)) : ops.eye.m(n, m, factoryArgs(options));
  return finish(t, { requiresGrad: options.requiresGrad });
}

/** Uniform on [0, 1). */
export function rand(size: number | number[], options: TensorOptions = {}): Tensor {
  return finish(ops.rand(sizeArg(size, 'rand'), factoryArgs(options)), { requiresGrad: options.requiresGrad });
}

/** Standard normal. */
export function randn(size: number | number[], options: TensorOptions = {}): Tensor {
  return finish(ops.randn(sizeArg(size, 'randn'), factoryArgs(options)), { requiresGrad: options.requiresGrad });
}

/** Integers uniform on [low, high), int64 unless dtype says otherwise. */
export function randint(low: number, high: number, size: number | number[], options: TensorOptions = {}): Tensor {
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  const dtype = options.dtype ? canonicalDType(options.dtype) : 'int64';
  return finish(ops.randint.low(low, high, sizeArg(size, 'randint'), { ...factoryArgs(options), dtype }), {});
}

export function zerosLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(ops.zerosLike(t, options.dtype ? { dtype: options.dtype } : {}), { requiresGrad: options.requiresGrad });
}

export function onesLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(ops.onesLike(t, options.dtype ? { dtype: options.dtype } : {}), { requiresGrad: options.requiresGrad });
}

export function randnLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(ops.randnLike(t, options.dtype ? { dtype: options.dtype } : {}), { requiresGrad: options.requiresGrad });
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return ops.cat(tensors, dim);
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  return ops.stack(tensors, dim);
}

export function where(condition: Tensor, x: Tensor | number, y: Tensor | number): Tensor {
  return scope(() => {
    const a = x instanceof Tensor ? x : full([], x, { dtype: y instanceof Tensor && isFloatingDType(y.dtype) ? y.dtype : 'float32' });
    const b = y instanceof Tensor ? y : full([], y, { dtype: a.dtype });
    return ops.where.self(condition, a, b);
  });
}

/** Seeds libtorch's default generator (rand, randn, dropout, init, shuffling). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/** The default CPU generator's state, as a uint8 tensor (torch.get_rng_state). */
export function getRngState(): Tensor {
  return new Tensor(native.getRngState());
}

/** Restores a state from getRngState() (torch.set_rng_state). */
export function setRngState(state: Tensor): void {
  if (state.dtype !== 'uint8') throw new TypeError(`setRngState: expected a uint8 tensor from getRngState(), got ${state.dtype}`);
  native.setRngState(state.id);
}
