// keel.nn.zoo: reference architectures whose module paths and state dict keys
// follow the PyTorch code a user would compare them with (see each file).
//
//   MLP       flatten + Linear/activation stack               zoo/mlp.ts
//   LeNet5    LeNet-5 for 28×28 grayscale (Fashion-MNIST)      zoo/lenet.ts
//   VGG11     VGG-11 for 32×32, optional BatchNorm             zoo/vgg.ts
//   ResNet18  ResNet-18 for 32×32, 3×3 stem, no max pool       zoo/resnet.ts
//   UNet      U-Net, configurable depth and width              zoo/unet.ts
//
// createModel('lenet5', { numClasses: 10 }) builds one by name (for CLIs).
import type { Module } from '../module.js';
import type { Tensor } from '../../core/tensor.js';
import { LeNet5, type LeNet5Options } from './lenet.js';
import { MLP, type MLPOptions } from './mlp.js';
import { ResNet18, ResNet34, type ResNetOptions } from './resnet.js';
import { UNet, type UNetOptions } from './unet.js';
import { VGG11, type VGG11Options } from './vgg.js';

export { MLP, activation, type MLPOptions, type ActivationName } from './mlp.js';
export { LeNet5, type LeNet5Options } from './lenet.js';
export { VGG11, VGG11_CONFIG, type VGG11Options } from './vgg.js';
export { ResNet, ResNet18, ResNet34, BasicBlock, type ResNetOptions } from './resnet.js';
export { UNet, UNetEncoder, UNetDecoder, Up, Down, DoubleConv, type UNetOptions, type UNetNorm } from './unet.js';

export type ModelName = 'mlp' | 'lenet5' | 'vgg11' | 'vgg11_bn' | 'resnet18' | 'resnet34' | 'unet';
export const MODEL_NAMES: readonly ModelName[] = ['mlp', 'lenet5', 'vgg11', 'vgg11_bn', 'resnet18', 'resnet34', 'unet'];

export interface CreateModelOptions {
  inChannels?: number;
  numClasses?: number;
  /** MLP only: height × width of one input image (default 28×28). */
  inputSize?: number;
  [option: string]: unknown;
}

/** Builds a zoo model by name; options go to its constructor. */
export function createModel(name: ModelName | string, options: CreateModelOptions = {}): Module<[Tensor], Tensor> {
  const { inChannels = name === 'lenet5' || name === 'mlp' ? 1 : 3, numClasses = 10, inputSize, ...rest } = options;
  switch (name) {
    case 'mlp': {
      const size = inputSize ?? 28;
      return new MLP({ inFeatures: inChannels * size * size, numClasses, ...(rest as Partial<MLPOptions>) });
    }
    case 'lenet5': return new LeNet5({ inChannels, numClasses, ...(inputSize ? { inputSize } : {}), ...(rest as LeNet5Options) });
    case 'vgg11': return new VGG11({ inChannels, numClasses, ...(rest as VGG11Options) });
    case 'vgg11_bn': return new VGG11({ inChannels, numClasses, ...(rest as VGG11Options), batchNorm: true });
    case 'resnet18': return new ResNet18({ inChannels, numClasses, ...(rest as ResNetOptions) });
    case 'resnet34': return new ResNet34({ inChannels, numClasses, ...(rest as ResNetOptions) });
    case 'unet': return new UNet({ inChannels, numClasses, ...(rest as UNetOptions) });
    default: throw new RangeError(`unknown model '${name}' (${MODEL_NAMES.join(', ')})`);
  }
}
