// The depth network of the study: Keel's zoo U-Net with one output channel
// and one of three heads mapping its logit z to depth:
//
//   sigmoid            depth = σ(z)·maxDepth  (GLPDepth's head; the loss takes
//                      its log: log(σ(z)·maxDepth) is −inf once σ(z) underflows
//                      to 0 — below z ≈ −104 in float32, z ≈ −17 in float16)
//   log-sigmoid        log-depth = log(σ(z)) + log maxDepth, written as the
//                      two ops many codebases write (not ATen's fused
//                      log_sigmoid): the same underflow, now inside the model
//   log-sigmoid-floor  log-depth = log(max(σ(z), minDepth/maxDepth)) + log maxDepth:
//                      the floor is applied before the log, so neither the
//                      value nor log's backward (grad / x) can meet a 0
//
// The final conv (`unet.head`) keeps torch's default init, or 'small':
// weight ~ N(0, 0.001²), bias 0, as GLPDepth initialises its last layers.
// `featureScale` s multiplies the decoder's output features before the final
// conv (z = head(s·features)): larger decoder features, as a wider or
// unnormalised decoder has, give larger logits from the same init; s = 1 is
// the plain U-Net.
import * as keel from '../../index.js';

export type DepthHead = 'sigmoid' | 'log-sigmoid' | 'log-sigmoid-floor';
export type FinalInit = 'default' | 'small';

export interface DepthUNetOptions {
  head?: DepthHead;
  finalInit?: FinalInit;
  maxDepth?: number;
  minDepth?: number;
  width?: number;
  depth?: number;
  norm?: keel.nn.zoo.UNetNorm;
  /** multiplies the decoder's output features before the final conv (default 1) */
  featureScale?: number;
}

export interface DepthOutput {
  /** 'depth' (metres) for the sigmoid head, 'logDepth' for the log heads. */
  kind: 'depth' | 'logDepth';
  value: keel.Tensor;
}

export class DepthUNet extends keel.nn.Module {
  unet: keel.nn.zoo.UNet;
  readonly head: DepthHead;
  readonly maxDepth: number;
  readonly minDepth: number;
  readonly featureScale: number;

  constructor({ head = 'sigmoid', finalInit = 'default', maxDepth = 20, minDepth = 1e-3, width = 8, depth = 2, norm = 'batch', featureScale = 1 }: DepthUNetOptions = {}) {
    super();
    if (!(featureScale > 0) || !Number.isFinite(featureScale)) throw new RangeError(`DepthUNet: featureScale must be a positive finite number, got ${featureScale}`);
    this.featureScale = featureScale;
    this.unet = new keel.nn.zoo.UNet({ inChannels: 3, numClasses: 1, width, depth, norm });
    this.head = head;
    this.maxDepth = maxDepth;
    this.minDepth = minDepth;
    if (finalInit === 'small') {
      keel.nn.init.normal_(this.unet.head.weight, 0, 0.001);
      if (this.unet.head.bias) keel.nn.init.zeros_(this.unet.head.bias);
    }
  }

  forward(x: keel.Tensor): DepthOutput {
    return keel.scope(() => {
      const z = this.featureScale === 1 ? this.unet.call(x) as keel.Tensor : this.scaledLogits(x);
      const s = z.sigmoid();
      if (this.head === 'sigmoid') return { kind: 'depth', value: s.mul(this.maxDepth) };
      const logMax = Math.log(this.maxDepth);
      if (this.head === 'log-sigmoid') return { kind: 'logDepth', value: s.log().add(logMax) };
      return { kind: 'logDepth', value: s.clamp(this.minDepth / this.maxDepth).log().add(logMax) };
    }) as DepthOutput;
  }

  /** head(s · decoder(encoder(x))): the U-Net's forward with the decoder's features scaled. */
  private scaledLogits(x: keel.Tensor): keel.Tensor {
    const u = this.unet;
    const min = 2 ** u.encoder.depth;
    if (x.ndim !== 4 || x.shape[2] < min || x.shape[3] < min) throw new RangeError(`DepthUNet: expected [N, 3, H, W] input with H, W ≥ ${min}, got [${x.shape.join(', ')}]`);
    const features = u.decoder.call(u.encoder.call(x) as keel.Tensor[]) as keel.Tensor;
    return u.head.call(features.mul(this.featureScale)) as keel.Tensor;
  }
}

/** Depth in metres from a head's output (for metrics). */
export function toDepth(out: DepthOutput): keel.Tensor {
  return out.kind === 'depth' ? out.value.detach() : out.value.detach().exp();
}
