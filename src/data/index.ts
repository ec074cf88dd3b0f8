// keel.data: data sets, the seeded resumable DataLoader, batch transforms,
// the Fashion-MNIST IDX loader and a synthetic image set.
export { TensorDataset, collate, type Dataset, type Example, type Batch } from './dataset.js';
export { DataLoader, type DataLoaderOptions, type DataLoaderState } from './loader.js';
export { compose, normalize, randomCrop, randomHorizontalFlip, type Transform, type TransformContext, type RandomCropOptions } from './transforms.js';
export { Rng } from './rng.js';
export { readIdx, parseIdx, type IdxArray, type IdxType, type IdxExpectation } from './idx.js';
export { fashionMnist, FASHION_MNIST_ROOT, FASHION_MNIST_CLASSES, type FashionMnistOptions } from './fashion-mnist.js';
export { syntheticImages, type SyntheticImagesOptions } from './synthetic-images.js';
export { synthDepth, renderSynthDepth, sparseMask, type SynthDepthOptions, type SynthDepthSplit, type SynthDepthScene, type SparseMaskOptions } from './synth-depth.js';
