// DistributedSampler, as PyTorch's: each rank sees its own 1/worldSize of the
// data set (indices rank, rank + W, rank + 2W, ... of one shared order),
// padded by repeating from the start so every rank has the same number of
// examples (or trimmed, with dropLast). It is a Dataset view: give it to a
// DataLoader (shuffle: false; the sampler shuffles), and call setEpoch(e)
// at the start of each epoch for a new shared order. The shared order is the
// one a shuffling DataLoader with the same seed draws, so W ranks at batch B
// see, step by step, the examples one process sees at batch W·B (when W·B
// divides the data set: otherwise the sampler pads as PyTorch's does).
import { Rng } from '../data/rng.js';
import { SHUFFLE_STREAM } from '../data/loader.js';
import type { Batch, Dataset, Example } from '../data/dataset.js';
import { tensor } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import { getRank, getWorldSize, isInitialized } from './process-group.js';

export interface DistributedSamplerOptions {
  /** Default: the process group's world size. */
  numReplicas?: number;
  /** Default: the process group's rank. */
  rank?: number;
  /** A new shared order every epoch (default true). */
  shuffle?: boolean;
  /** The seed of the shared order; must be the same on every rank (default 0). */
  seed?: number;
  /** Drop the tail that does not divide evenly instead of padding (default false). */
  dropLast?: boolean;
}


export class DistributedSampler<T extends Example = Example> implements Dataset<T> {
  readonly numReplicas: number;
  readonly rank: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  /** Examples this rank sees per epoch. */
  readonly length: number;
  readonly totalSize: number;
  #epoch = 0;
  #indices: Int32Array | undefined;

  constructor(readonly dataset: Dataset<T>, options: DistributedSamplerOptions = {}) {
    const world = options.numReplicas ?? (isInitialized() ? getWorldSize() : 1);
    const rank = options.rank ?? (isInitialized() ? getRank() : 0);
    if (!Number.isInteger(world) || world < 1) throw new RangeError(`DistributedSampler: numReplicas must be a positive integer, got ${world}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= world) throw new RangeError(`DistributedSampler: rank must be in [0, ${world - 1}], got ${rank}`);
    this.numReplicas = world;
    this.rank = rank;
    this.shuffle = options.shuffle ?? true;
    this.seed = options.seed ?? 0;
    this.dropLast = options.dropLast ?? false;
    const n = dataset.length;
    this.length = this.dropLast ? Math.floor(n / world) : Math.ceil(n / world);
    this.totalSize = this.length * world;
    if (dataset.getBatch) this.getBatch = (indices) => mappedBatch(this, indices);
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** The shared order of the next epoch changes with it (same on every rank). */
  setEpoch(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`DistributedSampler.setEpoch: epoch must be a non-negative integer, got ${epoch}`);
    if (epoch !== this.#epoch) this.#indices = undefined;
    this.#epoch = epoch;
  }

  /** This rank's data set indices for the current epoch. */
  indices(): Int32Array {
    if (this.#indices) return this.#indices;
    const n = this.dataset.length;
    let order: Int32Array;
    if (this.shuffle) order = new Rng(this.seed, SHUFFLE_STREAM, this.#epoch).permutation(n);
    else order = Int32Array.from({ length: n }, (_, i) => i);
    const all = new Int32Array(this.totalSize);
    for (let i = 0; i < this.totalSize; i++) all[i] = order[i % n];
    const mine = new Int32Array(this.length);
    for (let i = 0; i < this.length; i++) mine[i] = all[this.rank + i * this.numReplicas];
    this.#indices = mine;
    return mine;
  }

  get(index: number): T {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) throw new RangeError(`DistributedSampler.get: index ${index} out of range for ${this.length} examples`);
    return this.dataset.get(this.indices()[index]);
  }

  /** The loader's fast path, when the wrapped data set has one. */
  getBatch?: (indices: Tensor) => Batch<T>;
}

function mappedBatch<T extends Example>(s: DistributedSampler<T>, indices: Tensor): Batch<T> {
  const mine = s.indices();
  const local = indices.data() as BigInt64Array;
  const mapped = tensor(BigInt64Array.from(local, (i) => BigInt(mine[Number(i)])));
  try {
    return s.dataset.getBatch!(mapped);
  } finally {
    mapped.dispose();
  }
}
