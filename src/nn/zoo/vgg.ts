// VGG-11 (Simonyan & Zisserman 2015, configuration "A") for 32×32 inputs
// (CIFAR-style): five 2×2 max pools take 32×32 to 1×1, so the classifier sees
// 512 features rather than torchvision's 512×7×7.
//
//   features    Sequential: [conv3×3(64) (BN) ReLU, M, conv(128) (BN) ReLU, M,
//               conv(256) ×2, M, conv(512) ×2, M, conv(512) ×2, M]
//               (each conv padding 1, with bias; BN when batchNorm: true)
//   classifier  Sequential: Linear(512, hidden), ReLU, Dropout,
//               Linear(hidden, hidden), ReLU, Dropout, Linear(hidden, numClasses)
//
// State dict keys as torchvision's vgg11/vgg11_bn (features.0.weight,
// features.1.running_mean with BN, classifier.6.weight), and torchvision's
// initialisation: conv kaiming_normal_(fan_out, relu) with zero bias, BN
// weight 1 bias 0, Linear N(0, 0.01) with zero bias.
import type { Tensor } from '../../core/tensor.js';
import { scope } from '../../core/memory.js';
import { ReLU } from '../activation.js';
import { Sequential } from '../container.js';
import { Conv2d } from '../conv.js';
import { Dropout } from '../dropout.js';
import { constant_, kaimingNormal_, normal_ } from '../init.js';
import { Linear } from '../linear.js';
import { Module } from '../module.js';
import { BatchNorm2d } from '../norm.js';
import { MaxPool2d } from '../pooling.js';

/** Configuration "A": channel counts, 'M' for a max pool. */
export const VGG11_CONFIG: (number | 'M')[] = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'];

export interface VGG11Options {
  inChannels?: number;
  numClasses?: number;
  batchNorm?: boolean;
  /** Width of the two hidden classifier layers (default 512). */
  hidden?: number;
  /** Classifier dropout probability (default 0.5). */
  dropout?: number;
}

export class VGG11 extends Module {
  features: Sequential;
  classifier: Sequential;

  constructor({ inChannels = 3, numClasses = 10, batchNorm = false, hidden = 512, dropout = 0.5 }: VGG11Options = {}) {
    super();
    const layers: Module[] = [];
    let c = inChannels;
    for (const v of VGG11_CONFIG) {
      if (v === 'M') {
        layers.push(new MaxPool2d(2, { stride: 2 }));
      } else {
        layers.push(new Conv2d(c, v, 3, { padding: 1 }));
        if (batchNorm) layers.push(new BatchNorm2d(v));
        layers.push(new ReLU({ inplace: true }));
        c = v;
      }
    }
    this.features = new Sequential(...layers);
    this.classifier = new Sequential(
      new Linear(512, hidden), new ReLU({ inplace: true }), new Dropout(dropout),
      new Linear(hidden, hidden), new ReLU({ inplace: true }), new Dropout(dropout),
      new Linear(hidden, numClasses),
    );
    for (const m of this.modules()) {
      if (m instanceof Conv2d) {
        kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
        if (m.bias) constant_(m.bias, 0);
      } else if (m instanceof BatchNorm2d) {
        constant_(m.weight!, 1);
        constant_(m.bias!, 0);
      } else if (m instanceof Linear) {
        normal_(m.weight, 0, 0.01);
        constant_(m.bias!, 0);
      }
    }
  }

  forward(x: Tensor): Tensor {
    // five 2×2 pools must leave 1×1: H and W in [32, 63]
    if (x.ndim !== 4 || Math.floor(x.shape[2] / 32) !== 1 || Math.floor(x.shape[3] / 32) !== 1) {
      throw new RangeError(`VGG11: expected 32×32 inputs [N, C, 32, 32], got [${x.shape.join(', ')}]`);
    }
    return scope(() => this.classifier.call((this.features.call(x) as Tensor).flatten(1)) as Tensor);
  }
}
