// What a data set is to the loader: a length and random access to examples,
// with an optional batched fast path. TensorDataset indexes whole tensors
// along dim 0, so a batch is one index_select per tensor, not a JS loop.
import { stack, tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';

/** One example: a tensor, or a tuple of tensors (numbers allowed, e.g. a label). */
export type Example = Tensor | readonly (Tensor | number)[];

/** A batch of examples of type T: each element stacked along a new dim 0. */
export type Batch<T extends Example> = T extends Tensor ? Tensor : { -readonly [K in keyof T]: Tensor };

/**
 * A map-style data set, as PyTorch's `Dataset`: `length` examples, `get(i)`
 * for 0 ≤ i < length. Tensors that `get` makes belong to the caller's scope.
 */
export interface Dataset<T extends Example = Example> {
  readonly length: number;
  get(index: number): T;
  /**
   * Optional fast path: the batch of the examples at `indices` (int64, 1-D),
   * equal to stacking `get(i)` for each index. The loader uses it when present.
   */
  getBatch?(indices: Tensor): Batch<T>;
}

function checkIndex(index: number, length: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new RangeError(`Dataset.get: index ${index} out of range for a data set of ${length} examples`);
  }
}

/**
 * Examples are slices along dim 0 of the given tensors, which must all have
 * the same size there (as PyTorch's `TensorDataset`). The data set holds the
 * tensors, it does not copy them; `dispose()` frees them.
 */
export class TensorDataset<T extends Tensor[] = Tensor[]> implements Dataset<T> {
  readonly tensors: T;
  readonly length: number;

  constructor(...tensors: T) {
    if (tensors.length === 0) throw new TypeError('TensorDataset needs at least one tensor');
    const sizes = tensors.map((t) => {
      if (!(t instanceof Tensor)) throw new TypeError('TensorDataset: every argument must be a Tensor');
      if (t.ndim === 0) throw new RangeError('TensorDataset: tensors must have at least one dimension');
      return t.shape[0];
    });
    if (sizes.some((s) => s !== sizes[0])) {
      throw new RangeError(`TensorDataset: tensors must have the same size along dim 0, got ${sizes.join(', ')}`);
    }
    this.tensors = tensors;
    this.length = sizes[0];
  }

  /** Views of row `index` of each tensor. */
  get(index: number): T {
    checkIndex(index, this.length);
    return this.tensors.map((t) => t.select(0, index)) as T;
  }

  /** One index_select per tensor (a copy, so a batch never aliases the data set). */
  getBatch(indices: Tensor): Batch<T> {
    return this.tensors.map((t) =>
      t.device === indices.device ? t.indexSelect(0, indices) : scope(() => t.indexSelect(0, indices.to(t.device))),
    ) as Batch<T>;
  }

  /** Frees the tensors this data set holds. */
  dispose(): void {
    for (const t of this.tensors) t.dispose();
  }
}

/**
 * Stacks examples into a batch along a new dim 0 (PyTorch's default collate):
 * tensors by `stack`, numbers into an int64 tensor when all are integers and a
 * float32 one otherwise. Tensors made on the way are freed; the batch belongs
 * to the caller's scope.
 */
export function collate<T extends Example>(examples: T[]): Batch<T> {
  if (examples.length === 0) throw new RangeError('collate: no examples');
  return scope(() => {
    const first = examples[0];
    if (first instanceof Tensor) return stackTensors(examples as Tensor[], 0) as Batch<T>;
    const arity = first.length;
    for (const e of examples) {
      if (e instanceof Tensor || e.length !== arity) {
        throw new TypeError(`collate: every example must be a tuple of ${arity} elements, like the first`);
      }
    }
    const out: Tensor[] = [];
    for (let k = 0; k < arity; k++) {
      const column = examples.map((e) => (e as readonly (Tensor | number)[])[k]);
      out.push(collateColumn(column, k));
    }
    return out as Batch<T>;
  });
}

function collateColumn(column: (Tensor | number)[], k: number): Tensor {
  if (column.every((v) => typeof v === 'number')) {
    const nums = column as number[];
    return nums.every(Number.isInteger)
      ? tensor(BigInt64Array.from(nums, (v) => BigInt(v)))
      : tensor(Float32Array.from(nums));
  }
  if (column.every((v) => v instanceof Tensor)) return stackTensors(column as Tensor[], k);
  throw new TypeError(`collate: element ${k} mixes tensors and numbers across examples`);
}

function stackTensors(ts: Tensor[], k: number): Tensor {
  const shape = ts[0].shape;
  for (const t of ts) {
    const s = t.shape;
    if (s.length !== shape.length || s.some((d, i) => d !== shape[i])) {
      throw new RangeError(`collate: element ${k} has shape [${s}] in one example and [${shape}] in another; stacking needs equal shapes`);
    }
  }
  return stack(ts, 0); // a copy: the batch never aliases an example
}
