// Normalisation layers: BatchNorm1d/2d (running statistics as buffers named
// as PyTorch names them: running_mean, running_var, num_batches_tracked),
// GroupNorm and LayerNorm, each with torch.nn's options and initialisation.
import { noGrad } from '../core/autograd.js';
import { empty, ones, zeros } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { ones_, zeros_ } from './init.js';
import { Module, Parameter } from './module.js';
import { factory, type FactoryOptions } from './pair.js';

export interface BatchNormOptions extends FactoryOptions {
  eps?: number;
  /** Weight of the new batch in the running averages; null: a cumulative average (torch's momentum=None). */
  momentum?: number | null;
  /** Learnable per-channel weight and bias. */
  affine?: boolean;
  /** Keep running_mean/var (used in eval mode); without them eval mode uses batch statistics. */
  trackRunningStats?: boolean;
}

/** torch's _BatchNorm; the subclasses only check the input's rank. */
export abstract class BatchNorm extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super();
    const { eps = 1e-5, momentum = 0.1, affine = true, trackRunningStats = true, ...rest } = options;
    if (!Number.isInteger(numFeatures) || numFeatures < 1) throw new RangeError(`${this.constructor.name}: numFeatures must be a positive integer, got ${numFeatures}`);
    this.numFeatures = numFeatures;
    this.eps = eps;
    this.momentum = momentum;
    this.affine = affine;
    this.trackRunningStats = trackRunningStats;
    const f = factory(rest);
    this.weight = affine ? Parameter(empty([numFeatures], f)) : null;
    this.bias = affine ? Parameter(empty([numFeatures], f)) : null;
    if (trackRunningStats) {
      this.registerBuffer('running_mean', zeros([numFeatures], f));
      this.registerBuffer('running_var', ones([numFeatures], f));
      this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int64', ...(rest.device ? { device: rest.device } : {}) }));
    }
    this.resetParameters();
  }

  get runningMean(): Tensor | null {
    return this.trackRunningStats ? this.buffer('running_mean') : null;
  }

  get runningVar(): Tensor | null {
    return this.trackRunningStats ? this.buffer('running_var') : null;
  }

  get numBatchesTracked(): Tensor | null {
    return this.trackRunningStats ? this.buffer('num_batches_tracked') : null;
  }

  resetRunningStats(): void {
    if (!this.trackRunningStats) return;
    noGrad(() => {
      this.runningMean!.zero_();
      this.runningVar!.fill_(1);
      this.numBatchesTracked!.zero_();
    });
  }

  resetParameters(): void {
    this.resetRunningStats();
    if (this.weight) ones_(this.weight);
    if (this.bias) zeros_(this.bias);
  }

  protected abstract checkInputDim(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkInputDim(x);
    let factor = this.momentum ?? 0;
    if (this.training && this.trackRunningStats) {
      const n = this.numBatchesTracked!;
      noGrad(() => n.add_(1));
      if (this.momentum === null) factor = 1 / (n.item() as number);
    }
    // batch statistics in training, and in eval when there are no running ones
    const useBatchStats = this.training || !this.trackRunningStats;
    if (useBatchStats) {
      const shape = x.shape;
      let perChannel = shape[0];
      for (let i = 2; i < shape.length; i++) perChannel *= shape[i];
      if (perChannel === 1) throw new RangeError(`${this.constructor.name}: expected more than 1 value per channel when training, got input of shape [${shape.join(', ')}]`);
    }
    return ops.batchNorm(x, this.weight, this.bias, this.runningMean, this.runningVar, useBatchStats, factor, this.eps, true);
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum ?? 'None'}, affine=${py(this.affine)}, track_running_stats=${py(this.trackRunningStats)}`;
  }
}

/** Over [N, C] or [N, C, L] inputs. */
export class BatchNorm1d extends BatchNorm {
  protected checkInputDim(x: Tensor): void {
    if (x.ndim !== 2 && x.ndim !== 3) throw new RangeError(`BatchNorm1d: expected 2D or 3D input, got ${x.ndim}D`);
  }
}

/** Over [N, C, H, W] inputs. */
export class BatchNorm2d extends BatchNorm {
  protected checkInputDim(x: Tensor): void {
    if (x.ndim !== 4) throw new RangeError(`BatchNorm2d: expected 4D input, got ${x.ndim}D`);
  }
}

export interface GroupNormOptions extends FactoryOptions {
  eps?: number;
  affine?: boolean;
}

/** Normalises each of numGroups channel groups per sample (Wu & He 2018). */
export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  readonly affine: boolean;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(numGroups: number, numChannels: number, { eps = 1e-5, affine = true, ...rest }: GroupNormOptions = {}) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || !Number.isInteger(numChannels) || numChannels % numGroups !== 0) {
      throw new RangeError(`GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`);
    }
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = eps;
    this.affine = affine;
    this.weight = affine ? Parameter(empty([numChannels], factory(rest))) : null;
    this.bias = affine ? Parameter(empty([numChannels], factory(rest))) : null;
    this.resetParameters();
  }

  resetParameters(): void {
    if (this.weight) ones_(this.weight);
    if (this.bias) zeros_(this.bias);
  }

  forward(x: Tensor): Tensor {
    return ops.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps, true);
  }

  override extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}, eps=${this.eps}, affine=${py(this.affine)}`;
  }
}

export interface LayerNormOptions extends FactoryOptions {
  eps?: number;
  /** Learnable weight and bias of normalizedShape. */
  elementwiseAffine?: boolean;
}

/** Normalises over the trailing normalizedShape dims of each sample. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(normalizedShape: number | number[], { eps = 1e-5, elementwiseAffine = true, ...rest }: LayerNormOptions = {}) {
    super();
    const shape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    if (shape.some((d) => !Number.isInteger(d) || d < 1)) throw new RangeError(`LayerNorm: normalizedShape must be positive integers, got ${JSON.stringify(normalizedShape)}`);
    this.normalizedShape = shape;
    this.eps = eps;
    this.elementwiseAffine = elementwiseAffine;
    this.weight = elementwiseAffine ? Parameter(empty(shape, factory(rest))) : null;
    this.bias = elementwiseAffine ? Parameter(empty(shape, factory(rest))) : null;
    this.resetParameters();
  }

  resetParameters(): void {
    if (this.weight) ones_(this.weight);
    if (this.bias) zeros_(this.bias);
  }

  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps, true);
  }

  override extraRepr(): string {
    return `(${this.normalizedShape.join(', ')}), eps=${this.eps}, elementwise_affine=${py(this.elementwiseAffine)}`;
  }
}

/** A boolean as torch's reprs print it. */
function py(b: boolean): string {
  return b ? 'True' : 'False';
}
