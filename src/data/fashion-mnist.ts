// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its IDX files, as Debian's
// dataset-fashion-mnist installs them: 28×28 grey images of 10 clothing
// classes, 60000 for training and 10000 for testing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import { TensorDataset } from './dataset.js';
import { readIdx } from './idx.js';

export const FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist';

/** The class names, by label. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export interface FashionMnistOptions {
  split?: 'train' | 'test';
  /** The folder of the IDX files (gzipped or not); default $KEEL_FASHION_MNIST_ROOT, else FASHION_MNIST_ROOT. */
  root?: string;
}

/** The file of `base` in `root`: the gzipped one, else an uncompressed one. */
function locate(root: string, base: string): string {
  for (const candidate of [join(root, `${base}.gz`), join(root, base)]) if (existsSync(candidate)) return candidate;
  const error = new Error(
    `Fashion-MNIST: ${join(root, `${base}.gz`)} not found (nor an uncompressed ${base}); ` +
      `install Debian's dataset-fashion-mnist or pass { root } where the IDX files are`,
  );
  // the CLI words it for its own options (src/cli/errors.ts)
  Object.assign(error, { code: 'KEEL_DATASET_MISSING', dataset: 'Fashion-MNIST', file: join(root, `${base}.gz`) });
  throw error;
}

/** Throws the error fashionMnist() would for a missing file, without reading any (a cheap check before long work). */
export function checkFashionMnist(options: Pick<FashionMnistOptions, 'root'> = {}): void {
  const root = options.root ?? (process.env.KEEL_FASHION_MNIST_ROOT || FASHION_MNIST_ROOT);
  for (const prefix of ['train', 't10k']) for (const kind of ['images-idx3', 'labels-idx1']) locate(root, `${prefix}-${kind}-ubyte`);
}

/**
 * The Fashion-MNIST split as a TensorDataset of images float32 [N, 1, 28, 28]
 * scaled to [0, 1] and labels int64 [N] in 0..9. Its tensors belong to the
 * current scope (dispose() the data set to free them). A missing, truncated,
 * corrupt or wrong-magic file, or files that disagree, throw an Error naming
 * the file.
 */
export function fashionMnist(options: FashionMnistOptions = {}): TensorDataset<[Tensor, Tensor]> {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new TypeError(`fashionMnist: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  const root = options.root ?? (process.env.KEEL_FASHION_MNIST_ROOT || FASHION_MNIST_ROOT);
  const prefix = split === 'train' ? 'train' : 't10k';
  const imageFile = locate(root, `${prefix}-images-idx3-ubyte`);
  const labelFile = locate(root, `${prefix}-labels-idx1-ubyte`);
  const images = readIdx(imageFile, { type: 'uint8', ndim: 3 });
  const labels = readIdx(labelFile, { type: 'uint8', ndim: 1 });
  const [n, rows, cols] = images.shape;
  if (rows !== 28 || cols !== 28) throw new Error(`${imageFile}: images are ${rows}×${cols}, Fashion-MNIST's are 28×28`);
  if (labels.shape[0] !== n) {
    throw new Error(`Fashion-MNIST: ${imageFile} holds ${n} images but ${labelFile} holds ${labels.shape[0]} labels`);
  }
  const labelData = labels.data as Uint8Array;
  for (let i = 0; i < labelData.length; i++) {
    if (labelData[i] > 9) throw new Error(`${labelFile}: label ${labelData[i]} at index ${i} is outside 0..9`);
  }
  const [x, y] = scope(() => [
    tensor(images.data as Uint8Array, { shape: [n, 1, rows, cols] }).float().div(255),
    tensor(labelData, { shape: [n] }).long(),
  ]);
  return new TensorDataset<[Tensor, Tensor]>(x, y);
}
