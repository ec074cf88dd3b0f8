// keel.nn: modules, layers, initialisers and the model zoo.
export { Module, Parameter, isParameter, currentModulePath, type ForwardHook } from './module.js';
export { Linear, type LinearOptions } from './linear.js';
export { Conv2d, ConvTranspose2d, type Conv2dOptions, type ConvTranspose2dOptions } from './conv.js';
export { BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, type BatchNormOptions, type GroupNormOptions, type LayerNormOptions } from './norm.js';
export { Dropout } from './dropout.js';
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, type MaxPool2dOptions, type AvgPool2dOptions } from './pooling.js';
export { Upsample, type UpsampleOptions } from './upsample.js';
export { Flatten, Unflatten, Identity } from './flatten.js';
export { Sequential, ModuleList, ModuleDict } from './container.js';
export { ReLU, LeakyReLU, GELU, Sigmoid, LogSigmoid, Tanh, SiLU, Softplus, Softmax, LogSoftmax } from './activation.js';
export type { Size2, FactoryOptions } from './pair.js';
export { saveStateDict, loadStateDict } from './serialization.js';
export * as init from './init.js';
export * as zoo from './zoo/index.js';
