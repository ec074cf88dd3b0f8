// Models and data of the nonsmooth audit and the MaxPool reproduction, sized
// for a budget: the zoo's models, and VGG-11 with its channel counts scaled
// (width 64 is the paper's VGG-11; the zoo's VGG11 has no width option).
import * as keel from '../../index.js';
import type { Tensor } from '../../index.js';

const nn = keel.nn;
export type ModelId = 'lenet5' | 'vgg11' | 'vgg11_bn' | 'resnet18' | 'mlp';
export type DataId = 'fashion-mnist' | 'synthetic';
export const MODEL_IDS: readonly ModelId[] = ['lenet5', 'vgg11', 'vgg11_bn', 'resnet18', 'mlp'];

export interface ModelSpec {
  id: ModelId;
  /** VGG-11 and ResNet-18: channels of the first stage (64 = full size) */
  width?: number;
  /** MLP: hidden layers and their width (Bertoin et al.'s main case: 3 × 256) */
  depth?: number;
  hidden?: number;
  /** replace max pools by average pools (a remedy) */
  avgPool?: boolean;
}

/** VGG-11 ("A") for 32×32 with every channel count scaled by width/64. */
export function vgg11Scaled(inChannels: number, width: number, batchNorm: boolean, numClasses = 10): keel.nn.Module {
  const layers: keel.nn.Module[] = [];
  let c = inChannels;
  for (const v of keel.nn.zoo.VGG11_CONFIG) {
    if (v === 'M') layers.push(new nn.MaxPool2d(2, { stride: 2 }));
    else {
      const out = Math.max(1, Math.round((v * width) / 64));
      layers.push(new nn.Conv2d(c, out, 3, { padding: 1 }));
      if (batchNorm) layers.push(new nn.BatchNorm2d(out));
      layers.push(new nn.ReLU());
      c = out;
    }
  }
  const hidden = Math.max(16, Math.round((512 * width) / 64));
  const m = new nn.Sequential({
    features: new nn.Sequential(...layers),
    flatten: new nn.Flatten(),
    classifier: new nn.Sequential(new nn.Linear(c, hidden), new nn.ReLU(), new nn.Linear(hidden, hidden), new nn.ReLU(), new nn.Linear(hidden, numClasses)),
  });
  // torchvision's VGG initialisation for the convolutions (kaiming_normal_ fan_out, relu;
  // zero bias) and BN (1, 0): with torch's default conv init eight ReLU convs shrink the
  // signal so much that the plain VGG-11 does not start learning within a budgeted run.
  // The Linear layers keep torch's default (torchvision's N(0, 0.01) is meant for 4096
  // units; at the scaled widths it would shrink the signal again).
  for (const mod of m.modules()) {
    if (mod instanceof nn.Conv2d) {
      nn.init.kaimingNormal_(mod.weight, { mode: 'fan_out', nonlinearity: 'relu' });
      if (mod.bias) nn.init.constant_(mod.bias, 0);
    } else if (mod instanceof nn.BatchNorm2d) {
      nn.init.constant_(mod.weight!, 1);
      nn.init.constant_(mod.bias!, 0);
    }
  }
  return m;
}

/**
 * ResNet-18 (the zoo's CIFAR form: 3×3 stride-1 stem) with torchvision's stem
 * max pool (3×3, stride 2, padding 1) after the stem's ReLU, as in Boustany's
 * ResNet-18: the CIFAR form has no max pool at all, so MaxPool-β would have
 * nothing to act on. 32×32 inputs reach layer1 at 16×16.
 */
export function resnet18WithStemPool(inChannels: number, width: number, numClasses = 10): keel.nn.Module {
  const m = new nn.zoo.ResNet18({ inChannels, width, numClasses });
  // the stem's relu module is used by the stem only (each block has its own)
  (m as unknown as { relu: keel.nn.Module }).relu = new nn.Sequential(new nn.ReLU(), new nn.MaxPool2d(3, { stride: 2, padding: 1 }));
  return m;
}

/** Input shape [C, H] of a data set for a model (VGG/ResNet need 32×32: Fashion-MNIST is zero-padded). */
export function inputGeometry(model: ModelId, data: DataId): { channels: number; size: number } {
  if (data === 'synthetic') return { channels: 3, size: 32 };
  return { channels: 1, size: model === 'vgg11' || model === 'vgg11_bn' || model === 'resnet18' ? 32 : 28 };
}

export function buildModel(spec: ModelSpec, data: DataId, seed: number): keel.nn.Module {
  keel.manualSeed(seed);
  const { channels, size } = inputGeometry(spec.id, data);
  let m: keel.nn.Module;
  switch (spec.id) {
    case 'lenet5': m = new nn.zoo.LeNet5({ inChannels: channels, inputSize: size }); break;
    case 'mlp': m = new nn.zoo.MLP({ inFeatures: channels * size * size, numClasses: 10, hidden: Array(spec.depth ?? 3).fill(spec.hidden ?? 256) }); break;
    case 'vgg11': case 'vgg11_bn': m = vgg11Scaled(channels, spec.width ?? 64, spec.id === 'vgg11_bn'); break;
    case 'resnet18': m = resnet18WithStemPool(channels, spec.width ?? 64); break;
    default: throw new RangeError(`unknown model ${String(spec.id)}`);
  }
  if (spec.avgPool) keel.audit.swapBackwardRules(m, { avgPool: true });
  return m;
}

export interface DataSplit {
  x: Tensor;
  y: Tensor;
}

/** n training and nTest test examples, standardised and shaped for the model (kept: dispose them when done). */
export function loadData(model: ModelId, data: DataId, n: number, nTest: number, seed = 0): { train: DataSplit; test: DataSplit } {
  const { size } = inputGeometry(model, data);
  return keel.scope(() => {
    let train: DataSplit, test: DataSplit;
    if (data === 'synthetic') {
      const a = keel.data.syntheticImages({ n: n + nTest, seed });
      const [x, y] = a.tensors as unknown as [Tensor, Tensor];
      train = { x: x.narrow(0, 0, n).clone(), y: y.narrow(0, 0, n).clone() };
      test = { x: x.narrow(0, n, nTest).clone(), y: y.narrow(0, n, nTest).clone() };
    } else {
      const tr = keel.data.fashionMnist({ split: 'train' });
      const te = keel.data.fashionMnist({ split: 'test' });
      const [xa, ya] = tr.tensors as unknown as [Tensor, Tensor];
      const [xb, yb] = te.tensors as unknown as [Tensor, Tensor];
      keel.manualSeed(seed);
      // a full epoch (235 × 256 = 60,160) asks for more than the 60,000 there are: take them all
      const perm = keel.ops.randperm(xa.shape[0]).narrow(0, 0, Math.min(n, xa.shape[0]));
      train = { x: xa.indexSelect(0, perm), y: ya.indexSelect(0, perm) };
      test = { x: xb.narrow(0, 0, Math.min(nTest, xb.shape[0])).clone(), y: yb.narrow(0, 0, Math.min(nTest, xb.shape[0])).clone() };
    }
    // pad Fashion-MNIST to 32×32 with its background (0) before standardising, so that
    // the padding equals the background: padding with 0 after standardising made a
    // border that no image has, and with zero conv biases the first conv's output
    // there was exactly 0 in every precision (structural zeros, not floating-point ones)
    if (data === 'fashion-mnist' && size === 32) {
      train.x = keel.ops.constantPadNd(train.x, [2, 2, 2, 2], 0);
      test.x = keel.ops.constantPadNd(test.x, [2, 2, 2, 2], 0);
    }
    // standardise with the training split's per-channel mean and std (the plain
    // VGG-11 barely starts learning on raw [0, 1] pixels within a budgeted run)
    const mu = train.x.mean([0, 2, 3], true), sd = train.x.std([0, 2, 3], { keepdim: true });
    train.x = train.x.sub(mu).div(sd);
    test.x = test.x.sub(mu).div(sd);
    for (const t of [train.x, train.y, test.x, test.y]) t.keep();
    return { train, test };
  });
}

/** Batch i of size b (wrapping around). */
export function batch(split: DataSplit, i: number, b: number): [Tensor, Tensor] {
  const n = split.x.shape[0];
  const start = (i * b) % Math.max(1, n - b + 1);
  return [split.x.narrow(0, start, b), split.y.narrow(0, start, b)];
}
