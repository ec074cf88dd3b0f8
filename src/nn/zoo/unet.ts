// U-Net (Ronneberger et al. 2015) for dense prediction: per-pixel logits of
// numClasses channels at the input's resolution. Configurable depth (number
// of 2× downsamplings) and width (channels at full resolution, doubled at
// each level); level k has width·2^k channels.
//
//   encoder.stem   DoubleConv(inChannels → w)                 level 0, H×W
//   encoder.downk  MaxPool2d(2) then DoubleConv(w·2^(k-1) → w·2^k), k = 1..depth
//   decoder.upk    k = depth..1: `up` doubles H and W and halves channels
//                  (ConvTranspose2d 2×2 stride 2, or bilinear Upsample then
//                  1×1 conv), the result is zero-padded to the skip's size if
//                  the input was odd, concatenated after encoder level k-1's
//                  output, and `conv` = DoubleConv(w·2^k → w·2^(k-1))
//   head           Conv2d(w → numClasses, 1×1)
//
// DoubleConv is Sequential(conv3×3, norm, ReLU, conv3×3, norm, ReLU) (convs
// without bias when a norm follows; no norm entries with norm: 'none'), so
// module paths read decoder.up3.conv, decoder.up3.conv.0, encoder.down2.conv.1.
// Parameters use torch.nn's default initialisation.
import type { Tensor } from '../../core/tensor.js';
import { cat } from '../../core/creation.js';
import { scope } from '../../core/memory.js';
import * as ops from '../../ops/index.js';
import { ReLU } from '../activation.js';
import { Sequential } from '../container.js';
import { Conv2d, ConvTranspose2d } from '../conv.js';
import { Module } from '../module.js';
import { BatchNorm2d, GroupNorm } from '../norm.js';
import { MaxPool2d } from '../pooling.js';
import { Upsample } from '../upsample.js';

export type UNetNorm = 'batch' | 'group' | 'none';

export interface UNetOptions {
  inChannels?: number;
  numClasses?: number;
  /** Number of 2× downsamplings (default 4, as the paper). */
  depth?: number;
  /** Channels at full resolution (default 64, as the paper). */
  width?: number;
  /** How the decoder upsamples: a learned transposed conv (default) or bilinear + 1×1 conv. */
  upsampling?: 'transpose' | 'bilinear';
  norm?: UNetNorm;
  /** Groups of GroupNorm with norm: 'group' (default 8; fewer when channels are fewer). */
  groups?: number;
}

export class DoubleConv extends Sequential {
  constructor(inChannels: number, outChannels: number, norm: UNetNorm = 'batch', groups = 8) {
    const makeNorm = (c: number): Module[] => {
      if (norm === 'batch') return [new BatchNorm2d(c)];
      if (norm === 'group') return [new GroupNorm(Math.min(groups, c), c)];
      return [];
    };
    const bias = norm === 'none';
    super(
      new Conv2d(inChannels, outChannels, 3, { padding: 1, bias }), ...makeNorm(outChannels), new ReLU({ inplace: true }),
      new Conv2d(outChannels, outChannels, 3, { padding: 1, bias }), ...makeNorm(outChannels), new ReLU({ inplace: true }),
    );
  }
}

export class Down extends Module {
  pool: MaxPool2d;
  conv: DoubleConv;

  constructor(inChannels: number, outChannels: number, norm: UNetNorm, groups: number) {
    super();
    this.pool = new MaxPool2d(2);
    this.conv = new DoubleConv(inChannels, outChannels, norm, groups);
  }

  forward(x: Tensor): Tensor {
    return scope(() => this.conv.call(this.pool.call(x)) as Tensor);
  }
}

export class Up extends Module {
  up: Module<[Tensor], Tensor>;
  conv: DoubleConv;

  constructor(inChannels: number, outChannels: number, upsampling: 'transpose' | 'bilinear', norm: UNetNorm, groups: number) {
    super();
    this.up = upsampling === 'transpose'
      ? new ConvTranspose2d(inChannels, outChannels, 2, { stride: 2 })
      : new Sequential(new Upsample({ scaleFactor: 2, mode: 'bilinear', alignCorners: true }), new Conv2d(inChannels, outChannels, 1));
    this.conv = new DoubleConv(2 * outChannels, outChannels, norm, groups);
  }

  forward(x: Tensor, skip: Tensor): Tensor {
    return scope(() => {
      let u = this.up.call(x) as Tensor;
      const dy = skip.shape[2] - u.shape[2];
      const dx = skip.shape[3] - u.shape[3];
      if (dy !== 0 || dx !== 0) {
        u = ops.constantPadNd(u, [Math.floor(dx / 2), dx - Math.floor(dx / 2), Math.floor(dy / 2), dy - Math.floor(dy / 2)]);
      }
      return this.conv.call(cat([skip, u], 1)) as Tensor;
    });
  }
}

/** Fields stem, down1..downN; forward returns every level's features, full resolution first. */
export class UNetEncoder extends Module {
  stem: DoubleConv;
  readonly depth: number;

  constructor(inChannels: number, width: number, depth: number, norm: UNetNorm, groups: number) {
    super();
    this.stem = new DoubleConv(inChannels, width, norm, groups);
    this.depth = depth;
    for (let k = 1; k <= depth; k++) {
      (this as unknown as Record<string, Module>)[`down${k}`] = new Down(width * 2 ** (k - 1), width * 2 ** k, norm, groups);
    }
  }

  down(k: number): Down {
    return (this as unknown as Record<string, Down>)[`down${k}`];
  }

  forward(x: Tensor): Tensor[] {
    return scope(() => {
      const feats: Tensor[] = [this.stem.call(x) as Tensor];
      for (let k = 1; k <= this.depth; k++) feats.push(this.down(k).call(feats[k - 1]) as Tensor);
      return feats;
    });
  }
}

/** Fields up{depth}..up1, in the order they run. */
export class UNetDecoder extends Module {
  readonly depth: number;

  constructor(width: number, depth: number, upsampling: 'transpose' | 'bilinear', norm: UNetNorm, groups: number) {
    super();
    this.depth = depth;
    for (let k = depth; k >= 1; k--) {
      (this as unknown as Record<string, Module>)[`up${k}`] = new Up(width * 2 ** k, width * 2 ** (k - 1), upsampling, norm, groups);
    }
  }

  up(k: number): Up {
    return (this as unknown as Record<string, Up>)[`up${k}`];
  }

  forward(feats: Tensor[]): Tensor {
    return scope(() => {
      let y = feats[this.depth];
      for (let k = this.depth; k >= 1; k--) y = this.up(k).call(y, feats[k - 1]) as Tensor;
      return y;
    });
  }
}

export class UNet extends Module {
  encoder: UNetEncoder;
  decoder: UNetDecoder;
  head: Conv2d;

  constructor({ inChannels = 3, numClasses = 2, depth = 4, width = 64, upsampling = 'transpose', norm = 'batch', groups = 8 }: UNetOptions = {}) {
    super();
    if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`UNet: depth must be a positive integer, got ${depth}`);
    if (!Number.isInteger(width) || width < 1) throw new RangeError(`UNet: width must be a positive integer, got ${width}`);
    this.encoder = new UNetEncoder(inChannels, width, depth, norm, groups);
    this.decoder = new UNetDecoder(width, depth, upsampling, norm, groups);
    this.head = new Conv2d(width, numClasses, 1);
  }

  /** [N, inChannels, H, W] → [N, numClasses, H, W] logits; H and W at least 2^depth. */
  forward(x: Tensor): Tensor {
    const min = 2 ** this.encoder.depth;
    if (x.ndim !== 4 || x.shape[2] < min || x.shape[3] < min) {
      throw new RangeError(`UNet: expected [N, C, H, W] input with H, W ≥ ${min} (2^depth), got [${x.shape.join(', ')}]`);
    }
    return scope(() => this.head.call(this.decoder.call(this.encoder.call(x))) as Tensor);
  }
}
