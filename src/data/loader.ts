// The DataLoader: batches of a Dataset in a seeded order, as a resumable
// cursor. Its position (epoch, next batch) and seed are the whole state: the
// order of epoch e is a permutation drawn from Rng(seed, e), and the random
// transforms of batch k from Rng(seed, e, k), so a loader restored from a
// checkpoint yields exactly the batches an uninterrupted run would have.
import { tensor } from '../core/creation.js';
import type { DeviceLike } from '../core/dtype.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import { collate, type Batch, type Dataset, type Example } from './dataset.js';
import { Rng, drawGlobalSeed } from './rng.js';
import type { Transform } from './transforms.js';

export interface DataLoaderOptions {
  /** Examples per batch (default 1). */
  batchSize?: number;
  /** A new random order every epoch (default false). */
  shuffle?: boolean;
  /**
   * Seed of the order and of random transforms. Without it, one is drawn from
   * Keel's default generator when the loader is made (only if it shuffles or
   * transforms), so `keel.manualSeed(s)` before that makes the run repeatable.
   */
  seed?: number;
  /** Drop the last batch of an epoch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Applied to the first element of each batch (the inputs), or to the batch if it is one tensor. */
  transform?: Transform;
  /** Applied to the second element of each batch (the targets). */
  targetTransform?: Transform;
  /** Move each batch there before the transforms run (default: where the data set is). */
  device?: DeviceLike;
}

/** The loader's position, JSON-able, for checkpoints. */
export interface DataLoaderState {
  /** The epoch the next batch belongs to (0-based). */
  epoch: number;
  /** The index of the next batch within that epoch. */
  batchIndex: number;
  /** The seed of every epoch's permutation and of the random transforms. */
  seed: number;
  /** What the position refers to, checked on load. */
  length: number;
  batchSize: number;
  shuffle: boolean;
  dropLast: boolean;
}

/** The stream of every epoch's shuffled order (DistributedSampler draws its shared order from it too). */
export const SHUFFLE_STREAM = 0x5fff1e;
const TRANSFORM_STREAM = 0x7a5f0;

/**
 * Iterates a data set in batches: `for (const [x, y] of loader)`. One pass of
 * `for … of` runs from the current position to the end of the epoch; the
 * position then moves to the start of the next epoch (breaking out early
 * leaves it at the next unseen batch, so the next pass resumes there). The
 * tensors of a batch are made in the scope that is current when the batch is
 * requested, so they belong to the caller: dispose them after the step, or
 * use `forEach`, which runs each step in its own scope.
 */
export class DataLoader<T extends Example = Example> implements Iterable<Batch<T>> {
  readonly dataset: Dataset<T>;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly transform?: Transform;
  readonly targetTransform?: Transform;
  readonly device?: DeviceLike;
  #seed: number;
  #epoch = 0;
  #batchIndex = 0;
  #order: { epoch: number; indices: Int32Array } | undefined;

  constructor(dataset: Dataset<T>, options: DataLoaderOptions = {}) {
    if (dataset === null || typeof dataset !== 'object' || typeof dataset.get !== 'function' || !Number.isInteger(dataset.length) || dataset.length < 0) {
      throw new TypeError('DataLoader: dataset must have an integer length and a get(index) method');
    }
    const batchSize = options.batchSize ?? 1;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    if (options.seed !== undefined && !Number.isSafeInteger(options.seed)) throw new TypeError(`DataLoader: seed must be a safe integer, got ${options.seed}`);
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? false;
    this.dropLast = options.dropLast ?? false;
    this.transform = options.transform;
    this.targetTransform = options.targetTransform;
    this.device = options.device;
    const random = this.shuffle || this.transform !== undefined || this.targetTransform !== undefined;
    this.#seed = options.seed ?? (random ? drawGlobalSeed() : 0);
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  get seed(): number {
    return this.#seed;
  }

  /** The epoch the next batch belongs to. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The index of the next batch within the current epoch. */
  get batchIndex(): number {
    return this.#batchIndex;
  }

  /** Moves to the start of `epoch` (as DistributedSampler.set_epoch). */
  setEpoch(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`DataLoader.setEpoch: epoch must be a non-negative integer, got ${epoch}`);
    this.#epoch = epoch;
    this.#batchIndex = 0;
  }

  /** Moves past the next batch without making it (after a step that took it with batchAt, or to skip it); crosses into the next epoch after the last. */
  advance(): void {
    this.#advancePast(this.#epoch, this.#batchIndex);
  }

  stateDict(): DataLoaderState {
    return {
      epoch: this.#epoch,
      batchIndex: this.#batchIndex,
      seed: this.#seed,
      length: this.dataset.length,
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      dropLast: this.dropLast,
    };
  }

  /** Restores a position saved by `stateDict()`; the next batch is the one it named. */
  loadStateDict(state: DataLoaderState): void {
    if (state === null || typeof state !== 'object') throw new TypeError('DataLoader.loadStateDict: expected an object from stateDict()');
    const { epoch, batchIndex, seed } = state;
    for (const [name, v] of [['epoch', epoch], ['batchIndex', batchIndex], ['seed', seed]] as const) {
      if (!Number.isSafeInteger(v) || (name !== 'seed' && v < 0)) throw new TypeError(`DataLoader.loadStateDict: ${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    const mismatch: string[] = [];
    if (state.length !== undefined && state.length !== this.dataset.length) mismatch.push(`data set length ${state.length} vs ${this.dataset.length}`);
    if (state.batchSize !== undefined && state.batchSize !== this.batchSize) mismatch.push(`batchSize ${state.batchSize} vs ${this.batchSize}`);
    if (state.shuffle !== undefined && state.shuffle !== this.shuffle) mismatch.push(`shuffle ${state.shuffle} vs ${this.shuffle}`);
    if (state.dropLast !== undefined && state.dropLast !== this.dropLast) mismatch.push(`dropLast ${state.dropLast} vs ${this.dropLast}`);
    if (mismatch.length > 0) throw new Error(`DataLoader.loadStateDict: the state was saved for a different loader (${mismatch.join('; ')})`);
    if (batchIndex > this.length) throw new RangeError(`DataLoader.loadStateDict: batchIndex ${batchIndex} is past the ${this.length} batches of an epoch`);
    this.#seed = seed;
    this.#epoch = epoch;
    this.#batchIndex = batchIndex;
    if (batchIndex === this.length && batchIndex > 0) {
      this.#epoch++;
      this.#batchIndex = 0;
    }
  }

  /** The example indices of `epoch`, in order. */
  order(epoch: number): Int32Array {
    if (this.#order?.epoch === epoch) return this.#order.indices;
    const n = this.dataset.length;
    let indices: Int32Array;
    if (this.shuffle) indices = new Rng(this.#seed, SHUFFLE_STREAM, epoch).permutation(n);
    else {
      indices = new Int32Array(n);
      for (let i = 0; i < n; i++) indices[i] = i;
    }
    this.#order = { epoch, indices };
    return indices;
  }

  /**
   * Batch `index` of `epoch`, computed directly (the position does not move).
   * Its tensors belong to the caller's scope.
   */
  batchAt(epoch: number, index: number): Batch<T> {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) throw new RangeError(`DataLoader.batchAt: batch ${index} out of range [0, ${this.length})`);
    const order = this.order(epoch);
    const start = index * this.batchSize;
    const ids = order.subarray(start, Math.min(start + this.batchSize, order.length));
    return scope(() => {
      let batch: Tensor | Tensor[];
      if (this.dataset.getBatch) {
        batch = this.dataset.getBatch(tensor(BigInt64Array.from(ids, (i) => BigInt(i)))) as Tensor | Tensor[];
      } else {
        const examples: T[] = [];
        for (const i of ids) examples.push(this.dataset.get(i));
        batch = collate(examples) as Tensor | Tensor[];
      }
      if (this.device !== undefined) batch = batch instanceof Tensor ? batch.to(this.device) : batch.map((t) => t.to(this.device!));
      if (this.transform || this.targetTransform) {
        const rng = new Rng(this.#seed, TRANSFORM_STREAM, epoch, index);
        const ctx = (k: number) => ({ rng: rng.fork(k), epoch, batchIndex: index });
        if (batch instanceof Tensor) {
          if (this.targetTransform) throw new TypeError('DataLoader: targetTransform needs batches of at least two tensors');
          batch = this.transform!(batch, ctx(0));
        } else {
          batch = [...batch];
          if (this.transform) batch[0] = this.transform(batch[0], ctx(0));
          if (this.targetTransform) {
            if (batch.length < 2) throw new TypeError('DataLoader: targetTransform needs batches of at least two tensors');
            batch[1] = this.targetTransform(batch[1], ctx(1));
          }
        }
      }
      return batch as Batch<T>;
    });
  }

  *[Symbol.iterator](): Iterator<Batch<T>> {
    const epoch = this.#epoch;
    const n = this.length;
    for (let k = this.#batchIndex; k < n; k++) {
      const batch = this.batchAt(epoch, k);
      this.#advancePast(epoch, k);
      yield batch;
    }
  }

  /**
   * Runs `fn` on each remaining batch of the epoch, each call in its own
   * scope: the batch and whatever `fn` makes are freed after it (keep() what
   * must outlive the step). Stops early, after that batch, if `fn` returns false.
   */
  forEach(fn: (batch: Batch<T>, index: number) => void | boolean): void {
    const epoch = this.#epoch;
    const n = this.length;
    for (let k = this.#batchIndex; k < n; k++) {
      const stop = scope(() => {
        const batch = this.batchAt(epoch, k);
        this.#advancePast(epoch, k);
        return fn(batch, k) === false;
      });
      if (stop) return;
    }
  }

  // Moves before the batch is handed out: a checkpoint taken while the step
  // runs names the next batch.
  #advancePast(epoch: number, k: number): void {
    if (k + 1 < this.length) {
      this.#epoch = epoch;
      this.#batchIndex = k + 1;
    } else {
      this.#epoch = epoch + 1;
      this.#batchIndex = 0;
    }
  }
}
