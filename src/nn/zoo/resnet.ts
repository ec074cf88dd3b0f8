// ResNet-18 (He et al. 2016) for 32×32 inputs, CIFAR-style: the stem is one
// 3×3 stride-1 convolution with no max pool (torchvision's ImageNet stem, a
// 7×7 stride-2 conv and a max pool, would shrink 32×32 to 8×8 before layer1).
//
//   conv1 Conv2d(inChannels, 64, 3, padding 1, no bias), bn1, relu
//   layer1  2 BasicBlocks,  64 channels, stride 1      32×32
//   layer2  2 BasicBlocks, 128 channels, first stride 2 16×16
//   layer3  2 BasicBlocks, 256 channels, first stride 2  8×8
//   layer4  2 BasicBlocks, 512 channels, first stride 2  4×4
//   avgpool AdaptiveAvgPool2d(1), flatten, fc Linear(512, numClasses)
//
// BasicBlock: conv1 3×3 (stride s), bn1, relu, conv2 3×3, bn2, + shortcut,
// relu; the shortcut is `downsample` = Sequential(conv 1×1 stride s, BN) when
// the shape changes. Module names and state dict keys are torchvision's
// (layer2.0.downsample.0.weight, bn1.running_mean, fc.weight), and so is the
// initialisation: conv kaiming_normal_(fan_out, relu), BN weight 1 bias 0,
// fc torch's Linear default. `width` scales all channel counts (64 default).
import type { Tensor } from '../../core/tensor.js';
import { scope } from '../../core/memory.js';
import { ReLU } from '../activation.js';
import { Sequential } from '../container.js';
import { Conv2d } from '../conv.js';
import { constant_, kaimingNormal_ } from '../init.js';
import { Linear } from '../linear.js';
import { Module } from '../module.js';
import { BatchNorm2d, GroupNorm } from '../norm.js';
import { AdaptiveAvgPool2d } from '../pooling.js';

export class BasicBlock extends Module {
  static readonly expansion = 1;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  relu: ReLU;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  downsample: Sequential | null;

  constructor(inPlanes: number, planes: number, stride = 1) {
    super();
    this.conv1 = new Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(planes);
    this.relu = new ReLU({ inplace: true });
    this.conv2 = new Conv2d(planes, planes, 3, { padding: 1, bias: false });
    this.bn2 = new BatchNorm2d(planes);
    this.downsample = stride !== 1 || inPlanes !== planes
      ? new Sequential(new Conv2d(inPlanes, planes, 1, { stride, bias: false }), new BatchNorm2d(planes))
      : null;
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      let out = this.relu.call(this.bn1.call(this.conv1.call(x))) as Tensor;
      out = this.bn2.call(this.conv2.call(out)) as Tensor;
      const identity = this.downsample ? (this.downsample.call(x) as Tensor) : x;
      return this.relu.call(out.add_(identity)) as Tensor;
    });
  }
}

export interface ResNetOptions {
  inChannels?: number;
  numClasses?: number;
  /** BasicBlocks per stage (ResNet-18: [2, 2, 2, 2]; ResNet-34: [3, 4, 6, 3]). */
  blocks?: [number, number, number, number];
  /** Channels of layer1 (doubled at each later stage); 64 as the paper. */
  width?: number;
  /** Start each residual branch's last BN at weight 0 (torchvision's zero_init_residual). */
  zeroInitResidual?: boolean;
}

export class ResNet extends Module {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  relu: ReLU;
  layer1: Sequential;
  layer2: Sequential;
  layer3: Sequential;
  layer4: Sequential;
  avgpool: AdaptiveAvgPool2d;
  fc: Linear;

  constructor({ inChannels = 3, numClasses = 10, blocks = [2, 2, 2, 2], width = 64, zeroInitResidual = false }: ResNetOptions = {}) {
    super();
    let inPlanes = width;
    this.conv1 = new Conv2d(inChannels, width, 3, { stride: 1, padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(width);
    this.relu = new ReLU({ inplace: true });
    const stage = (planes: number, n: number, stride: number): Sequential => {
      const list: Module[] = [];
      for (let i = 0; i < n; i++) {
        list.push(new BasicBlock(inPlanes, planes, i === 0 ? stride : 1));
        inPlanes = planes;
      }
      return new Sequential(...list);
    };
    this.layer1 = stage(width, blocks[0], 1);
    this.layer2 = stage(width * 2, blocks[1], 2);
    this.layer3 = stage(width * 4, blocks[2], 2);
    this.layer4 = stage(width * 8, blocks[3], 2);
    this.avgpool = new AdaptiveAvgPool2d(1);
    this.fc = new Linear(width * 8, numClasses);
    for (const m of this.modules()) {
      if (m instanceof Conv2d) {
        kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
      } else if (m instanceof BatchNorm2d || m instanceof GroupNorm) {
        constant_(m.weight!, 1);
        constant_(m.bias!, 0);
      }
    }
    if (zeroInitResidual) for (const m of this.modules()) if (m instanceof BasicBlock) constant_(m.bn2.weight!, 0);
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.relu.call(this.bn1.call(this.conv1.call(x))) as Tensor;
      h = this.layer4.call(this.layer3.call(this.layer2.call(this.layer1.call(h))));
      return this.fc.call((this.avgpool.call(h) as Tensor).flatten(1)) as Tensor;
    });
  }
}

/** ResNet-18 for 32×32 inputs (CIFAR-style 3×3 stem, no max pool). */
export class ResNet18 extends ResNet {
  constructor(options: Omit<ResNetOptions, 'blocks'> = {}) {
    super({ ...options, blocks: [2, 2, 2, 2] });
  }
}

/** ResNet-34 for 32×32 inputs, as ResNet18 with [3, 4, 6, 3] blocks. */
export class ResNet34 extends ResNet {
  constructor(options: Omit<ResNetOptions, 'blocks'> = {}) {
    super({ ...options, blocks: [3, 4, 6, 3] });
  }
}
