// A classification network around one ODE block: an opening layer that maps
// the data into the block's state space, the block, and a linear softmax
// classifier (Meganet's logRegressionLoss on the block's output features).
// Openings: 'pad' appends zero features (what Meganet does to the 2-D sets,
// Ytrain = [Ytrain; zeros(2, n)]); 'conv' is a learned 3×3 stride-2
// convolution with tanh, for images.
import { noGrad } from '../core/autograd.js';
import type { DType } from '../core/dtype.js';
import type { Tensor } from '../core/tensor.js';
import { crossEntropy } from '../losses/classification.js';
import { Conv2d } from '../nn/conv.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import type { Architecture, OdeBlock, OdeBlockOptions } from './block.js';
import { makeBlock } from './factory.js';

export type Opening =
  | { type: 'pad'; inFeatures: number }
  | { type: 'conv'; inChannels: number; imageSize: number };

export interface StableNetOptions extends OdeBlockOptions {
  architecture: Architecture;
  opening: Opening;
  classes: number;
}

export interface LossTerms {
  loss: Tensor;
  data: Tensor;
  logits: Tensor;
}

export class StableNet extends Module {
  block: OdeBlock;
  opening: Conv2d | null;
  classifier: Linear;
  private readonly _opening: Opening;

  constructor(options: StableNetOptions) {
    super();
    this._opening = options.opening;
    const dtype: DType = options.dtype ?? 'float32';
    this.block = makeBlock(options.architecture, options);
    const k = options.kernel;
    if (options.opening.type === 'pad') {
      if (k.type !== 'dense') throw new TypeError("StableNet: a 'pad' opening needs a dense kernel");
      if (k.width < options.opening.inFeatures) throw new RangeError('StableNet: width smaller than the input features');
      this.opening = null;
      this.classifier = new Linear(k.width, options.classes, { dtype });
    } else {
      if (k.type !== 'conv') throw new TypeError("StableNet: a 'conv' opening needs a conv kernel");
      this.opening = new Conv2d(options.opening.inChannels, k.channels, 3, { stride: 2, padding: 1, dtype });
      const s = Math.floor((options.opening.imageSize + 1) / 2);
      this.classifier = new Linear(k.channels * s * s, options.classes, { dtype });
    }
  }

  /** The block's input Y0 for data x. */
  open(x: Tensor): Tensor {
    if (this.opening) return ops.tanh(this.opening.call(x));
    const width = (this.block.kernel as { width: number }).width;
    const pad = width - x.shape[1];
    return pad > 0 ? ops.constantPadNd(x, [0, pad], 0) : x;
  }

  /** Logits from the block's output features. */
  classify(YN: Tensor): Tensor {
    return this.classifier.call(YN.flatten(1));
  }

  forward(x: Tensor): Tensor {
    return this.classify(this.block.call(this.open(x)));
  }

  /**
   * Cross-entropy + α_K·smoothness(K, b) + (α_W/2)·‖W, μ‖² on the classifier
   * (Meganet: tikhonovReg(opTimeDer, h·α) and tikhonovReg(opEye, α_W)).
   */
  objective(x: Tensor, target: Tensor, { alphaK = 0, alphaW = 0 }: { alphaK?: number; alphaW?: number } = {}): LossTerms {
    const logits = this.forward(x);
    const data = crossEntropy(logits, target);
    let loss = data;
    if (alphaK > 0) loss = ops.add(loss, this.block.smoothness(), { alpha: alphaK });
    if (alphaW > 0) {
      let wd = ops.sum(ops.square(this.classifier.weight));
      if (this.classifier.bias) wd = ops.add(wd, ops.sum(ops.square(this.classifier.bias)));
      loss = ops.add(loss, wd, { alpha: alphaW / 2 });
    }
    return { loss, data, logits };
  }

  /** Multi-level step: the same network with its block prolonged to 2N layers, h/2. */
  prolong(): void {
    const old = this.block;
    this.block = old.prolong();
    noGrad(() => {
      old.K.dispose();
      old.b.dispose();
    });
  }
}
